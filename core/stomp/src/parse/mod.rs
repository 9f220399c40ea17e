//! The incremental frame parser.
//!
//! Two layers, in the style of httparse:
//! - [`parse_frame`] takes a byte slice and answers [`Status::Complete`] with the frame and
//!   the number of bytes it used, or [`Status::Partial`] when more bytes are needed. It
//!   copies nothing it need not: the body is a slice of the caller's [`Bytes`], and header
//!   names and values are spans of the same bytes (only those holding an escape sequence are
//!   unescaped into a buffer of their own).
//! - [`Parser`] owns a bounded buffer for a stream that arrives in chunks of any size.
//!
//! Every limit in [`Limits`] is checked while bytes arrive, so a peer can never make the
//! parser hold more than `max_frame_bytes` of an unfinished frame.
//!
//! Both layers share one resumable scanner (`FrameScan`): it remembers how far it has read
//! the frame in progress (complete header lines are parsed once, the NUL search resumes
//! where it stopped), so a large frame arriving in many small chunks costs O(n), not O(n²).

use crate::escape::{Escaping, unescape_into};
use crate::frame::{Command, Entry, Frame, Headers, Span, Version};
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use std::collections::VecDeque;
use std::ops::Range;

#[cfg(test)]
mod tests;

/// Size limits a peer's frames must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame: command, headers, body and terminator.
    pub max_frame_bytes: usize,
    /// Header lines per frame.
    pub max_headers: usize,
    /// One header line, before unescaping, without its EOL.
    pub max_header_line_bytes: usize,
    /// Body bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    /// 64 KiB frames (as Spring and Centrifugo), 64 headers of at most 8 KiB, 64 KiB bodies.
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024 + 8 * 1024,
            max_headers: 64,
            max_header_line_bytes: 8 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Why a byte stream is not valid STOMP. Small and `Copy`, like httparse's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The first line of a frame is not one of the STOMP commands (they are case-sensitive).
    #[error("unknown command")]
    UnknownCommand,
    /// A header line has no `:` separating name and value.
    #[error("header line without a colon")]
    HeaderWithoutColon,
    /// A backslash in a header (1.1 and later) is not followed by a defined escape letter.
    #[error("undefined escape sequence in header")]
    InvalidEscape,
    /// A header name or value is not UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The first `content-length` header is not a decimal number.
    #[error("invalid content-length header")]
    InvalidContentLength,
    /// The byte after a `content-length` body is not the NUL terminator.
    #[error("body not followed by NUL")]
    MissingNul,
    /// The frame exceeds [`Limits::max_frame_bytes`].
    #[error("frame too large")]
    FrameTooLarge,
    /// The frame has more than [`Limits::max_headers`] header lines.
    #[error("too many headers")]
    TooManyHeaders,
    /// A header line (or the command line) exceeds [`Limits::max_header_line_bytes`].
    #[error("header line too long")]
    HeaderLineTooLong,
    /// The body (or the announced `content-length`) exceeds [`Limits::max_body_bytes`].
    #[error("body too large")]
    BodyTooLarge,
    /// The parser failed earlier; it reads nothing more.
    #[error("parser already failed")]
    Failed,
}

/// The outcome of parsing a byte slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole item and the number of bytes it used.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// What the stream yields: frames, and the EOLs peers send between frames as heart-beats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A whole frame.
    Frame(Frame),
    /// One EOL (`\n` or `\r\n`) between frames.
    HeartBeat,
}

