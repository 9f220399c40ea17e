//! The ports: what the chat needs from the outside world, as traits the adapters implement.
//! Each method documents the errors it may return.

use crate::model::{ChatMessage, Identity, MessageId, NewMessage, Room, RoomId};
use async_trait::async_trait;
use rtchat_stomp::SharedMessage;
use std::sync::Arc;

/// A store or broker that failed for reasons of its own (connection lost, ...). The text is
/// for logs only; clients see a generic message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend failure: {0}")]
pub struct BackendError(pub String);

/// Where messages live.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a message and assigns it an id greater than every id assigned before.
    async fn append(&self, message: NewMessage) -> Result<ChatMessage, BackendError>;
    /// The newest `limit` messages of `room`, newest first.
    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError>;
    /// The `limit` messages of `room` with an id below `before`, newest first.
    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError>;
    /// The first `limit` messages of `room` with an id above `after`, oldest first.
    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError>;
}

/// Why a room could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateRoomError {
    #[error("room already exists")]
    AlreadyExists,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Where rooms live.
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Creates `room`; [`CreateRoomError::AlreadyExists`] when its id is taken.
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError>;
    /// The room with this id, if any.
    async fn get(&self, id: &RoomId) -> Result<Option<Room>, BackendError>;
    /// Every public room, in creation order.
    async fn list(&self) -> Result<Vec<Room>, BackendError>;
    /// How many rooms there are, public and private.
    async fn count(&self) -> Result<u64, BackendError>;
}

/// Something that happened in a room, fanned out to every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A stored message, for `/sub/channel/{roomId}`.
    Message(ChatMessage),
    /// A room's live count changed, for `/sub/presence/{roomId}`.
    Presence { room_id: RoomId, count: u64 },
    /// The number of connected sessions changed, for `/sub/channel/entry`.
    Entry { count: u64 },
}

/// Receives the room events the broker fans out (on every node: its local hub).
pub trait RoomEventSink: Send + Sync + 'static {
    /// Called once per event, in publish order per room. Must not block.
    fn on_event(&self, event: RoomEvent);
}

/// Fan-out of room events between nodes. The adapter is built with the node's
/// [`RoomEventSink`] and calls it for every event published by any node, this one included.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `event` to every node.
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError>;
}

/// A session, unique across nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub Arc<str>);

/// Who is connected, and who is in which room, across nodes.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// A session connected; returns the number of connected sessions.
    async fn connected(&self, session: &SessionKey) -> Result<u64, BackendError>;
    /// A session ended (also leaves every room); returns the number of connected sessions
    /// and the rooms whose count changed, with their new counts.
    async fn disconnected(
        &self,
        session: &SessionKey,
    ) -> Result<(u64, Vec<(RoomId, u64)>), BackendError>;
    /// A session joined a room (idempotent); returns the room's count of distinct sessions.
    async fn joined(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError>;
    /// A session left a room; returns the room's count.
    async fn left(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError>;
    /// A room's count of distinct sessions.
    async fn room_count(&self, room: &RoomId) -> Result<u64, BackendError>;
    /// The number of connected sessions.
    async fn total(&self) -> Result<u64, BackendError>;
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signed by us but past `exp`: the identity is still known, so it can be re-issued.
    #[error("token expired")]
    Expired(Identity),
    /// Malformed, badly signed, wrong issuer, or not yet valid.
    #[error("invalid token")]
    Invalid,
}

/// Issues and verifies the signed tokens that carry an [`Identity`].
pub trait Tokens: Send + Sync + 'static {
    /// A new signed token for `identity`, with `audience` (the client address) as `aud`.
    fn issue(&self, identity: &Identity, audience: &str) -> String;
    /// The identity in a valid token.
    fn verify(&self, token: &str) -> Result<Identity, TokenError>;
}

/// Wall-clock time for `createdAt` (the engine and the driver use `Instant`s given by the caller).
pub trait Clock: Send + Sync + 'static {
    /// Now, as an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-22T10:00:00.123Z`.
    fn now_rfc3339(&self) -> String;
}

/// A message for one subscription of one connection, queued by the hub.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscription id on that connection.
    pub subscription: Arc<str>,
    /// For chat messages, the message id (used to drop duplicates after a `since-id` replay).
    pub message_id: Option<MessageId>,
    /// The pre-encoded message, shared by every subscriber.
    pub message: SharedMessage,
}

/// The queue of one connection, written by the hub without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The connection's bounded queue is full: it is a slow consumer and will be closed.
    #[error("outbound queue full")]
    Full,
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
}

/// The outbound queue of one connection (implemented by the driver over a bounded channel).
pub trait ConnectionSink: Send + Sync + 'static {
    /// Queues `delivery` without blocking. On [`OfferError::Full`] the sink's owner must close
    /// the connection with an ERROR (the room never waits for a slow reader).
    fn offer(&self, delivery: Delivery) -> Result<(), OfferError>;
}
