//! The ports: what the chat needs from the outside world, as traits the adapters implement.
//! Each method documents the errors it may return.

use crate::model::{ChatMessage, Identity, LogEpoch, MessageId, NewMessage, Room, RoomId, Seq};
use crate::service::ChatError;
use async_trait::async_trait;
use rtchat_stomp::{SharedMessage, SubscriptionKey};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A store or broker that failed for reasons of its own (connection lost, ...): what was
/// being done and, when a library reported it, that library's error as the source. For logs
/// only (its text includes the source's); clients see a generic message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("backend failure: {context}{}", self.source.as_ref().map(|source| format!(": {source}")).unwrap_or_default())]
pub struct BackendError {
    context: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A failure found by the adapter itself (a malformed row, a missing room, ...).
    pub fn new(context: impl Into<String>) -> Self {
        BackendError {
            context: context.into(),
            source: None,
        }
    }

    /// A failure reported by a library (a driver's error), while doing `context`.
    pub fn caused_by(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// What was being done, without the source.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl PartialEq for BackendError {
    /// Equal when they read the same (sources are compared by their text).
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for BackendError {}

/// What became of one message of an [`MessageStore::append`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, with its id and seq.
    Stored(ChatMessage),
    /// A message with the same key, author and room was stored before: this is that one,
    /// and nothing new was stored.
    Duplicate(ChatMessage),
}

impl Appended {
    /// The stored message, new or original.
    pub fn message(&self) -> &ChatMessage {
        match self {
            Appended::Stored(message) | Appended::Duplicate(message) => message,
        }
    }

    /// The stored message, new or original.
    pub fn into_message(self) -> ChatMessage {
        match self {
            Appended::Stored(message) | Appended::Duplicate(message) => message,
        }
    }
}

/// Where messages live: one log per room.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores `batch` in `room`, in order, all or nothing (one transaction). Each new message
    /// gets the room's next seq (contiguous: a failed or rolled-back append uses none) and an
    /// id greater than every id assigned before in the room. A message whose key, author tag
    /// and room match a stored one is not stored again: its result is
    /// [`Appended::Duplicate`] with the original (this also holds within one batch). Results
    /// come in the order of `batch`.
    ///
    /// Errors: [`BackendError`] when nothing was stored, or when it cannot be known whether
    /// the batch was stored (a lost connection during commit): retrying the same batch is then
    /// safe, thanks to the keys.
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError>;
    /// The last seq of `room` (0 when it has no messages): everything up to it is stored.
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError>;
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
    /// The first `limit` messages of `room` with a seq above `after`, oldest first (seqs are
    /// contiguous, so this is `after + 1 ..` up to the head).
    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError>;
    /// The store's log epoch: made once when its log began (a new store, a wiped or replaced
    /// database, a memory store at each start) and the same for as long as the log lives.
    /// Ids and seqs from another epoch mean nothing in this one.
    async fn epoch(&self) -> Result<LogEpoch, BackendError>;
}

/// Why a room could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateRoomError {
    /// A room with that id exists: nothing was created.
    #[error("room already exists")]
    AlreadyExists,
    /// The store failed: the room may not exist.
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
    /// Rooms, public and private, whose last activity (their creation, or the last append
    /// that stored a message in them) is more than `idle_for` ago by the store's clock: at
    /// most `limit` of them, the longest idle first.
    async fn idle(&self, idle_for: Duration, limit: usize) -> Result<Vec<RoomId>, BackendError>;
    /// Removes, with all their messages, the rooms of `rooms` that are still idle for more
    /// than `idle_for` (one that had a message stored since [`RoomStore::idle`] named it is
    /// kept); returns the ids removed. A room not named is never removed. Ids of removed
    /// messages are never handed out again, and a room created again with a removed room's id
    /// continues its seqs, so within one log epoch a room's seq never names two messages.
    ///
    /// Errors: [`BackendError`] when nothing was removed (all or nothing).
    async fn remove_idle(
        &self,
        rooms: &[RoomId],
        idle_for: Duration,
    ) -> Result<Vec<RoomId>, BackendError>;
}

/// Something that happened in a room, fanned out to every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A stored message, for `/sub/channel/{roomId}`.
    Message(ChatMessage),
    /// A room's live count changed, for `/sub/presence/{roomId}`.
    Presence {
        /// The room.
        room_id: RoomId,
        /// Its sessions now.
        count: u64,
    },
    /// The number of connected sessions changed, for `/sub/channel/entry`.
    Entry {
        /// Connected sessions now.
        count: u64,
    },
}