/// Parses one item from the start of `buf`. Header escaping follows `version`
/// (CONNECT, STOMP and CONNECTED are never unescaped).
///
/// Limits are enforced on what `buf` holds so far: an unfinished frame that already breaks
/// one is an error, not [`Status::Partial`].
pub fn parse_frame(
    buf: &Bytes,
    version: Version,
    limits: &Limits,
) -> Result<Status<(Item, usize)>, ParseError> {
    let mut scan = FrameScan::default();
    Ok(match scan.resume(buf, version, limits)? {
        None => Status::Partial,
        Some(Scanned::HeartBeat { used }) => Status::Complete((Item::HeartBeat, used)),
        Some(Scanned::Frame {
            command,
            head,
            body,
            used,
        }) => {
            let frame = Frame {
                command,
                headers: head.into_headers(|| buf.slice(..body.start))?,
                body: buf.slice(body),
            };
            Status::Complete((Item::Frame(frame), used))
        }
    })
}

/// An incremental parser over a byte stream fed in chunks of any size.
///
/// Memory: after [`Parser::feed`] returns, the parser holds at most `max_frame_bytes` of an
/// unfinished frame. When one chunk carries more than a frame's worth of bytes, `feed` reads
/// its complete frames ahead (so an oversized frame anywhere in it is refused without
/// buffering it); those wait for [`Parser::next_item`], heart-beats among them as a count.
///
/// Bodies are slices of the receive buffer, never copies; one that is kept for long (in a
/// message store, say) pins the buffer it came from, so such a consumer should copy it.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    version: Version,
    buffer: BytesMut,
    failed: Option<ParseError>,
    /// How far the frame at the start of `buffer` has been read.
    scan: FrameScan,
    /// Items parsed early by `feed`, which must read ahead to keep `buffer` within the frame
    /// limit when one chunk holds more than a frame's worth of bytes.
    ready: VecDeque<Ready>,
    /// A CONNECT or STOMP frame was read and the version it negotiates is not known yet:
    /// reading ahead now would unescape the next frames under the wrong rules.
    awaiting_version: bool,
    /// [`Parser::set_version`] was called: the stream's version is known.
    version_set: bool,
}

/// Items read ahead by [`Parser::feed`]. Heart-beats are counted, not stored one by one, so
/// a chunk full of EOLs costs nothing to hold.
#[derive(Debug)]
enum Ready {
    Frame(Frame),
    HeartBeats(usize),
}

