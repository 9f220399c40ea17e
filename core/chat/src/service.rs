//! The application service: one node's chat state (its ports, hub, configuration, generator
//! and the rooms known to exist) and the contract's decisions (docs/protocol.md) as plain
//! functions: tokens and identities, validation, who may enter a room, room ids, room
//! capacity. Nothing here waits: the use cases that store, read or create (the HTTP API's,
//! and posting from outside a connection) run in the driver (`rtchat_driver::ChatUseCases`),
//! deciding with these functions; STOMP connections go through [`crate::ChatConnection`].

use crate::hub::{ConnectionId, Hub};
use crate::ip::ip_prefix;
use crate::known_rooms::KnownRooms;
use crate::model::{Identity, LogEpoch, MessageKey, NewMessage, Room, RoomId};
use crate::ports::{
    Appender, Broker, Clock, ConnectionSink, MessageStore, Presence, RoomStore, SessionKey,
    TokenError, Tokens, VerifiedToken,
};
use crate::private_room::PrivateRoomKey;
use crate::validation;
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Tunables of the chat, with the contract's defaults.
#[derive(Clone)]
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
    /// SENDs one connection may have waiting for the store (default 256); past it the
    /// connection stops reading until some are answered.
    pub max_sends_in_flight: usize,
    /// SUBSCRIBEs per connection per second before `RATE_LIMITED` (default 10). Joining and
    /// leaving rooms makes the server tell every `/sub/channel/entry` and presence subscriber,
    /// so a client looping SUBSCRIBE/UNSUBSCRIBE would otherwise flood everyone.
    pub max_subscribes_per_second: u32,
    /// Rooms the node keeps at most, public and private (default 10,000): creating rooms is
    /// open to anyone, and each one costs memory.
    pub max_rooms: usize,
    /// The `server` part of ids and the token issuer.
    pub node_name: String,
    /// The key private room ids are made with (the same on every node; the app derives it
    /// from its JWT secret).
    pub private_room_key: PrivateRoomKey,
    /// Seed of the service's generator of identities, room ids and session keys. Core has
    /// no randomness of its own: the app sets this from the OS (e.g. `rand::random()`). The
    /// default (zero) is stirred with the clock at start, so runs differ, but is predictable.
    pub seed: [u8; 32],
}

impl fmt::Debug for ChatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed is left out: it would predict every name the node hands out.
        f.debug_struct("ChatConfig")
            .field("max_message_chars", &self.max_message_chars)
            .field("max_history_limit", &self.max_history_limit)
            .field("history_reply_default", &self.history_reply_default)
            .field("max_replay", &self.max_replay)
            .field("max_sends_per_second", &self.max_sends_per_second)
            .field("max_sends_in_flight", &self.max_sends_in_flight)
            .field("max_subscribes_per_second", &self.max_subscribes_per_second)
            .field("max_rooms", &self.max_rooms)
            .field("node_name", &self.node_name)
            .field("private_room_key", &self.private_room_key)
            .finish_non_exhaustive()
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_message_chars: 2000,
            max_history_limit: 100,
            history_reply_default: 50,
            max_replay: 1000,
            max_sends_per_second: 20,
            max_sends_in_flight: 256,
            max_subscribes_per_second: 10,
            max_rooms: 10_000,
            node_name: "rtchat".to_owned(),
            private_room_key: PrivateRoomKey::default(),
            seed: [0; 32],
        }
    }
}

