//! # rtchat-chat
//!
//! The chat and room domain of rtchat, the ports (traits) its adapters implement, and the
//! application service that maps STOMP events to the chat contract. Pure: no sockets, no
//! clocks, no async runtime, nothing that waits (the ports' async traits are only signatures
//! here: what a connection needs from them comes out as a [`Job`], plain data, and the driver
//! runs it), no randomness of its own (the service's generator is seeded through
//! [`ChatConfig::seed`]).
//!
//! Assembling a node (the embedded default, with `rtchat-memory`; the real assembly is
//! `rtchat_server::assemble` in `apps/server`; `ChatService::new`, which reads the store's
//! epoch and makes sure the lobby exists, is `rtchat_driver::ChatUseCases::new`, around
//! [`ChatService::assemble`]):
//!
//! ```text
//! let hub = Arc::new(Hub::new());
//! let ports = Ports {
//!     messages: Arc::new(MemoryMessageStore::new()),
//!     rooms: Arc::new(MemoryRoomStore::new()),
//!     presence: Arc::new(MemoryPresence::new()),
//!     broker: Arc::new(InProcessBroker::new(hub.clone())),
//!     tokens: Arc::new(jwt_tokens),
//!     clock: Arc::new(SystemClock),
//! };
//! let service = ChatService::new(ports, hub, ChatConfig { seed: rand::random(), ..Default::default() }).await?;
//! // or, with the epoch already read and the rooms known by other means:
//! let service = ChatService::assemble(ports, hub, config, epoch);
//! // per STOMP connection:
//! let mut connection = service.connection(peer_ip, sink);
//! ```

pub mod connection;
pub mod destination;
pub mod envelope;
pub mod hub;
mod identity;
mod ip;
pub mod jobs;
pub mod known_rooms;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod private_room;
pub mod room_log;
pub mod service;
pub mod validation;

pub use connection::ChatConnection;
pub use envelope::{Envelope, ErrorBody};
pub use hub::{ConnectionId, Hub};
pub use identity::is_valid_name_tag;
pub use ip::ip_prefix;
pub use jobs::{ChannelStart, Job, JobDone, Since, replay_window};
pub use known_rooms::{KNOWN_ROOM_TTL, KnownRooms};
pub use limits::WindowLimiter;
pub use metrics::{ErrorReason, Metrics, TransportKind};
pub use model::{
    ChatMessage, Identity, LOBBY, LOBBY_NAME, LogEpoch, MessageId, MessageKey, NewMessage,
    PRIVATE_ROOM_PREFIX, Room, RoomId, Seq,
};
pub use ports::{
    Appended, Appender, BackendError, Broker, Clock, ConnectionSink, CreateRoomError, Delivery,
    MessageStore, OfferError, PendingSend, Presence, RoomEvent, RoomEventSink, RoomStore,
    SendOutcome, SessionKey, TokenError, Tokens, VerifiedToken,
};
pub use private_room::PrivateRoomKey;
pub use room_log::{Repair, RoomLog, RoomLogConfig};
pub use service::{
    BadRequest, ChatConfig, ChatError, ChatService, InitOutcome, MAX_TOKEN_BYTES, Ports,
};