impl Parser {
    /// A parser for the version-independent start of a connection (it reads CONNECT as 1.2 would,
    /// and CONNECT is never escaped); call [`Parser::set_version`] once the version is negotiated.
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            version: Version::V1_2,
            buffer: BytesMut::new(),
            failed: None,
            scan: FrameScan::default(),
            ready: VecDeque::new(),
            awaiting_version: false,
            version_set: false,
        }
    }

    /// The escaping rules to apply from now on. A frame only partly read is read again under
    /// the new rules; items already parsed (those `next_item` would hand out next) keep theirs.
    pub fn set_version(&mut self, version: Version) {
        self.awaiting_version = false;
        self.version_set = true;
        if version != self.version {
            self.version = version;
            self.scan = FrameScan::default();
        }
    }

    /// Appends bytes from the peer. Call [`Parser::next_item`] until it returns `Ok(None)`.
    /// After an error the parser drops what it is given.
    ///
    /// Afterwards [`Parser::buffered`] is at most `max_frame_bytes`, with one exception: before
    /// [`Parser::set_version`] was ever called, bytes that follow a CONNECT or STOMP frame in
    /// the same chunk are held unparsed until the version is set (their escaping depends on
    /// it). That is bounded by the chunk, which the transport bounds.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        // Append at most one byte past the frame limit at a time, then read complete items
        // out of the buffer: a peer's oversized frame is refused after `max_frame_bytes`,
        // however large the chunk that carries it.
        while !bytes.is_empty() && self.failed.is_none() {
            let room = (self.limits.max_frame_bytes + 1)
                .saturating_sub(self.buffer.len())
                .max(1);
            let (piece, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(piece);
            bytes = rest;
            if self.buffer.len() > self.limits.max_frame_bytes && !self.awaiting_version {
                while let Ok(Some(item)) = self.parse_buffered() {
                    let negotiates = !self.version_set
                        && matches!(
                            &item,
                            Item::Frame(frame) if matches!(frame.command, Command::Connect | Command::Stomp)
                        );
                    self.push_ready(item);
                    if negotiates {
                        // What follows waits for `set_version`; the transport bounds the chunk.
                        self.awaiting_version = true;
                        break;
                    }
                }
            }
        }
    }

    /// The next whole item, `Ok(None)` when more bytes are needed, or the error that
    /// stopped the parser for good.
    pub fn next_item(&mut self) -> Result<Option<Item>, ParseError> {
        if let Some(item) = self.pop_ready() {
            return Ok(Some(item));
        }
        if let Some(error) = self.failed {
            return Err(error);
        }
        self.parse_buffered()
    }

    /// Bytes held for an unfinished frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether anything fed is not yet taken by [`Parser::next_item`]: items already parsed,
    /// or bytes of an item still incomplete.
    pub fn has_unread(&self) -> bool {
        !self.ready.is_empty() || !self.buffer.is_empty()
    }

    fn push_ready(&mut self, item: Item) {
        match (item, self.ready.back_mut()) {
            (Item::HeartBeat, Some(Ready::HeartBeats(count))) => *count += 1,
            (Item::HeartBeat, _) => self.ready.push_back(Ready::HeartBeats(1)),
            (Item::Frame(frame), _) => self.ready.push_back(Ready::Frame(frame)),
        }
    }

    fn pop_ready(&mut self) -> Option<Item> {
        match self.ready.front_mut()? {
            Ready::HeartBeats(count) if *count > 1 => {
                *count -= 1;
                Some(Item::HeartBeat)
            }
            _ => match self.ready.pop_front()? {
                Ready::Frame(frame) => Some(Item::Frame(frame)),
                Ready::HeartBeats(_) => Some(Item::HeartBeat),
            },
        }
    }

    /// Gives the buffer's allocation back once every byte in it is parsed: an idle connection
    /// then holds no read buffer (the last read's spare capacity would otherwise stay, some
    /// 400 bytes per connection), at the cost of one allocation on the next read.
    fn release_if_empty(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() != 0 {
            self.buffer = BytesMut::new();
        }
    }

    /// Reads the item at the start of the buffer, if it is complete, and removes its bytes.
    fn parse_buffered(&mut self) -> Result<Option<Item>, ParseError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let scanned = match self.scan.resume(&self.buffer, self.version, &self.limits) {
            Ok(Some(scanned)) => scanned,
            Ok(None) => return Ok(None),
            Err(error) => {
                self.failed = Some(error);
                // Nothing after a framing error can be trusted: free the memory now.
                self.buffer = BytesMut::new();
                return Err(error);
            }
        };
        Ok(Some(match scanned {
            Scanned::HeartBeat { used } => {
                self.buffer.advance(used);
                self.release_if_empty();
                Item::HeartBeat
            }
            Scanned::Frame {
                command,
                head,
                body,
                used,
            } => {
                let mut head_bytes = self.buffer.split_to(used);
                self.release_if_empty();
                let body_start = body.start;
                let body = if body.is_empty() {
                    // Do not keep the receive buffer alive for an empty body.
                    Bytes::new()
                } else {
                    let mut body_bytes = head_bytes.split_off(body.start);
                    body_bytes.truncate(body.len());
                    body_bytes.freeze()
                };
                let headers = match head.into_headers(|| {
                    head_bytes.truncate(body_start);
                    head_bytes.freeze()
                }) {
                    Ok(headers) => headers,
                    Err(error) => {
                        self.failed = Some(error);
                        self.buffer = BytesMut::new();
                        return Err(error);
                    }
                };
                Item::Frame(Frame {
                    command,
                    headers,
                    body,
                })
            }
        }))
    }
}

