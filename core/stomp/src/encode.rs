//! The encoder: frames to bytes, with each version's escaping and a `content-length`.
//!
//! Fan-out is the hot path of a chat server, so a MESSAGE is split in two:
//! [`SharedMessage`] holds the part every subscriber receives (destination, message-id,
//! content-type, content-length, the body), encoded once; [`encode_message_head`] writes the
//! few per-subscriber header lines (`subscription`, and `ack` for client ack modes) in front
//! of it. Delivering to a thousand subscribers encodes the body zero times more.
//!
//! Header values that a version cannot carry are made safe rather than sent as they are: in
//! STOMP 1.0 and in CONNECT/STOMP/CONNECTED, which have no escaping, a line feed inside a
//! name or value would end the header line and let the value inject headers of its own,
//! so it is written as a space.

use crate::escape::{Escaping, SpecialBytes, put_escaped};
use crate::frame::{Command, Frame, Headers, Version};
use bytes::{BufMut, Bytes, BytesMut};

/// Appends the wire form of `frame` for `version` to `out`, adding a
/// `content-length` header when the body is not empty and the frame has none.
///
/// Headers are escaped as `version` requires for `frame.command`; where no escaping exists
/// (1.0, CONNECT, STOMP, CONNECTED) a line feed in a name or value is written as a space.
pub fn encode_frame(frame: &Frame, version: Version, out: &mut BytesMut) {
    let escaping = Escaping::of(frame.command, version);
    let needs_content_length = !frame.body.is_empty() && frame.get("content-length").is_none();
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    // The exact size when nothing needs escaping; `content-length:` plus up to 20 digits.
    out.reserve(frame.command.as_str().len() + 1 + headers_len + 36 + frame.body.len() + 2);

    out.put_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    for (name, value) in frame.headers.iter() {
        put_header(out, name, value, escaping);
    }
    if needs_content_length {
        put_content_length(out, frame.body.len());
    }
    out.put_u8(b'\n');
    out.put_slice(&frame.body);
    out.put_u8(0);
}

/// The wire form of `frame` as one buffer.
pub fn encode_to_bytes(frame: &Frame, version: Version) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(frame, version, &mut out);
    out.freeze()
}

/// The shared, pre-encoded tail of a MESSAGE frame: every header line but the
/// per-subscriber ones, the blank line, the body and the NUL. Cloning is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMessage {
    // One tail per escaping rule that differs (1.0, 1.1, 1.2); usually all three are the same Bytes.
    tails: [Bytes; 3],
    message_id: String,
}

impl SharedMessage {
    /// Encodes the tail once. `headers` are extra headers after `destination`, `message-id`
    /// and (when given) `content-type`; `content-length` is always added (a `content-length`
    /// among `headers` is left out, as the body's real length is what counts).
    pub fn new(
        destination: &str,
        message_id: &str,
        content_type: Option<&str>,
        headers: &Headers,
        body: Bytes,
    ) -> Self {
        let extra = || headers.iter().filter(|(name, _)| *name != "content-length");
        let tail = |escaping: Escaping| {
            let extra_len: usize = extra().map(|(n, v)| n.len() + v.len() + 2).sum();
            let mut out = BytesMut::with_capacity(
                destination.len()
                    + message_id.len()
                    + content_type.map_or(0, str::len)
                    + extra_len
                    + 64
                    + body.len(),
            );
            put_header(&mut out, "destination", destination, escaping);
            put_header(&mut out, "message-id", message_id, escaping);
            if let Some(content_type) = content_type {
                put_header(&mut out, "content-type", content_type, escaping);
            }
            for (name, value) in extra() {
                put_header(&mut out, name, value, escaping);
            }
            put_content_length(&mut out, body.len());
            out.put_u8(b'\n');
            out.put_slice(&body);
            out.put_u8(0);
            out.freeze()
        };

        // Which bytes occur decides which versions' tails differ; usually none do.
        let mut special = SpecialBytes::default();
        special.note(destination);
        special.note(message_id);
        special.note(content_type.unwrap_or_default());
        for (name, value) in extra() {
            special.note(name);
            special.note(value);
        }
        let tails = if !special.any() {
            let same = tail(Escaping::None);
            [same.clone(), same.clone(), same]
        } else {
            let v1_1 = tail(Escaping::V1_1);
            let v1_2 = if special.carriage_return {
                tail(Escaping::V1_2)
            } else {
                v1_1.clone()
            };
            [tail(Escaping::None), v1_1, v1_2]
        };
        SharedMessage {
            tails,
            message_id: message_id.to_owned(),
        }
    }