/// Receives the room events the broker fans out (on every node: its local hub).
pub trait RoomEventSink: Send + Sync + 'static {
    /// Called once per event the broker received, at `now`. Chat messages may come in any
    /// order and some may never come (the store is the truth: the hub orders and repairs).
    /// Must not block.
    fn on_event(&self, event: RoomEvent, now: Instant);

    /// The broker's link was down or re-established at `now`: events may have been lost, so
    /// the node re-reads from the store what it may have missed. Must not block.
    fn on_reset(&self, now: Instant) {
        let _ = now;
    }
}

/// Fan-out of room events between nodes: the fast path, at most once. The adapter is built
/// with the node's [`RoomEventSink`] and calls it for every event published by any node,
/// this one included, and calls [`RoomEventSink::on_reset`] whenever it may have lost some.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `event` to every node.
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError>;

    /// Publishes `events`, in order (adapters send them in one round trip where they can).
    async fn publish_all(&self, events: Vec<RoomEvent>) -> Result<(), BackendError>;

    /// Whether the broker answers now (for a readiness check); in-process brokers always do.
    async fn ready(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// A SEND to `/pub/chat`, validated, on its way to its room's writer.
#[derive(Clone)]
pub struct PendingSend {
    /// The message to store.
    pub message: NewMessage,
    /// Where the outcome goes: the sending connection's queue.
    pub reply: Arc<dyn ConnectionSink>,
    /// The connection's number for this SEND, returned in the [`SendOutcome`].
    pub ticket: u64,
    /// When the SEND arrived: the writer answers within a bounded time of it.
    pub received: Instant,
}

impl std::fmt::Debug for PendingSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSend")
            .field("message", &self.message)
            .field("ticket", &self.ticket)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// What became of a [`PendingSend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The [`PendingSend::ticket`].
    pub ticket: u64,
    /// The stored message (a retry with a known key gets the original), or why not.
    pub result: Result<ChatMessage, ChatError>,
}

/// Group commit: hands validated SENDs to their room's writer, which stores every waiting
/// SEND of the room in one transaction, answers each sender through its
/// [`ConnectionSink::outcome`], then publishes the batch in order. Never waits.
pub trait Appender: Send + Sync + 'static {
    /// Queues `sends` (in order) for their rooms' writers. A connection hands over all the
    /// SENDs of one read at once, so they are stored together, in one transaction per room.
    fn submit(&self, sends: Vec<PendingSend>);
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

/// What a valid token says: who it is for and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The identity it carries.
    pub identity: Identity,
    /// Its `exp`, in seconds since the Unix epoch: it is not accepted from then on, and a
    /// session opened with it ends then unless it is refreshed with a later one.
    pub expires_at: u64,
}

/// Issues and verifies the signed tokens that carry an [`Identity`].
pub trait Tokens: Send + Sync + 'static {
    /// A new signed token for `identity`, with `audience` (the client address) as `aud`.
    fn issue(&self, identity: &Identity, audience: &str) -> String;
    /// The identity in a valid token, and when the token expires.
    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError>;
    /// The identity in a valid token.
    fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        self.verify_token(token).map(|verified| verified.identity)
    }
}

/// Wall-clock time: for `createdAt`, and to turn a token's `exp` into a deadline (the engine
/// and the driver otherwise use `Instant`s given by the caller).
pub trait Clock: Send + Sync + 'static {
    /// Now, as an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-22T10:00:00.123Z`.
    fn now_rfc3339(&self) -> String;
    /// Now, as a [`SystemTime`] (what a token's `exp` is compared with).
    fn now_system_time(&self) -> SystemTime;
}

/// A message for one subscription of one connection, queued by the hub.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscription on that connection, by the key its session gave it: a delivery
    /// queued before the subscription ended finds nothing, even if the client reused its id.
    pub subscription: SubscriptionKey,
    /// For chat messages, the seq (the connection drops what its subscription already has).
    pub seq: Option<Seq>,
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

    /// Queues the outcome of one of the connection's SENDs, behind the deliveries already
    /// queued. Never refused for being full: a connection has a bounded number of SENDs in
    /// flight. Dropped when the connection is gone.
    fn outcome(&self, outcome: SendOutcome);
}
