//! STOMP's header escaping, both ways: which rules a frame follows, undoing them when
//! parsing and applying them when encoding.
//!
//! 1.1 escapes `\n`, `:` and `\` as `\\n`, `\\c` and `\\\\`; 1.2 adds `\r` as `\\r`. 1.0, and the
//! CONNECT, STOMP and CONNECTED frames of every version, have no escaping at all.

use crate::frame::{Command, Version};
use crate::parse::ParseError;
use bytes::{BufMut, BytesMut};

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

/// Undoes the header escaping of `raw`, appending the result to `out`; an undefined escape
/// (including a final lone backslash) is an error. Runs without a backslash are copied in
/// one go.
pub(crate) fn unescape_into(
    raw: &str,
    escaping: Escaping,
    out: &mut String,
) -> Result<(), ParseError> {
    if escaping == Escaping::None {
        out.push_str(raw);
        return Ok(());
    }
    let mut rest = raw;
    while let Some(backslash) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..backslash]);
        let escaped = rest.as_bytes().get(backslash + 1).copied();
        out.push(match (escaped, escaping) {
            (Some(b'n'), _) => '\n',
            (Some(b'c'), _) => ':',
            (Some(b'\\'), _) => '\\',
            (Some(b'r'), Escaping::V1_2) => '\r',
            _ => return Err(ParseError::InvalidEscape),
        });
        // The escape is two ASCII bytes.
        rest = &rest[backslash + 2..];
    }
    out.push_str(rest);
    Ok(())
}

/// Which bytes that some version escapes occur in a set of header strings.
#[derive(Debug, Default)]
pub(crate) struct SpecialBytes {
    /// `\n`, `:` or `\`: escaped from 1.1 on (and `\n` made safe in 1.0).
    pub(crate) escaped_from_v1_1: bool,
    /// `\r`: escaped in 1.2 only.
    pub(crate) carriage_return: bool,
}

impl SpecialBytes {
    pub(crate) fn note(&mut self, text: &str) {
        for byte in text.bytes() {
            match byte {
                b'\n' | b':' | b'\\' => self.escaped_from_v1_1 = true,
                b'\r' => self.carriage_return = true,
                _ => {}
            }
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.escaped_from_v1_1 || self.carriage_return
    }
}

/// Writes `text` escaped; runs of bytes that need nothing are copied in one go.
pub(crate) fn put_escaped(out: &mut BytesMut, text: &str, escaping: Escaping) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let replacement: &[u8] = match (escaping, byte) {
            // No escaping exists: keep the line intact (see the module docs).
            (Escaping::None, b'\n') => b" ",
            (Escaping::None, _) => continue,
            (_, b'\n') => b"\\n",
            (_, b':') => b"\\c",
            (_, b'\\') => b"\\\\",
            (Escaping::V1_2, b'\r') => b"\\r",
            _ => continue,
        };
        out.put_slice(&bytes[copied..at]);
        out.put_slice(replacement);
        copied = at + 1;
    }
    out.put_slice(&bytes[copied..]);
}
