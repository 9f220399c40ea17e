//! STOMP frames as values: the command, ordered headers and the body.

use bytes::Bytes;
use bytestring::ByteString;
use std::fmt;

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping.
    V1_0,
    /// STOMP 1.1: escapes `\n`, `\c` and `\\` in headers.
    V1_1,
    /// STOMP 1.2: 1.1 plus `\r`, and CRLF line ends.
    V1_2,
}

impl Version {
    /// All versions, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as it appears in `accept-version` and `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses `"1.0"`, `"1.1"` or `"1.2"`.
    pub fn from_header(value: &str) -> Option<Version> {
        match value.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A STOMP command: the first line of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    // Client frames.
    /// Opens a session.
    Connect,
    /// CONNECT's 1.2 spelling.
    Stomp,
    /// Sends a message to a destination.
    Send,
    /// Subscribes to a destination.
    Subscribe,
    /// Ends a subscription.
    Unsubscribe,
    /// Acknowledges messages.
    Ack,
    /// Refuses messages.
    Nack,
    /// Opens a transaction.
    Begin,
    /// Commits a transaction.
    Commit,
    /// Rolls a transaction back.
    Abort,
    /// Ends the session.
    Disconnect,
    // Server frames.
    /// Accepts a CONNECT.
    Connected,
    /// A message on a subscription.
    Message,
    /// Confirms a frame that asked for a receipt.
    Receipt,
    /// A fatal error; the server closes the connection after it.
    Error,
}

impl Command {
    /// Every command, client frames first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// CONNECT, STOMP and CONNECTED headers are never escaped (spec 1.1+).
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered frame headers. Repeated names are kept; lookups return the first,
/// as the spec requires ("only the first header entry SHOULD be used").
///
/// The headers of a parsed frame are slices of the bytes it was read from (a [`ByteString`]
/// sharing the receive buffer, like the body): parsing copies no header text, except the
/// few names and values that hold an escape sequence, which are unescaped into a side buffer.
/// Headers added with [`Headers::push`] go to that side buffer too.
#[derive(Clone, Default)]
pub struct Headers {
    /// The head of the frame the headers were parsed from (empty for built headers).
    source: ByteString,
    /// Text that is not in `source`: unescaped names and values, and pushed headers.
    owned: String,
    entries: Vec<Entry>,
}

/// One header line: where its name and value are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// A byte range of [`Headers::source`] or, when `owned`, of [`Headers::owned`]. Ranges always
/// start and end at ASCII delimiters (or at the ends of the owned text), so they are on
/// `char` boundaries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) owned: bool,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `capacity` headers.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).map(|entry| self.text(entry.value))
    }

    /// Like [`Headers::get`], as a [`ByteString`] that shares the frame's buffer (a
    /// reference-count bump, not a copy) when the value was not unescaped. Keeping it keeps
    /// that buffer alive: a value held for long should be copied.
    pub fn get_shared(&self, name: &str) -> Option<ByteString> {
        let entry = self.find(name)?;
        let value = self.text(entry.value);
        Some(if entry.value.owned {
            ByteString::from(value)
        } else {
            self.source.slice_ref(value)
        })
    }

    /// Appends a header (after any with the same name).
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let name = self.own(name.as_ref());
        let value = self.own(value.as_ref());
        self.entries.push(Entry { name, value });
    }

    /// Builder form of [`Headers::push`].
    pub fn with(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.push(name, value);
        self
    }

    /// All headers in wire order, repeats included.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|entry| (self.text(entry.name), self.text(entry.value)))
    }

    /// Number of header lines, repeats included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Headers whose source spans are ranges of `source`, as the parser found them.
    pub(crate) fn parsed(source: ByteString, owned: String, entries: Vec<Entry>) -> Self {
        Headers {
            source,
            owned,
            entries,
        }
    }

    fn find(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| self.text(entry.name) == name)
    }

    fn text(&self, span: Span) -> &str {
        let text: &str = if span.owned {
            &self.owned
        } else {
            &self.source
        };
        // Spans are made by `own` and the parser, on char boundaries of their text.
        &text[span.start..span.end]
    }

    /// Copies `text` to the side buffer.
    fn own(&mut self, text: &str) -> Span {
        let start = self.owned.len();
        self.owned.push_str(text);
        Span {
            start,
            end: self.owned.len(),
            owned: true,
        }
    }
}

impl PartialEq for Headers {
    /// Equal when the same names and values come in the same order, wherever they are kept.
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.push(name, value);
        }
        headers
    }
}

/// One STOMP frame. The body is a shared [`Bytes`], so handing a frame's
/// body on (to a store, to many subscribers) never copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// Headers, unescaped, in wire order.
    pub headers: Headers,
    /// The body, possibly empty; may contain NUL bytes when `content-length` was given.
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder: adds a header.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Builder: sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}