/// An application error as the contract names it: the `type` code of the envelope and a
/// message safe to show a user (never an internal cause).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// No room with that id.
    #[error("unknown room")]
    UnknownRoom,
    /// A room id that is not 1-64 of `[A-Za-z0-9_-]`, or is reserved.
    #[error("invalid room id")]
    InvalidRoomId,
    /// Nothing left after trimming.
    #[error("message is empty")]
    EmptyMessage,
    /// Longer than the configured limit, in characters.
    #[error("message is too long (at most {max} characters)")]
    MessageTooLong {
        /// The limit.
        max: usize,
    },
    /// Too many SENDs per second on this connection.
    #[error("too many messages, slow down")]
    RateLimited,
    /// A SEND to a destination only the server may publish to.
    #[error("clients may not send to {0}")]
    ForbiddenDestination(String),
    /// A destination the contract does not name.
    #[error("unknown destination {0}")]
    UnknownDestination(String),
    /// A malformed request (bad JSON, missing field, out-of-range limit).
    #[error("invalid request: {0}")]
    BadRequest(#[source] BadRequest),
    /// `POST /rooms` with a taken id.
    #[error("room already exists")]
    RoomExists,
    /// The node holds as many rooms as it may (`--max-rooms`).
    #[error("no more rooms can be created on this server")]
    TooManyRooms,
    /// Malformed or badly signed token.
    #[error("invalid token")]
    InvalidToken,
    /// A private room that is not this identity's.
    #[error("this room is private")]
    Forbidden,
    /// Well signed but past its `exp`.
    #[error("expired token")]
    ExpiredToken,
    /// A token offered to refresh a session (`/pub/token`) that carries another identity
    /// than the session's. Its code is `FORBIDDEN`, as for a private room.
    #[error("the token is for another identity than the session's")]
    OtherIdentity,
    /// A token offered to refresh a session (`/pub/token`) that does not expire later than
    /// the session's current one.
    #[error("the token does not expire later than the session's current one")]
    StaleToken,
    /// A store, presence or broker backend failed; the cause is not shown.
    #[error("temporarily unavailable")]
    Unavailable,
    /// A SEND's message could not be stored within the time the server answers in (the store
    /// is down). It may not be stored; sending it again with the same `message-key` cannot
    /// store it twice.
    #[error("the message could not be stored in time; send it again with the same message-key")]
    NotStored,
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
            ChatError::TooManyRooms => "ROOM_LIMIT_REACHED",
            ChatError::InvalidToken => "INVALID_TOKEN",
            ChatError::Forbidden | ChatError::OtherIdentity => "FORBIDDEN",
            ChatError::ExpiredToken => "EXPIRED_TOKEN",
            ChatError::StaleToken => "STALE_TOKEN",
            ChatError::Unavailable => "UNAVAILABLE",
            ChatError::NotStored => "NOT_STORED",
        }
    }
}

/// What is wrong with a request ([`ChatError::BadRequest`]); the text is the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// A SEND's body is not the JSON the contract names.
    #[error("body must be JSON {{\"roomId\": string, \"message\": string}}")]
    SendBody,
    /// A `message-key` header outside its alphabet or length.
    #[error("header 'message-key' must be 1 to 64 of [A-Za-z0-9_.:-]")]
    MessageKey,
    /// A header that must be a non-negative integer is not.
    #[error("header '{0}' must be a number")]
    NotANumber(String),
    /// A history page size out of range.
    #[error("limit must be between 1 and {max}")]
    Limit {
        /// The largest page size.
        max: usize,
    },
    /// A room name that is empty or too long.
    #[error("room name must be 1 to {max} characters")]
    RoomName {
        /// The most characters.
        max: usize,
    },
    /// A private room's member (`senderId` or `receiverId`) is not a name tag.
    #[error("{0} must be a name tag like #A1B2C3")]
    NotANameTag(&'static str),
    /// A private room asked for between someone and themselves.
    #[error("a private room is for two different people")]
    SamePerson,
    /// The HTTP API could not read the request (a query parameter or the body).
    #[error("{0}")]
    Http(String),
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
    /// `GET /init?refresh=true` with a valid token: a newly issued token for the same
    /// identity (`SUCCESS_TOKEN_REFRESHED`), and that identity (refreshes are limited per
    /// identity).
    Refreshed {
        /// The new token.
        token: String,
        /// Whose it is.
        identity: Identity,
    },
}