/// A complete item found by [`FrameScan::resume`], as offsets into the scanned bytes.
#[derive(Debug)]
enum Scanned {
    HeartBeat {
        used: usize,
    },
    Frame {
        command: Command,
        head: Head,
        body: Range<usize>,
        used: usize,
    },
}

/// The header lines of a frame read so far, as spans of the frame's bytes (or of `owned`,
/// for the names and values that had to be unescaped).
#[derive(Debug, Default)]
struct Head {
    entries: Vec<Entry>,
    owned: String,
}

impl Head {
    /// The frame's [`Headers`], sharing `bytes()`: the frame's bytes up to its body.
    fn into_headers(self, bytes: impl FnOnce() -> Bytes) -> Result<Headers, ParseError> {
        if self.entries.is_empty() {
            // Nothing to point into: do not keep the receive buffer alive.
            return Ok(Headers::new());
        }
        // Every line of the head was checked to be UTF-8 as it was read; this checks the
        // whole again, cheaply, in exchange for needing no `unsafe`.
        let source = ByteString::try_from(bytes()).map_err(|_| ParseError::InvalidUtf8)?;
        Ok(Headers::parsed(source, self.owned, self.entries))
    }
}

/// The progress made on the item at the start of a buffer that only ever grows at its end.
#[derive(Debug, Default)]
struct FrameScan {
    /// Where the next unread line of the head starts; every byte before it has been checked.
    cursor: usize,
    /// The command, once its line is complete.
    command: Option<Command>,
    head: Head,
    /// The first `content-length`, once its header line is read.
    content_length: Option<usize>,
    /// Where the body starts, once the blank line ending the head is read.
    body_start: Option<usize>,
    /// How far the search for a NUL-terminated body's end has gone.
    nul_scanned: usize,
}

/// The longest command line, `UNSUBSCRIBE`; anything longer is not a command.
const MAX_COMMAND_LEN: usize = 11;

impl FrameScan {
    /// Reads on from where the last call stopped. `buf` must start where it started before
    /// and may only have grown. Answers the complete item (and resets itself for the next),
    /// `None` when more bytes are needed, or the error.
    fn resume(
        &mut self,
        buf: &[u8],
        version: Version,
        limits: &Limits,
    ) -> Result<Option<Scanned>, ParseError> {
        let Some(command) = self.command else {
            let Some(line) = next_line(buf, 0, MAX_COMMAND_LEN, ParseError::UnknownCommand)? else {
                return Ok(None);
            };
            if line.content.is_empty() {
                return Ok(Some(Scanned::HeartBeat { used: line.next }));
            }
            let command = command_from_line(line_bytes(buf, line.content.clone()))
                .ok_or(ParseError::UnknownCommand)?;
            self.command = Some(command);
            self.cursor = line.next;
            return self.resume(buf, version, limits);
        };

        let body_start = match self.body_start {
            Some(start) => start,
            None => match self.read_headers(buf, command, version, limits)? {
                Some(start) => start,
                None => return Ok(None),
            },
        };

        let body = match self.content_length {
            Some(length) => {
                // `read_headers` checked that the announced frame fits the limits.
                let end = body_start + length;
                match buf.get(end) {
                    None => return Ok(None),
                    Some(0) => body_start..end,
                    Some(_) => return Err(ParseError::MissingNul),
                }
            }
            None => match self.find_nul(buf, body_start, limits)? {
                Some(end) => body_start..end,
                None => return Ok(None),
            },
        };

        let used = body.end + 1;
        let head = std::mem::take(&mut self.head);
        *self = FrameScan::default();
        Ok(Some(Scanned::Frame {
            command,
            head,
            body,
            used,
        }))
    }