    /// The `message-id` every subscriber sees.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The encoded tail for a session speaking `version`.
    pub fn tail(&self, version: Version) -> &Bytes {
        &self.tails[version as usize]
    }
}

/// Writes `MESSAGE\nsubscription:<id>\n` and, when `ack` is given, `ack:<ack>\n`:
/// the head that goes in front of [`SharedMessage::tail`]. Ack ids are the session's
/// numbers, written in decimal (no escaping needed).
pub fn encode_message_head(
    subscription: &str,
    ack: Option<u64>,
    version: Version,
    out: &mut BytesMut,
) {
    let escaping = Escaping::of(Command::Message, version);
    out.reserve(
        "MESSAGE\nsubscription:\n".len()
            + subscription.len()
            + ack.map_or(0, |_| "ack:\n".len() + MAX_DIGITS),
    );
    out.put_slice(b"MESSAGE\n");
    put_header(out, "subscription", subscription, escaping);
    if let Some(ack) = ack {
        out.put_slice(b"ack:");
        put_decimal(out, ack);
        out.put_u8(b'\n');
    }
}

/// Writes `name:value\n` with `escaping`.
fn put_header(out: &mut BytesMut, name: &str, value: &str, escaping: Escaping) {
    put_escaped(out, name, escaping);
    out.put_u8(b':');
    put_escaped(out, value, escaping);
    out.put_u8(b'\n');
}

/// Writes `content-length:<length>\n` without going through `fmt`.
fn put_content_length(out: &mut BytesMut, length: usize) {
    out.put_slice(b"content-length:");
    // usize is at most 64 bits.
    put_decimal(out, length as u64);
    out.put_u8(b'\n');
}

/// The digits of `u64::MAX`.
const MAX_DIGITS: usize = 20;