/// The ports a node is assembled from.
#[derive(Clone)]
pub struct Ports {
    /// Where messages live.
    pub messages: Arc<dyn MessageStore>,
    /// Where rooms live.
    pub rooms: Arc<dyn RoomStore>,
    /// Who is connected and in which room.
    pub presence: Arc<dyn Presence>,
    /// Fan-out of room events to every node (this one's hub included).
    pub broker: Arc<dyn Broker>,
    /// The room writers that store SENDs in batches (group commit).
    pub appender: Arc<dyn Appender>,
    /// Issues and verifies identity tokens.
    pub tokens: Arc<dyn Tokens>,
    /// Wall-clock time for `createdAt`.
    pub clock: Arc<dyn Clock>,
}

/// One node's chat service. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    ports: Ports,
    hub: Arc<Hub>,
    config: ChatConfig,
    rng: Mutex<ChaCha12Rng>,
    /// Rooms lately seen to exist, so posting to a known room costs no store round trip.
    known_rooms: Arc<KnownRooms>,
    /// Random per start, so session keys of this run never collide with a previous run's
    /// in a shared presence store (the counter restarts at 1).
    boot_nonce: u32,
    /// The store's log epoch, read at start.
    epoch: LogEpoch,
    next_connection: AtomicU64,
}

/// Longest token accepted on any path (`/init`, the HTTP API, CONNECT), checked before any
/// decoding: ours are about 400 bytes, and a huge one only costs the server work.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Name given to rooms for two.
const PRIVATE_ROOM_NAME: &str = "Private room";

/// Generated room ids are `room-` and this many hex digits.
const GENERATED_ROOM_ID_HEX: usize = 12;

impl ChatService {
    /// A service over `ports`, whose message store's log epoch is `epoch` (read from the
    /// store by whoever assembles the node: the driver's `ChatUseCases::new`, which also
    /// makes sure the lobby exists). `hub` is the node's local fan-out, the same one given to
    /// the broker adapter as its [`crate::ports::RoomEventSink`]. No room is known to exist
    /// yet (see [`ChatService::known_rooms`]).
    pub fn assemble(ports: Ports, hub: Arc<Hub>, config: ChatConfig, epoch: LogEpoch) -> Self {
        let mut rng = ChaCha12Rng::from_seed(stirred_seed(&config, ports.clock.as_ref()));
        let boot_nonce = rng.next_u32();
        hub.set_epoch(epoch.clone());
        ChatService {
            inner: Arc::new(Inner {
                ports,
                hub,
                config,
                rng: Mutex::new(rng),
                known_rooms: Arc::new(KnownRooms::default()),
                boot_nonce,
                epoch,
                next_connection: AtomicU64::new(1),
            }),
        }
    }

    /// `GET /init`: `bearer` is the token after `Bearer `, if any; `client` the peer address.
    pub fn init(&self, bearer: Option<&str>, client: IpAddr) -> InitOutcome {
        let tokens = &self.inner.ports.tokens;
        let audience = client.to_string();
        let Some(token) = bearer.map(str::trim).filter(|t| !is_absent_token(t)) else {
            let identity = Identity::generate(&mut *self.rng());
            return InitOutcome::Issued(tokens.issue(&identity, &audience));
        };
        if token.len() > MAX_TOKEN_BYTES {
            return InitOutcome::Invalid;
        }
        match tokens.verify(token) {
            Ok(_) => InitOutcome::Valid(token.to_owned()),
            Err(TokenError::Expired(identity)) => {
                InitOutcome::Reissued(tokens.issue(&identity, &audience))
            }
            Err(TokenError::Invalid) => InitOutcome::Invalid,
        }
    }

    /// `GET /init?refresh=true` with `token`: a valid token gets a new one for the same
    /// identity, with a later `exp` ([`InitOutcome::Refreshed`]); an expired or invalid one
    /// gets what plain `GET /init` answers ([`InitOutcome::Reissued`], [`InitOutcome::Invalid`]).
    /// Never a new identity.
    pub fn refresh(&self, token: &str, client: IpAddr) -> InitOutcome {
        let tokens = &self.inner.ports.tokens;
        let token = token.trim();
        if is_absent_token(token) || token.len() > MAX_TOKEN_BYTES {
            return InitOutcome::Invalid;
        }
        let audience = client.to_string();
        match tokens.verify(token) {
            Ok(identity) => InitOutcome::Refreshed {
                token: tokens.issue(&identity, &audience),
                identity,
            },
            Err(TokenError::Expired(identity)) => {
                InitOutcome::Reissued(tokens.issue(&identity, &audience))
            }
            Err(TokenError::Invalid) => InitOutcome::Invalid,
        }
    }