    /// Parses the complete header lines after `cursor`; answers where the body starts once
    /// the blank line is read.
    fn read_headers(
        &mut self,
        buf: &[u8],
        command: Command,
        version: Version,
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        let escaping = Escaping::of(command, version);
        loop {
            let Some(line) = next_line(
                buf,
                self.cursor,
                limits.max_header_line_bytes,
                ParseError::HeaderLineTooLong,
            )?
            else {
                // The frame needs at least one more byte, so holding the limit already is too much.
                if buf.len() >= limits.max_frame_bytes {
                    return Err(ParseError::FrameTooLarge);
                }
                if self.head.entries.len() >= limits.max_headers
                    && starts_header_line(buf.get(self.cursor..).unwrap_or_default())
                {
                    return Err(ParseError::TooManyHeaders);
                }
                return Ok(None);
            };
            // Body and NUL come after this line: at least one more byte.
            if line.next >= limits.max_frame_bytes {
                return Err(ParseError::FrameTooLarge);
            }
            self.cursor = line.next;

            if line.content.is_empty() {
                let body_start = line.next;
                if let Some(length) = self.content_length
                    && body_start.saturating_add(length) >= limits.max_frame_bytes
                {
                    return Err(ParseError::FrameTooLarge);
                }
                self.body_start = Some(body_start);
                self.nul_scanned = body_start;
                return Ok(Some(body_start));
            }

            if self.head.entries.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) =
                parse_header_line(buf, line.content, escaping, &mut self.head.owned)?;
            if self.content_length.is_none() {
                let text = |span: Span| {
                    let text = if span.owned {
                        self.head.owned.as_bytes()
                    } else {
                        buf
                    };
                    text.get(span.start..span.end).unwrap_or_default()
                };
                if text(name) == b"content-length" {
                    let length = parse_content_length(text(value))?;
                    if length > limits.max_body_bytes {
                        return Err(ParseError::BodyTooLarge);
                    }
                    self.content_length = Some(length);
                }
            }
            self.head.entries.push(Entry { name, value });
        }
    }

    /// Looks for the NUL ending a body without `content-length`, from where the last search
    /// stopped; answers its offset.
    fn find_nul(
        &mut self,
        buf: &[u8],
        body_start: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        // Never search past the point where the limits are broken anyway.
        let search_end = buf
            .len()
            .min(
                body_start
                    .saturating_add(limits.max_body_bytes)
                    .saturating_add(1),
            )
            .min(limits.max_frame_bytes);
        let window = buf.get(self.nul_scanned..search_end).unwrap_or_default();
        if let Some(offset) = memchr::memchr(0, window) {
            return Ok(Some(self.nul_scanned + offset));
        }
        self.nul_scanned = self.nul_scanned.max(search_end);
        if buf.len() - body_start > limits.max_body_bytes {
            return Err(ParseError::BodyTooLarge);
        }
        if buf.len() >= limits.max_frame_bytes {
            return Err(ParseError::FrameTooLarge);
        }
        Ok(None)
    }
}

/// A line found by [`next_line`]: its content without the EOL, and where the next line starts.
#[derive(Debug)]
struct Line {
    content: Range<usize>,
    next: usize,
}

/// Finds the line starting at `start`. Its content (without `\n` or `\r\n`) may be at most
/// `max_len` bytes: a longer one fails with `too_long` as soon as that is certain, whether
/// or not its EOL has arrived, and the search never looks further than that.
fn next_line(
    buf: &[u8],
    start: usize,
    max_len: usize,
    too_long: ParseError,
) -> Result<Option<Line>, ParseError> {
    let rest = buf.get(start..).unwrap_or_default();
    // Content, then perhaps `\r`, then `\n`.
    let window = rest.get(..max_len.saturating_add(2)).unwrap_or(rest);
    match memchr::memchr(b'\n', window) {
        Some(lf) => {
            let content_len = if lf > 0 && rest.get(lf - 1) == Some(&b'\r') {
                lf - 1
            } else {
                lf
            };
            if content_len > max_len {
                return Err(too_long);
            }
            Ok(Some(Line {
                content: start..start + content_len,
                next: start + lf + 1,
            }))
        }
        None => {
            // Without its EOL the content is all of `rest`, or all but a final `\r`.
            let least_content = match rest.last() {
                Some(b'\r') => rest.len() - 1,
                _ => rest.len(),
            };
            if least_content > max_len {
                return Err(too_long);
            }
            Ok(None)
        }
    }
}

