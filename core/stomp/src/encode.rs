//! The encoder: frames to bytes, with each version's escaping and a `content-length`.
//!
//! Fan-out is the hot path of a chat server, so a MESSAGE is split in two:
//! [`SharedMessage`] holds the part every subscriber receives (destination, message-id,
//! content-type, content-length, the body), encoded once; [`encode_message_head`] writes the
//! few per-subscriber header lines (`subscription`, and `ack` for client ack modes) in front
//! of it. Delivering to a thousand subscribers encodes the body zero times more.

use crate::frame::{Frame, Headers, Version};
use bytes::{Bytes, BytesMut};

/// Appends the wire form of `frame` for `version` to `out`, adding a
/// `content-length` header when the body is not empty and the frame has none.
pub fn encode_frame(frame: &Frame, version: Version, out: &mut BytesMut) {
    let _ = (frame, version, out);
    todo!()
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
    /// and (when given) `content-type`; `content-length` is always added.
    pub fn new(
        destination: &str,
        message_id: &str,
        content_type: Option<&str>,
        headers: &Headers,
        body: Bytes,
    ) -> Self {
        let _ = (destination, message_id, content_type, headers, body);
        todo!()
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
/// the head that goes in front of [`SharedMessage::tail`].
pub fn encode_message_head(subscription: &str, ack: Option<&str>, version: Version, out: &mut BytesMut) {
    let _ = (subscription, ack, version, out);
    todo!()
}