    /// The store's log epoch (sent with CONNECTED and every chat MESSAGE).
    pub fn epoch(&self) -> &LogEpoch {
        &self.inner.epoch
    }

    /// Verifies a bearer token (HTTP history endpoints).
    pub fn authenticate(&self, bearer: &str) -> Result<Identity, ChatError> {
        self.verify_token(bearer).map(|verified| verified.identity)
    }

    /// Verifies a bearer token and tells when it expires (STOMP CONNECT, and the refresh of a
    /// session on `/pub/token`): [`ChatError::InvalidToken`] for an absent, oversized (checked
    /// before any decoding), malformed or badly signed one, [`ChatError::ExpiredToken`] past
    /// its `exp`.
    pub fn verify_token(&self, bearer: &str) -> Result<VerifiedToken, ChatError> {
        let token = bearer.trim();
        if is_absent_token(token) || token.len() > MAX_TOKEN_BYTES {
            return Err(ChatError::InvalidToken);
        }
        self.inner
            .ports
            .tokens
            .verify_token(token)
            .map_err(|error| match error {
                TokenError::Expired(_) => ChatError::ExpiredToken,
                TokenError::Invalid => ChatError::InvalidToken,
            })
    }

    /// Ok when `who` may use `room`: [`ChatError::Forbidden`] for someone else's private room.
    pub fn check_entry(&self, room: &RoomId, who: &Identity) -> Result<(), ChatError> {
        if self.inner.config.private_room_key.may_enter(room, who) {
            Ok(())
        } else {
            Err(ChatError::Forbidden)
        }
    }

    /// The room `room` names, if `who` may use it: [`ChatError::InvalidRoomId`] for an id that
    /// is not one, [`ChatError::Forbidden`] for someone else's private room. Whether it exists
    /// is for the store to say.
    pub fn room_for(&self, who: &Identity, room: &str) -> Result<RoomId, ChatError> {
        let room = RoomId::parse(room).ok_or(ChatError::InvalidRoomId)?;
        self.check_entry(&room, who)?;
        Ok(room)
    }

    /// Ok when `limit` is a history page size the contract accepts (1 to
    /// [`ChatConfig::max_history_limit`]).
    pub fn check_history_limit(&self, limit: usize) -> Result<(), ChatError> {
        let max = self.inner.config.max_history_limit;
        if (1..=max).contains(&limit) {
            Ok(())
        } else {
            Err(ChatError::BadRequest(BadRequest::Limit { max }))
        }
    }