/// `buf[range]` for a range that [`next_line`] found inside `buf`.
fn line_bytes(buf: &[u8], range: Range<usize>) -> &[u8] {
    buf.get(range).unwrap_or_default()
}

/// Whether the unfinished line `pending` is certainly a header line, not the blank line.
fn starts_header_line(pending: &[u8]) -> bool {
    !matches!(pending, [] | [b'\r'] | [b'\r', b'\n', ..] | [b'\n', ..])
}

/// The command named by a command line (case-sensitive).
fn command_from_line(line: &[u8]) -> Option<Command> {
    // A direct match compiles to a few length and word compares, cheaper than trying each
    // command's name in turn.
    Some(match line {
        b"SEND" => Command::Send,
        b"MESSAGE" => Command::Message,
        b"ACK" => Command::Ack,
        b"NACK" => Command::Nack,
        b"SUBSCRIBE" => Command::Subscribe,
        b"UNSUBSCRIBE" => Command::Unsubscribe,
        b"CONNECT" => Command::Connect,
        b"STOMP" => Command::Stomp,
        b"CONNECTED" => Command::Connected,
        b"BEGIN" => Command::Begin,
        b"COMMIT" => Command::Commit,
        b"ABORT" => Command::Abort,
        b"DISCONNECT" => Command::Disconnect,
        b"RECEIPT" => Command::Receipt,
        b"ERROR" => Command::Error,
        _ => return None,
    })
}

/// Splits the header line `buf[line]` at its first colon: where its name and value are.
/// Either is left in place unless it holds an escape sequence; then it is unescaped to `owned`.
fn parse_header_line(
    buf: &[u8],
    line: Range<usize>,
    escaping: Escaping,
    owned: &mut String,
) -> Result<(Span, Span), ParseError> {
    let bytes = line_bytes(buf, line.clone());
    // Names are short: a plain loop finds the colon sooner than a vectorised search starts.
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::HeaderWithoutColon)?;
    // The colon is ASCII, so validating the whole line validates both sides. Most header
    // lines are ASCII, which is quicker to check.
    if !bytes.is_ascii() {
        std::str::from_utf8(bytes).map_err(|_| ParseError::InvalidUtf8)?;
    }
    let in_place = |range: Range<usize>| Span {
        start: line.start + range.start,
        end: line.start + range.end,
        owned: false,
    };
    // One search for a backslash in the whole line: usually there is none.
    if escaping == Escaping::None || memchr::memchr(b'\\', bytes).is_none() {
        return Ok((in_place(0..colon), in_place(colon + 1..bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::InvalidUtf8)?;
    let mut piece = |range: Range<usize>| -> Result<Span, ParseError> {
        let raw = text.get(range.clone()).unwrap_or_default();
        if memchr::memchr(b'\\', raw.as_bytes()).is_none() {
            return Ok(in_place(range));
        }
        let start = owned.len();
        unescape_into(raw, escaping, owned)?;
        Ok(Span {
            start,
            end: owned.len(),
            owned: true,
        })
    };
    Ok((piece(0..colon)?, piece(colon + 1..text.len())?))
}

/// A `content-length` value: decimal digits only (no sign, no spaces).
fn parse_content_length(value: &[u8]) -> Result<usize, ParseError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::InvalidContentLength);
    }
    // Only digits, so the one way to fail is a number too large for memory anyway.
    value.iter().try_fold(0usize, |length, digit| {
        length
            .checked_mul(10)
            .and_then(|length| length.checked_add(usize::from(digit - b'0')))
            .ok_or(ParseError::BodyTooLarge)
    })
}
