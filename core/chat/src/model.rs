//! The chat domain's values: rooms, identities, messages. Constructors validate ("parse,
//! don't validate"), so a value of these types is always well-formed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A room identifier: 1 to 64 characters from `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomId(String);

/// Store-assigned message id, strictly increasing within a store (ids may have holes).
pub type MessageId = u64;

/// A message's place in its room's log: 1, 2, 3, ... with no holes, assigned by the store
/// atomically with the write, so "everything up to seq N" is a complete prefix of the room.
pub type Seq = u64;

/// A store's log epoch (see [`crate::MessageStore::epoch`]): 1 to 64 characters from
/// `[A-Za-z0-9_-]`, typically a random UUID or hex string made when the log began.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LogEpoch(String);

impl LogEpoch {
    /// Parses an epoch; `None` when empty, longer than 64 or with other characters.
    pub fn parse(value: &str) -> Option<LogEpoch> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| LogEpoch(value.to_owned()))
    }

    /// The epoch of 128 random bits, as 32 hex digits (for adapters that draw one).
    pub fn from_bits(bits: u128) -> LogEpoch {
        LogEpoch(format!("{bits:032x}"))
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest client message key, in bytes.
pub const MAX_MESSAGE_KEY_LEN: usize = 64;

/// A client's key for one SEND (the `message-key` header): a retry with the same key from
/// the same identity in the same room is answered with the original, never stored twice.
/// 1 to 64 characters from `[A-Za-z0-9_.:-]`. The server gives keyless SENDs a key of its
/// own (starting with `~`, which clients cannot use), so its own retries are idempotent too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MessageKey(String);

impl MessageKey {
    /// Parses a client's key; `None` when empty, too long or with other characters.
    pub fn parse(value: &str) -> Option<MessageKey> {
        let ok = !value.is_empty()
            && value.len() <= MAX_MESSAGE_KEY_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        ok.then(|| MessageKey(value.to_owned()))
    }

    /// A key the server makes for a keyless SEND: `~` and `unique`, which no client key can
    /// equal (clients cannot use `~`).
    pub fn server_made(unique: &str) -> MessageKey {
        MessageKey(format!("~{unique}"))
    }

    /// A key read back from a store, trusted as written (for store adapters).
    pub fn from_stored(value: String) -> MessageKey {
        MessageKey(value)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The room that exists from the start.
pub const LOBBY: &str = "lobby";

/// The display name of [`LOBBY`].
pub const LOBBY_NAME: &str = "Lobby";

/// Ids of rooms for two start with this; public rooms may not, so a room's id alone says
/// whether it is listed (see [`Room::is_private`]).
pub const PRIVATE_ROOM_PREFIX: &str = "private-";

/// `/sub/channel/entry` is the live connection count, so no room may be called `entry`.
pub const RESERVED_ROOM_IDS: &[&str] = &["entry"];

/// A chat room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// The room's id, as used in destinations.
    pub room_id: RoomId,
    /// The name people see.
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
    /// The room it is posted to.
    pub room_id: RoomId,
    /// The text, trimmed and within the length limit.
    pub message: String,
    /// Who wrote it, from their token.
    pub author: Identity,
    /// RFC 3339 UTC timestamp.
    pub created_at: String,
    /// Short address prefix, see [`crate::ip_prefix`].
    pub ip_address: String,
    /// The idempotency key: with the author's tag and the room, it names this message.
    pub key: MessageKey,
}

/// A stored chat message, exactly as clients receive it (field names are the contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Store-assigned id, increasing.
    pub id: MessageId,
    /// The message's place in its room's log: contiguous, from 1.
    pub seq: Seq,
    /// The room it was posted to.
    pub room_id: String,
    /// The text.
    pub message: String,
    /// The author's display name.
    pub rand_id: String,
    /// The author's tag, `#` and 6 upper-case hex digits.
    pub name_tag: String,
    /// RFC 3339 UTC timestamp.
    pub created_at: String,
    /// Short address prefix of the author, see [`crate::ip_prefix`].
    pub ip_address: String,
}

impl ChatMessage {
    /// The stored form of `message` with the id and seq the store assigned (for store adapters).
    pub fn stored(id: MessageId, seq: Seq, message: NewMessage) -> ChatMessage {
        ChatMessage {
            id,
            seq,
            room_id: message.room_id.0,
            message: message.message,
            rand_id: message.author.rand_id,
            name_tag: message.author.name_tag,
            created_at: message.created_at,
            ip_address: message.ip_address,
        }
    }
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

    /// True for ids only the server may create: reserved names and the private-room prefix.
    pub fn is_reserved(&self) -> bool {
        RESERVED_ROOM_IDS.contains(&self.as_str()) || self.is_private()
    }

    /// True for the id of a room for two (never listed).
    pub fn is_private(&self) -> bool {
        self.0.starts_with(PRIVATE_ROOM_PREFIX)
    }
}

impl Room {
    /// True for a room for two, which `GET /rooms` does not list.
    pub fn is_private(&self) -> bool {
        self.room_id.is_private()
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
