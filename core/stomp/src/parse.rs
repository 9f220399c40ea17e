//! The incremental frame parser.
//!
//! Two layers, in the style of httparse:
//! - [`parse_frame`] takes a byte slice and answers [`Status::Complete`] with the frame and
//!   the number of bytes it used, or [`Status::Partial`] when more bytes are needed. It
//!   copies nothing it need not: the body is a slice of the caller's [`Bytes`].
//! - [`Parser`] owns a bounded buffer for a stream that arrives in chunks of any size.
//!
//! Every limit in [`Limits`] is checked while bytes arrive, so a peer can never make the
//! parser hold more than `max_frame_bytes` of an unfinished frame.
//!
//! Both layers share one resumable scanner (`FrameScan`): it remembers how far it has read
//! the frame in progress (complete header lines are parsed once, the NUL search resumes
//! where it stopped), so a large frame arriving in many small chunks costs O(n), not O(n²).

use crate::frame::{Command, Frame, Headers, Version};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::ops::Range;

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
#[non_exhaustive]
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
            headers,
            body,
            used,
        }) => {
            let frame = Frame {
                command,
                headers,
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

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
                Item::HeartBeat
            }
            Scanned::Frame {
                command,
                headers,
                body,
                used,
            } => {
                let mut frame_bytes = self.buffer.split_to(used);
                let body = if body.is_empty() {
                    // Do not keep the receive buffer alive for an empty body.
                    Bytes::new()
                } else {
                    frame_bytes.advance(body.start);
                    frame_bytes.truncate(body.len());
                    frame_bytes.freeze()
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
        headers: Headers,
        body: Range<usize>,
        used: usize,
    },
}

/// The progress made on the item at the start of a buffer that only ever grows at its end.
#[derive(Debug, Default)]
struct FrameScan {
    /// Where the next unread line of the head starts; every byte before it has been checked.
    cursor: usize,
    /// The command, once its line is complete.
    command: Option<Command>,
    headers: Headers,
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
        let headers = std::mem::take(&mut self.headers);
        *self = FrameScan::default();
        Ok(Some(Scanned::Frame {
            command,
            headers,
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
                if self.headers.len() >= limits.max_headers
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

            if self.headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) = parse_header_line(line_bytes(buf, line.content), escaping)?;
            if self.content_length.is_none() && name == "content-length" {
                let length = parse_content_length(&value)?;
                if length > limits.max_body_bytes {
                    return Err(ParseError::BodyTooLarge);
                }
                self.content_length = Some(length);
            }
            self.headers.push(name, value);
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

/// The header escaping a frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// STOMP 1.0, and CONNECT/STOMP/CONNECTED in every version: bytes as they are.
    None,
    /// STOMP 1.1: `\n`, `\c`, `\\`.
    V1_1,
    /// STOMP 1.2: 1.1 plus `\r`.
    V1_2,
}

impl Escaping {
    /// The escaping of `command`'s headers in `version`.
    pub(crate) fn of(command: Command, version: Version) -> Escaping {
        if !command.escapes_headers() {
            return Escaping::None;
        }
        match version {
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V1_1,
            Version::V1_2 => Escaping::V1_2,
        }
    }
}

/// Splits a header line at its first colon and decodes both sides.
fn parse_header_line(line: &[u8], escaping: Escaping) -> Result<(String, String), ParseError> {
    let colon = memchr::memchr(b':', line).ok_or(ParseError::HeaderWithoutColon)?;
    // The colon is ASCII, so validating the whole line validates both sides.
    let line = std::str::from_utf8(line).map_err(|_| ParseError::InvalidUtf8)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    Ok((unescape(name, escaping)?, unescape(value, escaping)?))
}

/// Undoes header escaping; an undefined escape (including a final lone backslash) is an error.
fn unescape(raw: &str, escaping: Escaping) -> Result<String, ParseError> {
    if escaping == Escaping::None {
        return Ok(raw.to_owned());
    }
    let Some(first_backslash) = memchr::memchr(b'\\', raw.as_bytes()) else {
        return Ok(raw.to_owned());
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first_backslash]);
    let mut chars = raw[first_backslash..].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('c') => ':',
            Some('\\') => '\\',
            Some('r') if escaping == Escaping::V1_2 => '\r',
            _ => return Err(ParseError::InvalidEscape),
        });
    }
    Ok(out)
}

