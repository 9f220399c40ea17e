//! The broker's wire format: one JSON object per pub/sub message, with a version tag.
//!
//! ```json
//! {"v":1,"kind":"message","message":{"id":1,"roomId":"lobby","message":"hi",...}}
//! {"v":1,"kind":"presence","roomId":"lobby","count":3}
//! {"v":1,"kind":"entry","count":7}
//! ```
//!
//! A payload with another version, an unknown kind, an invalid room id or anything else that
//! does not decode is rejected with a [`DecodeError`]; the broker logs it and skips it.

use rtchat_chat::{ChatMessage, RoomEvent, RoomId};
use serde::{Deserialize, Serialize};

/// The version this crate writes and the only one it reads.
pub const WIRE_VERSION: u32 = 1;

/// Why a payload was not a room event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or not the shape of any event (the text is serde's message).
    Malformed(String),
    /// A version this node does not understand.
    UnsupportedVersion(u32),
    /// A presence event whose room id is not a valid [`RoomId`].
    InvalidRoomId,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed event: {why}"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported event version {v}"),
            DecodeError::InvalidRoomId => f.write_str("invalid room id"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Serialize, Deserialize)]
struct Wire<T> {
    v: u32,
    #[serde(flatten)]
    event: T,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum WireOut<'a> {
    Message {
        message: &'a ChatMessage,
    },
    Presence {
        #[serde(rename = "roomId")]
        room_id: &'a str,
        count: u64,
    },
    Entry {
        count: u64,
    },
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum WireIn {
    Message {
        message: ChatMessage,
    },
    Presence {
        #[serde(rename = "roomId")]
        room_id: String,
        count: u64,
    },
    Entry {
        count: u64,
    },
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// The payload for `event`.
pub fn encode(event: &RoomEvent) -> Vec<u8> {
    let event = match event {
        RoomEvent::Message(message) => WireOut::Message { message },
        RoomEvent::Presence { room_id, count } => WireOut::Presence {
            room_id: room_id.as_str(),
            count: *count,
        },
        RoomEvent::Entry { count } => WireOut::Entry { count: *count },
    };
    let wire = Wire {
        v: WIRE_VERSION,
        event,
    };
    // Serialising these plain structs (strings and integers, string keys) cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The event in `payload`.
pub fn decode(payload: &[u8]) -> Result<RoomEvent, DecodeError> {
    let version: VersionOnly =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if version.v != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version.v));
    }
    let wire: Wire<WireIn> =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(match wire.event {
        WireIn::Message { message } => RoomEvent::Message(message),
        WireIn::Presence { room_id, count } => RoomEvent::Presence {
            room_id: RoomId::parse(&room_id).ok_or(DecodeError::InvalidRoomId)?,
            count,
        },
        WireIn::Entry { count } => RoomEvent::Entry { count },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> ChatMessage {
        ChatMessage {
            id: 42,
            seq: 7,
            room_id: "lobby".into(),
            message: "hi \"there\" <b>".into(),
            rand_id: "Wren42".into(),
            name_tag: "#A1B2C3".into(),
            created_at: "2026-11-22T10:00:00.123Z".into(),
            ip_address: "192.168".into(),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        let events = [
            RoomEvent::Message(message()),
            RoomEvent::Presence {
                room_id: RoomId::parse("lobby").expect("room id"),
                count: 3,
            },
            RoomEvent::Entry { count: 7 },
        ];
        for event in events {
            assert_eq!(decode(&encode(&event)), Ok(event));
        }
    }

    #[test]
    fn writes_the_documented_shape() {
        let entry = encode(&RoomEvent::Entry { count: 7 });
        assert_eq!(entry, br#"{"v":1,"kind":"entry","count":7}"#);
        let presence = encode(&RoomEvent::Presence {
            room_id: RoomId::parse("r1").expect("room id"),
            count: 2,
        });
        assert_eq!(
            presence,
            br#"{"v":1,"kind":"presence","roomId":"r1","count":2}"#
        );
        let message: serde_json::Value =
            serde_json::from_slice(&encode(&RoomEvent::Message(message()))).expect("json");
        assert_eq!(message["v"], 1);
        assert_eq!(message["kind"], "message");
        assert_eq!(message["message"]["roomId"], "lobby");
        assert_eq!(message["message"]["nameTag"], "#A1B2C3");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let bad: &[&[u8]] = &[
            b"",
            b"not json",
            b"\xff\xfe",
            b"[]",
            b"{}",
            br#"{"v":1}"#,
            br#"{"v":1,"kind":"nope"}"#,
            br#"{"v":1,"kind":"entry"}"#,
            br#"{"v":1,"kind":"entry","count":-1}"#,
            br#"{"v":"1","kind":"entry","count":1}"#,
            br#"{"v":1,"kind":"message","message":{"id":1}}"#,
        ];
        for payload in bad {
            assert!(
                matches!(decode(payload), Err(DecodeError::Malformed(_))),
                "{payload:?}"
            );
        }
        assert_eq!(
            decode(br#"{"v":2,"kind":"entry","count":1}"#),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(br#"{"v":1,"kind":"presence","roomId":"a b","count":1}"#),
            Err(DecodeError::InvalidRoomId)
        );
    }
}