    /// The message `author` at `client` posts to `room` from outside a STOMP connection (tests,
    /// tools), validated, with a key unique across nodes and restarts; or why not.
    pub fn new_message(
        &self,
        author: &Identity,
        client: IpAddr,
        room: RoomId,
        text: &str,
    ) -> Result<NewMessage, ChatError> {
        let text = validation::message_text(text, self.inner.config.max_message_chars)?;
        let key = MessageKey::server_made(&format!(
            "{}-{:08x}-p{}",
            self.inner.config.node_name,
            self.inner.boot_nonce,
            self.inner.next_connection.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(NewMessage {
            room_id: room,
            message: text.to_owned(),
            author: author.clone(),
            created_at: self.inner.ports.clock.now_rfc3339(),
            ip_address: ip_prefix(client),
            key,
        })
    }

    /// The public room `POST /rooms` asks for: `name` validated, and `room_id` when given (a
    /// valid id, not reserved), else a fresh generated one (`room-` and 12 hex digits; asking
    /// again gives another, should it be taken).
    pub fn public_room(&self, name: &str, room_id: Option<&str>) -> Result<Room, ChatError> {
        let name = validation::room_name(name)?;
        let room_id = match room_id {
            Some(room_id) => RoomId::parse(room_id.trim())
                .filter(|id| !id.is_reserved())
                .ok_or(ChatError::InvalidRoomId)?,
            None => self.generated_room_id()?,
        };
        Ok(Room {
            room_id,
            name: name.to_owned(),
        })
    }

    /// The room for two `POST /chatroom/private` by `caller` asks for: the same room for the
    /// same pair (name tags), in either order. Only one of the two may ask
    /// ([`ChatError::Forbidden`] otherwise): the id is made with a server key, so it cannot
    /// be computed from the tags.
    pub fn private_room_for(
        &self,
        caller: &Identity,
        sender: &str,
        receiver: &str,
    ) -> Result<Room, ChatError> {
        let (sender, receiver) = (sender.trim(), receiver.trim());
        let room_id = self
            .inner
            .config
            .private_room_key
            .room_id(sender, receiver)?;
        if caller.name_tag != sender && caller.name_tag != receiver {
            return Err(ChatError::Forbidden);
        }
        Ok(Room {
            room_id,
            name: PRIVATE_ROOM_NAME.to_owned(),
        })
    }

    /// Ok when a new room may be created while the store holds `rooms`:
    /// [`ChatError::TooManyRooms`] once the node holds [`ChatConfig::max_rooms`].
    pub fn check_room_capacity(&self, rooms: u64) -> Result<(), ChatError> {
        if rooms >= self.inner.config.max_rooms as u64 {
            Err(ChatError::TooManyRooms)
        } else {
            Ok(())
        }
    }

    /// A handler for one new STOMP connection from `client`, delivering through `sink`.
    pub fn connection(
        &self,
        client: IpAddr,
        sink: Arc<dyn ConnectionSink>,
    ) -> crate::ChatConnection {
        let n = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let key = SessionKey(Arc::from(format!(
            "{}-{:08x}-{n}",
            self.inner.config.node_name, self.inner.boot_nonce
        )));
        crate::ChatConnection::new(self.clone(), client, sink, ConnectionId(n), key)
    }

    /// The node's fan-out (the driver's repair task drives its room log).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The ports the node was assembled from (the driver runs the use cases and jobs, the
    /// writers and the repair task over them).
    pub fn ports(&self) -> &Ports {
        &self.inner.ports
    }

    /// The tunables the service was assembled with.
    pub fn config(&self) -> &ChatConfig {
        &self.inner.config
    }

    /// The rooms this node lately saw to exist (the room sweeper and the room writers forget
    /// the rooms they see removed).
    pub fn known_rooms(&self) -> &Arc<KnownRooms> {
        &self.inner.known_rooms
    }

    // ---- private ----

    fn generated_room_id(&self) -> Result<RoomId, ChatError> {
        let bits = self.rng().next_u64() >> (64 - 4 * GENERATED_ROOM_ID_HEX);
        RoomId::parse(&format!(
            "room-{bits:0width$x}",
            width = GENERATED_ROOM_ID_HEX
        ))
        .ok_or(ChatError::InvalidRoomId)
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, ChaCha12Rng> {
        // Drawing numbers cannot leave the generator half-updated, so poison is harmless.
        self.inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ChatService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatService")
            .field("config", &self.inner.config)
            .field("hub", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

/// Browsers that have no token yet send nothing, an empty string, or the text `null`
/// (`localStorage.getItem` of a missing key, string-concatenated).
fn is_absent_token(token: &str) -> bool {
    token.is_empty() || token == "null"
}

/// The configured seed with the start time and node name folded in, so an unset seed still
/// gives different names on every run and on every node.
fn stirred_seed(config: &ChatConfig, clock: &dyn Clock) -> [u8; 32] {
    let stir = fnv1a64(&[clock.now_rfc3339().as_bytes(), config.node_name.as_bytes()]);
    let mut seed = config.seed;
    for (byte, mix) in seed.iter_mut().zip(stir.to_le_bytes()) {
        *byte ^= mix;
    }
    seed
}

/// FNV-1a, 64 bits, over the concatenation of `parts`: stable across builds and platforms
/// (unlike `std`'s `DefaultHasher`), which ids derived from it need.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(OFFSET, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}
