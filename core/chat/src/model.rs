//! The chat domain's values: rooms, identities, messages. Constructors validate ("parse,
//! don't validate"), so a value of these types is always well-formed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A room identifier: 1 to 64 characters from `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomId(String);

/// Store-assigned message id, strictly increasing within a store.
pub type MessageId = u64;

/// The room that exists from the start.
pub const LOBBY: &str = "lobby";

/// A chat room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub room_id: RoomId,
    pub name: String,
}

/// Who someone is in the chat: taken from their token, never from what they send.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Display name, e.g. `Wren42`.
    pub rand_id: String,
    /// Unique tag, `#` and 6 upper-case hex digits, e.g. `#A1B2C3`.
    pub name_tag: String,
}

/// A message about to be stored (it has no id yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub room_id: RoomId,
    pub message: String,
    pub author: Identity,
    /// RFC 3339 UTC timestamp.
    pub created_at: String,
    /// Short address prefix, see [`crate::ip_prefix`].
    pub ip_address: String,
}

/// A stored chat message, exactly as clients receive it (field names are the contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: MessageId,
    pub room_id: String,
    pub message: String,
    pub rand_id: String,
    pub name_tag: String,
    pub created_at: String,
    pub ip_address: String,
}

impl RoomId {
    /// Parses a room id; `None` when empty, longer than 64 or with other characters.
    pub fn parse(value: &str) -> Option<RoomId> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| RoomId(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