/// A `content-length` value: decimal digits only (no sign, no spaces).
fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::InvalidContentLength);
    }
    // Only digits, so the one way to fail is a number too large for memory anyway.
    value.parse().map_err(|_| ParseError::BodyTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8], version: Version) -> Result<Status<(Item, usize)>, ParseError> {
        parse_frame(&Bytes::copy_from_slice(input), version, &Limits::default())
    }

    fn parse_one(input: &[u8], version: Version) -> (Frame, usize) {
        match parse(input, version) {
            Ok(Status::Complete((Item::Frame(frame), used))) => (frame, used),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn parse_err(input: &[u8], version: Version) -> ParseError {
        parse_with(input, version, &Limits::default())
    }

    fn parse_with(input: &[u8], version: Version, limits: &Limits) -> ParseError {
        match parse_frame(&Bytes::copy_from_slice(input), version, limits) {
            Err(error) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Feeds `input` in chunks of `chunk` bytes, collecting items after each chunk.
    fn stream(parser: &mut Parser, input: &[u8], chunk: usize) -> Result<Vec<Item>, ParseError> {
        let mut items = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            parser.feed(piece);
            while let Some(item) = parser.next_item()? {
                items.push(item);
            }
        }
        Ok(items)
    }

    fn headers_of(frame: &Frame) -> Vec<(&str, &str)> {
        frame.headers.iter().collect()
    }

    #[test]
    fn frame_is_command_headers_blank_line_body_and_nul() {
        let input = b"SEND\ndestination:/pub/chat\nreceipt:7\n\nhello\0";
        let (frame, used) = parse_one(input, Version::V1_2);
        assert_eq!(used, input.len());
        assert_eq!(frame.command, Command::Send);
        assert_eq!(
            headers_of(&frame),
            [("destination", "/pub/chat"), ("receipt", "7")]
        );
        assert_eq!(frame.body, "hello");
    }

    #[test]
    fn parse_frame_reports_the_bytes_of_the_first_frame_only() {
        let input = b"BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0";
        let (frame, used) = parse_one(input, Version::V1_2);
        assert_eq!(frame.command, Command::Begin);
        assert_eq!(used, b"BEGIN\ntransaction:t\n\n\0".len());
    }

    #[test]
    fn unfinished_frame_is_partial_at_every_split_point() {
        let input = b"SEND\ndestination:/a\n\nbody\0";
        for end in 0..input.len() {
            assert_eq!(
                parse(&input[..end], Version::V1_2),
                Ok(Status::Partial),
                "{end}"
            );
        }
    }

    #[test]
    fn commands_are_case_sensitive() {
        assert_eq!(
            parse_err(b"send\n\n\0", Version::V1_2),
            ParseError::UnknownCommand
        );
        assert_eq!(
            parse_err(b"Send\n\n\0", Version::V1_2),
            ParseError::UnknownCommand
        );
    }

    #[test]
    fn every_command_is_recognised() {
        for command in Command::ALL {
            let input = format!("{command}\n\n\0");
            let (frame, _) = parse_one(input.as_bytes(), Version::V1_2);
            assert_eq!(frame.command, command);
        }
    }

    #[test]
    fn unknown_command_fails_before_its_line_ends() {
        // No command is longer than UNSUBSCRIBE: a long first line is refused at once.
        assert_eq!(
            parse_err(b"GET / HTTP/1.1", Version::V1_2),
            ParseError::UnknownCommand
        );
    }

    #[test]
    fn eol_between_frames_is_a_heart_beat() {
        assert_eq!(
            parse(b"\n", Version::V1_2),
            Ok(Status::Complete((Item::HeartBeat, 1)))
        );
    }

    #[test]
    fn crlf_heart_beat_counts_once() {
        assert_eq!(
            parse(b"\r\nSEND", Version::V1_2),
            Ok(Status::Complete((Item::HeartBeat, 2)))
        );
        assert_eq!(parse(b"\r", Version::V1_2), Ok(Status::Partial));
    }

    #[test]
    fn crlf_line_ends_are_accepted_in_every_version() {
        for version in Version::ALL {
            let input = b"SEND\r\ndestination:/a\r\n\r\nx\0";
            let (frame, used) = parse_one(input, version);
            assert_eq!(used, input.len());
            assert_eq!(frame.command, Command::Send);
            assert_eq!(headers_of(&frame), [("destination", "/a")]);
            assert_eq!(frame.body, "x");
        }
    }

    #[test]
    fn repeated_headers_are_kept_in_order_and_the_first_wins() {
        let (frame, _) = parse_one(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0", Version::V1_2);
        assert_eq!(headers_of(&frame), [("foo", "World"), ("foo", "Hello")]);
        assert_eq!(frame.get("foo"), Some("World"));
    }

    #[test]
    fn header_value_is_everything_after_the_first_colon_untrimmed() {
        let (frame, _) = parse_one(b"SEND\n a : b:c \n\n\0", Version::V1_0);
        assert_eq!(headers_of(&frame), [(" a ", " b:c ")]);
    }

    #[test]
    fn header_line_without_colon_is_an_error() {
        assert_eq!(
            parse_err(b"SEND\ndestination\n\n\0", Version::V1_2),
            ParseError::HeaderWithoutColon
        );
    }

    #[test]
    fn v10_does_not_unescape() {
        let (frame, _) = parse_one(b"SEND\na\\cb:x\\ny\\q\n\n\0", Version::V1_0);
        assert_eq!(headers_of(&frame), [("a\\cb", "x\\ny\\q")]);
    }

    #[test]
    fn frames_after_connect_in_one_big_chunk_wait_for_the_negotiated_version() {
        let limits = Limits {
            max_frame_bytes: 64,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        let mut chunk = b"CONNECT\naccept-version:1.0\n\n\0".to_vec();
        // More than a frame's worth in one chunk makes `feed` read ahead.
        for _ in 0..4 {
            chunk.extend_from_slice(b"SEND\ndestination:/a\\nb\n\n\0");
        }
        parser.feed(&chunk);
        let Some(Item::Frame(connect)) = parser.next_item().expect("CONNECT") else {
            panic!("expected CONNECT first");
        };
        assert_eq!(connect.command, Command::Connect);
        parser.set_version(Version::V1_0);
        for _ in 0..4 {
            let Some(Item::Frame(send)) = parser.next_item().expect("SEND") else {
                panic!("expected SEND");
            };
            // 1.0 does not unescape: the backslash stays.
            assert_eq!(send.get("destination"), Some("/a\\nb"));
        }
    }

    #[test]
    fn v11_unescapes_newline_colon_and_backslash() {
        let (frame, _) = parse_one(b"SEND\na\\cb:1\\n2\\\\3\n\n\0", Version::V1_1);
        assert_eq!(headers_of(&frame), [("a:b", "1\n2\\3")]);
    }

    #[test]
    fn v12_also_unescapes_carriage_return() {
        let (frame, _) = parse_one(b"SEND\nx:a\\rb\n\n\0", Version::V1_2);
        assert_eq!(headers_of(&frame), [("x", "a\rb")]);
    }

    #[test]
    fn undefined_escape_is_an_error_in_v11() {
        assert_eq!(
            parse_err(b"SEND\nx:a\\tb\n\n\0", Version::V1_1),
            ParseError::InvalidEscape
        );
        // `\r` is only defined from 1.2 on.
        assert_eq!(
            parse_err(b"SEND\nx:a\\rb\n\n\0", Version::V1_1),
            ParseError::InvalidEscape
        );
    }

    #[test]
    fn trailing_lone_backslash_is_an_undefined_escape() {
        assert_eq!(
            parse_err(b"SEND\nx:a\\\n\n\0", Version::V1_2),
            ParseError::InvalidEscape
        );
    }

    #[test]
    fn connect_and_connected_headers_are_never_unescaped() {
        for command in ["CONNECT", "STOMP", "CONNECTED"] {
            let input = format!("{command}\nlogin:a\\cb\\q\n\n\0");
            let (frame, _) = parse_one(input.as_bytes(), Version::V1_2);
            assert_eq!(headers_of(&frame), [("login", "a\\cb\\q")], "{command}");
        }
    }

    #[test]
    fn headers_must_be_utf8() {
        assert_eq!(
            parse_err(b"SEND\nx:\xff\n\n\0", Version::V1_2),
            ParseError::InvalidUtf8
        );
        assert_eq!(
            parse_err(b"SEND\n\xc3:x\n\n\0", Version::V1_0),
            ParseError::InvalidUtf8
        );
    }

    #[test]
    fn content_length_body_may_contain_nul() {
        let input = b"SEND\ncontent-length:5\n\na\0b\0c\0";
        let (frame, used) = parse_one(input, Version::V1_2);
        assert_eq!(used, input.len());
        assert_eq!(frame.body, &b"a\0b\0c"[..]);
    }

    #[test]
    fn content_length_body_must_be_followed_by_nul() {
        assert_eq!(
            parse_err(b"SEND\ncontent-length:2\n\nabc\0", Version::V1_2),
            ParseError::MissingNul
        );
    }

    #[test]
    fn first_content_length_decides() {
        let (frame, _) = parse_one(
            b"SEND\ncontent-length:1\ncontent-length:3\n\na\0",
            Version::V1_2,
        );
        assert_eq!(frame.body, "a");
    }

    #[test]
    fn content_length_must_be_decimal_digits() {
        for value in ["", "-1", "+1", " 1", "0x10", "1.0"] {
            let input = format!("SEND\ncontent-length:{value}\n\n\0");
            assert_eq!(
                parse_err(input.as_bytes(), Version::V1_2),
                ParseError::InvalidContentLength,
                "{value:?}"
            );
        }
    }

    #[test]
    fn body_without_content_length_ends_at_the_first_nul() {
        let (frame, used) = parse_one(b"SEND\n\nab\0cd\0", Version::V1_2);
        assert_eq!(frame.body, "ab");
        assert_eq!(used, 9);
    }

    #[test]
    fn body_is_a_slice_of_the_input_not_a_copy() {
        let input = Bytes::from_static(b"SEND\ncontent-length:3\n\nabc\0");
        let Ok(Status::Complete((Item::Frame(frame), _))) =
            parse_frame(&input, Version::V1_2, &Limits::default())
        else {
            panic!("expected a frame");
        };
        let body_start = input.len() - 4;
        assert_eq!(frame.body.as_ptr(), input[body_start..].as_ptr());
    }

    #[test]
    fn parser_body_shares_the_receive_buffer() {
        let mut parser = Parser::new(Limits::default());
        parser.feed(b"SEND\n\nabc\0");
        let Ok(Some(Item::Frame(frame))) = parser.next_item() else {
            panic!("expected a frame");
        };
        assert_eq!(frame.body, "abc");
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn too_large_content_length_fails_before_the_body_arrives() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_with(b"SEND\ncontent-length:11\n", Version::V1_2, &limits),
            ParseError::BodyTooLarge
        );
        // A number too large for memory is too large a body, not a malformed one.
        assert_eq!(
            parse_with(
                b"SEND\ncontent-length:99999999999999999999999\n",
                Version::V1_2,
                &limits
            ),
            ParseError::BodyTooLarge
        );
    }

    #[test]
    fn unterminated_body_fails_once_it_exceeds_the_body_limit() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let mut input = b"SEND\n\n".to_vec();
        input.extend_from_slice(&[b'x'; 10]);
        assert_eq!(
            parse_frame(&Bytes::from(input.clone()), Version::V1_2, &limits),
            Ok(Status::Partial)
        );
        input.push(b'x');
        assert_eq!(
            parse_with(&input, Version::V1_2, &limits),
            ParseError::BodyTooLarge
        );
    }

    #[test]
    fn body_of_exactly_the_limit_is_accepted() {
        let limits = Limits {
            max_body_bytes: 4,
            max_frame_bytes: 64,
            ..Limits::default()
        };
        let input = Bytes::from_static(b"SEND\n\nabcd\0");
        assert!(matches!(
            parse_frame(&input, Version::V1_2, &limits),
            Ok(Status::Complete(_))
        ));
        let input = Bytes::from_static(b"SEND\ncontent-length:4\n\nabcd\0");
        assert!(matches!(
            parse_frame(&input, Version::V1_2, &limits),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn frame_of_exactly_the_frame_limit_is_accepted_and_one_more_byte_is_not() {
        let input = b"SEND\n\nabcd\0";
        let limits = Limits {
            max_frame_bytes: input.len(),
            ..Limits::default()
        };
        assert!(matches!(
            parse_frame(&Bytes::from_static(input), Version::V1_2, &limits),
            Ok(Status::Complete(_))
        ));
        assert_eq!(
            parse_with(b"SEND\n\nabcde\0", Version::V1_2, &limits),
            ParseError::FrameTooLarge
        );
        assert_eq!(
            parse_with(b"SEND\ncontent-length:5\n\n", Version::V1_2, &limits),
            ParseError::FrameTooLarge
        );
    }

    #[test]
    fn too_many_headers_fail_as_soon_as_one_more_header_starts() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        assert!(matches!(
            parse_frame(
                &Bytes::from_static(b"SEND\na:1\nb:2\n\n\0"),
                Version::V1_2,
                &limits
            ),
            Ok(Status::Complete(_))
        ));
        assert_eq!(
            parse_with(b"SEND\na:1\nb:2\nc", Version::V1_2, &limits),
            ParseError::TooManyHeaders
        );
        // A pending CRLF could still be the blank line: not an error yet.
        assert_eq!(
            parse_frame(
                &Bytes::from_static(b"SEND\na:1\nb:2\r"),
                Version::V1_2,
                &limits
            ),
            Ok(Status::Partial)
        );
    }

    #[test]
    fn oversized_header_line_fails_before_its_eol_arrives() {
        let limits = Limits {
            max_header_line_bytes: 8,
            ..Limits::default()
        };
        assert_eq!(
            parse_frame(
                &Bytes::from_static(b"SEND\nabcd:567"),
                Version::V1_2,
                &limits
            ),
            Ok(Status::Partial)
        );
        // Exactly the limit, with its CR still waiting for the LF, is fine.
        assert_eq!(
            parse_frame(
                &Bytes::from_static(b"SEND\nabcd:567\r"),
                Version::V1_2,
                &limits
            ),
            Ok(Status::Partial)
        );
        assert_eq!(
            parse_with(b"SEND\nabcd:5678", Version::V1_2, &limits),
            ParseError::HeaderLineTooLong
        );
    }

    #[test]
    fn oversized_header_line_fails_before_buffering_it() {
        let limits = Limits::default();
        let mut parser = Parser::new(limits);
        parser.feed(b"SEND\n");
        let mut fed = 5;
        let error = loop {
            parser.feed(&[b'h'; 1024]);
            fed += 1024;
            match parser.next_item() {
                Ok(None) => assert!(fed < 1 << 20, "a MiB buffered without an error"),
                other => break other,
            }
        };
        assert_eq!(error, Err(ParseError::HeaderLineTooLong));
        assert!(fed <= limits.max_header_line_bytes + 2048);
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn one_huge_chunk_is_refused_without_holding_more_than_a_frame() {
        let limits = Limits::default();
        let mut parser = Parser::new(limits);
        let mut input = b"SEND\nx:".to_vec();
        input.resize(1 << 20, b'h');
        parser.feed(&input);
        assert_eq!(parser.buffered(), 0, "the poisoned parser freed its buffer");
        assert_eq!(parser.next_item(), Err(ParseError::HeaderLineTooLong));
    }

    #[test]
    fn huge_chunk_of_small_frames_is_parsed_while_it_is_buffered() {
        let limits = Limits {
            max_frame_bytes: 64,
            ..Limits::default()
        };
        let frame = b"SEND\ndestination:/a\n\nhello\0\n";
        let input: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 100)
            .collect();
        let mut parser = Parser::new(limits);
        parser.feed(&input);
        assert!(parser.buffered() <= limits.max_frame_bytes);
        let mut frames = 0;
        let mut beats = 0;
        while let Some(item) = parser.next_item().expect("valid stream") {
            match item {
                Item::Frame(_) => frames += 1,
                Item::HeartBeat => beats += 1,
            }
        }
        assert_eq!((frames, beats), (100, 100));
    }

    #[test]
    fn heart_beats_read_ahead_are_counted_not_stored() {
        let limits = Limits {
            max_frame_bytes: 64,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        parser.feed(&[b'\n'; 10_000]);
        assert_eq!(parser.ready.len(), 1);
        let mut beats = 0;
        while let Some(item) = parser.next_item().expect("EOLs are valid") {
            assert_eq!(item, Item::HeartBeat);
            beats += 1;
        }
        assert_eq!(beats, 10_000);
    }

    #[test]
    fn parser_reads_frames_split_at_every_byte() {
        let input = b"CONNECT\naccept-version:1.2\n\n\0\r\nSEND\ncontent-length:3\n\na\0b\0\nSUBSCRIBE\nid:1\n\n\0";
        let whole = stream(&mut Parser::new(Limits::default()), input, input.len()).unwrap();
        assert_eq!(whole.len(), 5);
        for chunk in 1..input.len() {
            let items = stream(&mut Parser::new(Limits::default()), input, chunk).unwrap();
            assert_eq!(items, whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn parser_remembers_how_far_it_scanned() {
        // A 64 KiB body in 1-byte chunks: with rescans this would take ~2 billion steps.
        let mut input = b"SEND\n\n".to_vec();
        input.resize(64 * 1024 + 6, b'x');
        input.push(0);
        let items = stream(&mut Parser::new(Limits::default()), &input, 1).unwrap();
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn failed_parser_keeps_failing_and_drops_input() {
        let mut parser = Parser::new(Limits::default());
        parser.feed(b"BOGUS\n\n\0");
        assert_eq!(parser.next_item(), Err(ParseError::UnknownCommand));
        parser.feed(b"SEND\n\n\0");
        assert_eq!(parser.buffered(), 0);
        assert_eq!(parser.next_item(), Err(ParseError::UnknownCommand));
    }

    #[test]
    fn items_before_an_error_are_still_handed_out() {
        let limits = Limits {
            max_frame_bytes: 16,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        parser.feed(b"SEND\n\na\0SEND\n\nbbbbbbbbbbbbbbbbbbbb\0");
        assert!(matches!(parser.next_item(), Ok(Some(Item::Frame(_)))));
        assert_eq!(parser.next_item(), Err(ParseError::FrameTooLarge));
    }

    #[test]
    fn set_version_changes_how_later_frames_are_unescaped() {
        let mut parser = Parser::new(Limits::default());
        parser.feed(b"SEND\nx:a\\cb\n\n\0");
        parser.set_version(Version::V1_0);
        let Ok(Some(Item::Frame(frame))) = parser.next_item() else {
            panic!("expected a frame");
        };
        assert_eq!(frame.get("x"), Some("a\\cb"));
    }
}