/// Writes `number` in decimal without going through `fmt`.
fn put_decimal(out: &mut BytesMut, number: u64) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Item, Limits, Status, parse_frame};

    fn encode(frame: &Frame, version: Version) -> Vec<u8> {
        encode_to_bytes(frame, version).to_vec()
    }

    fn parse_back(bytes: Bytes, version: Version) -> Frame {
        match parse_frame(&bytes, version, &Limits::default()) {
            Ok(Status::Complete((Item::Frame(frame), used))) => {
                assert_eq!(used, bytes.len());
                frame
            }
            other => panic!("expected one frame, got {other:?}"),
        }
    }

    #[test]
    fn frame_without_body_has_no_content_length() {
        let frame = Frame::new(Command::Receipt).header("receipt-id", "7");
        assert_eq!(
            encode(&frame, Version::V1_2),
            b"RECEIPT\nreceipt-id:7\n\n\0"
        );
    }

    #[test]
    fn body_gets_a_content_length() {
        let frame = Frame::new(Command::Error)
            .header("message", "bad")
            .body("a\0b");
        assert_eq!(
            encode(&frame, Version::V1_2),
            b"ERROR\nmessage:bad\ncontent-length:3\n\na\0b\0"
        );
    }

    #[test]
    fn explicit_content_length_is_kept() {
        let frame = Frame::new(Command::Send)
            .header("content-length", "2")
            .body("ab");
        assert_eq!(
            encode(&frame, Version::V1_2),
            b"SEND\ncontent-length:2\n\nab\0"
        );
    }

    #[test]
    fn v11_escapes_newline_colon_and_backslash_but_not_carriage_return() {
        let frame = Frame::new(Command::Message).header("a:b", "1\n2\\3\r4");
        assert_eq!(
            encode(&frame, Version::V1_1),
            b"MESSAGE\na\\cb:1\\n2\\\\3\r4\n\n\0"
        );
    }

    #[test]
    fn v12_escapes_carriage_return_too() {
        let frame = Frame::new(Command::Message).header("x", "a\rb");
        assert_eq!(encode(&frame, Version::V1_2), b"MESSAGE\nx:a\\rb\n\n\0");
    }

    #[test]
    fn v10_writes_headers_as_they_are() {
        let frame = Frame::new(Command::Message).header("x", "a:b\\c");
        assert_eq!(encode(&frame, Version::V1_0), b"MESSAGE\nx:a:b\\c\n\n\0");
    }

    #[test]
    fn connected_headers_are_never_escaped() {
        let frame = Frame::new(Command::Connected).header("server", "rtchat:1\\x");
        assert_eq!(
            encode(&frame, Version::V1_2),
            b"CONNECTED\nserver:rtchat:1\\x\n\n\0"
        );
    }

    #[test]
    fn unescapable_newline_cannot_inject_a_header() {
        let frame = Frame::new(Command::Error).header("message", "oops\nreceipt-id:1");
        let parsed = parse_back(encode_to_bytes(&frame, Version::V1_0), Version::V1_0);
        assert_eq!(parsed.headers.len(), 1);
        assert_eq!(parsed.get("message"), Some("oops receipt-id:1"));
    }

    #[test]
    fn large_content_length_is_written_in_decimal() {
        let frame = Frame::new(Command::Send).body(vec![b'x'; 1_234_567]);
        let bytes = encode(&frame, Version::V1_2);
        assert!(bytes.starts_with(b"SEND\ncontent-length:1234567\n\n"));
    }

    #[test]
    fn encoded_frame_parses_back_in_every_version() {
        let frame = Frame::new(Command::Send)
            .header("destination", "/pub/chat")
            .header("x", "y")
            .body("{\"message\":\"hi\"}");
        for version in Version::ALL {
            let mut expected = frame.clone();
            expected.headers.push("content-length", "16");
            assert_eq!(
                parse_back(encode_to_bytes(&frame, version), version),
                expected
            );
        }
    }

    #[test]
    fn shared_message_tails_are_one_buffer_when_nothing_needs_escaping() {
        let message = SharedMessage::new(
            "/sub/channel/lobby",
            "42",
            Some("application/json"),
            &Headers::new(),
            Bytes::from_static(b"{}"),
        );
        let v1_0 = message.tail(Version::V1_0);
        for version in Version::ALL {
            assert_eq!(message.tail(version).as_ptr(), v1_0.as_ptr());
        }
        assert_eq!(
            v1_0.as_ref(),
            b"destination:/sub/channel/lobby\nmessage-id:42\ncontent-type:application/json\ncontent-length:2\n\n{}\0"
        );
        assert_eq!(message.message_id(), "42");
    }

    #[test]
    fn shared_message_escapes_per_version_when_it_must() {
        let headers = Headers::new().with("time", "12:00");
        let message = SharedMessage::new("/d", "1", None, &headers, Bytes::new());
        assert_eq!(
            message.tail(Version::V1_0).as_ref(),
            b"destination:/d\nmessage-id:1\ntime:12:00\ncontent-length:0\n\n\0"
        );
        assert_eq!(
            message.tail(Version::V1_1).as_ref(),
            b"destination:/d\nmessage-id:1\ntime:12\\c00\ncontent-length:0\n\n\0"
        );
        // Without a carriage return 1.1 and 1.2 escape alike, so they share one buffer.
        assert_eq!(
            message.tail(Version::V1_1).as_ptr(),
            message.tail(Version::V1_2).as_ptr()
        );
    }

    #[test]
    fn shared_message_always_states_the_real_content_length() {
        let headers = Headers::new().with("content-length", "999");
        let message = SharedMessage::new("/d", "1", None, &headers, Bytes::from_static(b"a\0b"));
        assert_eq!(
            message.tail(Version::V1_2).as_ref(),
            b"destination:/d\nmessage-id:1\ncontent-length:3\n\na\0b\0"
        );
    }

    #[test]
    fn message_head_names_the_subscription_and_the_ack_id() {
        let mut out = BytesMut::new();
        encode_message_head("sub:1", Some(9), Version::V1_2, &mut out);
        assert_eq!(out.as_ref(), b"MESSAGE\nsubscription:sub\\c1\nack:9\n");
        let mut out = BytesMut::new();
        encode_message_head("sub-1", None, Version::V1_0, &mut out);
        assert_eq!(out.as_ref(), b"MESSAGE\nsubscription:sub-1\n");
    }

    #[test]
    fn head_and_shared_tail_form_one_message_frame() {
        let headers = Headers::new().with("sender", "a:b");
        let message = SharedMessage::new(
            "/sub/channel/r",
            "m-1",
            Some("text/plain"),
            &headers,
            Bytes::from_static(b"hi\0there"),
        );
        for version in Version::ALL {
            let mut wire = BytesMut::new();
            encode_message_head("s\\1", Some(41), version, &mut wire);
            wire.extend_from_slice(message.tail(version));
            let frame = parse_back(wire.freeze(), version);
            let expected = Frame::new(Command::Message)
                .header("subscription", "s\\1")
                .header("ack", "41")
                .header("destination", "/sub/channel/r")
                .header("message-id", "m-1")
                .header("content-type", "text/plain")
                .header("sender", "a:b")
                .header("content-length", "8")
                .body("hi\0there");
            assert_eq!(frame, expected, "{version}");
        }
    }
}
