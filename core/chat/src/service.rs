//! The application service: the chat contract (MISSION.md) in terms of the ports.
//! The HTTP adapter calls it directly; STOMP connections go through [`crate::ChatConnection`].

use crate::hub::Hub;
use crate::model::{ChatMessage, Identity, MessageId, Room, RoomId};
use crate::ports::{Broker, Clock, ConnectionSink, MessageStore, Presence, RoomStore, Tokens};
use std::net::IpAddr;
use std::sync::Arc;

/// Tunables of the chat, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Longest message, in characters, after trimming (default 2,000).
    pub max_message_chars: usize,
    /// Largest `limit` accepted by history queries (default 100).
    pub max_history_limit: usize,
    /// Messages in the subscribe-time history reply when no `limit` header is given (50).
    pub history_reply_default: usize,
    /// Most messages replayed for one `since-id` subscription (default 1,000).
    pub max_replay: usize,
    /// SENDs to `/pub/chat` per connection per second before `RATE_LIMITED` (default 20).
    pub max_sends_per_second: u32,
    /// The `server` part of ids and the token issuer.
    pub node_name: String,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_message_chars: 2000,
            max_history_limit: 100,
            history_reply_default: 50,
            max_replay: 1000,
            max_sends_per_second: 20,
            node_name: "rtchat".to_owned(),
        }
    }
}

/// An application error as the contract names it: the `type` code of the envelope and a
/// message safe to show a user (never an internal cause).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    #[error("unknown room")]
    UnknownRoom,
    #[error("invalid room id")]
    InvalidRoomId,
    #[error("message is empty")]
    EmptyMessage,
    #[error("message is too long (at most {max} characters)")]
    MessageTooLong { max: usize },
    #[error("too many messages, slow down")]
    RateLimited,
    #[error("clients may not send to {0}")]
    ForbiddenDestination(String),
    #[error("unknown destination {0}")]
    UnknownDestination(String),
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("room already exists")]
    RoomExists,
    #[error("invalid token")]
    InvalidToken,
    #[error("expired token")]
    ExpiredToken,
    #[error("temporarily unavailable")]
    Unavailable,
}

impl ChatError {
    /// The envelope's `type` code, e.g. `UNKNOWN_ROOM`.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::UnknownRoom => "UNKNOWN_ROOM",
            ChatError::InvalidRoomId => "INVALID_ROOM_ID",
            ChatError::EmptyMessage => "EMPTY_MESSAGE",
            ChatError::MessageTooLong { .. } => "MESSAGE_TOO_LONG",
            ChatError::RateLimited => "RATE_LIMITED",
            ChatError::ForbiddenDestination(_) => "FORBIDDEN_DESTINATION",
            ChatError::UnknownDestination(_) => "UNKNOWN_DESTINATION",
            ChatError::BadRequest(_) => "BAD_REQUEST",
            ChatError::RoomExists => "ROOM_EXISTS",
            ChatError::InvalidToken => "INVALID_TOKEN",
            ChatError::ExpiredToken => "EXPIRED_TOKEN",
            ChatError::Unavailable => "UNAVAILABLE",
        }
    }
}

/// What `GET /init` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// No token (or `null`): a new identity and token (`SUCCESS_TOKEN_ISSUANCE`).
    Issued(String),
    /// The token is valid (`SUCCESS_TOKEN_VALID`); the same token.
    Valid(String),
    /// Expired: a new token for the same identity (`EXPIRED_TOKEN`, success false).
    Reissued(String),
    /// Malformed or badly signed (`INVALID_TOKEN`, 401).
    Invalid,
}

/// The ports a node is assembled from.
#[derive(Clone)]
pub struct Ports {
    pub messages: Arc<dyn MessageStore>,
    pub rooms: Arc<dyn RoomStore>,
    pub presence: Arc<dyn Presence>,
    pub broker: Arc<dyn Broker>,
    pub tokens: Arc<dyn Tokens>,
    pub clock: Arc<dyn Clock>,
}

/// One node's chat service. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    // filled in by the implementation
    _hub: Arc<Hub>,
}

impl ChatService {
    /// Assembles a service. `hub` is the node's local fan-out, the same one given to the broker
    /// adapter as its [`crate::ports::RoomEventSink`]. Makes sure `lobby` exists.
    pub async fn new(ports: Ports, hub: Arc<Hub>, config: ChatConfig) -> Result<Self, ChatError> {
        let _ = (ports, hub, config);
        todo!()
    }

    /// `GET /init`: `bearer` is the token after `Bearer `, if any; `client` the peer address.
    pub fn init(&self, bearer: Option<&str>, client: IpAddr) -> InitOutcome {
        let _ = (bearer, client);
        todo!()
    }

    /// Verifies a bearer token (HTTP history endpoints and STOMP CONNECT).
    pub fn authenticate(&self, bearer: &str) -> Result<Identity, ChatError> {
        let _ = bearer;
        todo!()
    }

    /// Validates, stores, then publishes a chat message. Returns it once it is stored.
    pub async fn post_message(
        &self,
        author: &Identity,
        client: IpAddr,
        room: &str,
        text: &str,
    ) -> Result<ChatMessage, ChatError> {
        let _ = (author, client, room, text);
        todo!()
    }

    /// `GET /message` (before = None) and `GET /message/lastMessageId`: newest first.
    pub async fn history(
        &self,
        room: &str,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        let _ = (room, limit, before);
        todo!()
    }

    /// `GET /rooms`: each public room with its live count.
    pub async fn rooms(&self) -> Result<Vec<(Room, u64)>, ChatError> {
        todo!()
    }

    /// `POST /rooms`: a public room; a new id is generated when `room_id` is `None`.
    pub async fn create_room(&self, name: &str, room_id: Option<&str>) -> Result<Room, ChatError> {
        let _ = (name, room_id);
        todo!()
    }

    /// `POST /chatroom/private`: the same room for the same pair, in either order.
    pub async fn private_room(&self, sender: &str, receiver: &str) -> Result<Room, ChatError> {
        let _ = (sender, receiver);
        todo!()
    }

    /// A handler for one new STOMP connection from `client`, delivering through `sink`.
    pub fn connection(&self, client: IpAddr, sink: Arc<dyn ConnectionSink>) -> crate::ChatConnection {
        let _ = (client, sink);
        todo!()
    }
}
