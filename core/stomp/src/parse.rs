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

use crate::frame::{Frame, Version};
use bytes::{Bytes, BytesMut};

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
    #[error("unknown command")]
    UnknownCommand,
    #[error("header line without a colon")]
    HeaderWithoutColon,
    #[error("undefined escape sequence in header")]
    InvalidEscape,
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    #[error("invalid content-length header")]
    InvalidContentLength,
    #[error("body not followed by NUL")]
    MissingNul,
    #[error("frame too large")]
    FrameTooLarge,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("header line too long")]
    HeaderLineTooLong,
    #[error("body too large")]
    BodyTooLarge,
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
pub fn parse_frame(
    buf: &Bytes,
    version: Version,
    limits: &Limits,
) -> Result<Status<(Item, usize)>, ParseError> {
    let _ = (buf, version, limits);
    todo!("parse one item")
}

/// An incremental parser over a byte stream fed in chunks of any size.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    version: Version,
    buffer: BytesMut,
    failed: Option<ParseError>,
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
        }
    }

    /// The escaping rules to apply from now on.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends bytes from the peer. Call [`Parser::next_item`] until it returns `Ok(None)`.
    /// After an error the parser drops what it is given.
    pub fn feed(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!("buffer")
    }

    /// The next whole item, `Ok(None)` when more bytes are needed, or the error that
    /// stopped the parser for good.
    pub fn next_item(&mut self) -> Result<Option<Item>, ParseError> {
        todo!("parse from the buffer")
    }

    /// Bytes held for an unfinished frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}
