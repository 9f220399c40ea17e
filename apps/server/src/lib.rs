//! # rtchat-server
//!
//! Assembles a node from adapters chosen by flags and environment ([`ServerConfig`]) and
//! serves the page, the HTTP API and STOMP over WebSocket (and over WebTransport with
//! `--webtransport`). The default is embedded: memory
//! store and in-process broker, so it runs with no services. The binary is a thin `main`
//! around [`Server::bind`] and [`Server::run`]; tests and the conformance suite use the same
//! two calls.

pub mod accept;
pub mod data_dir;
pub mod http_deadlines;
pub mod open_files;
mod webtransport;

use accept::HttpLimits;
use clap::{Parser, ValueEnum};
use http_deadlines::Deadlines;
use rtchat_chat::{
    BackendError, Broker, ChatConfig, ChatService, Hub, MessageStore, Metrics, Ports, Presence,
    PrivateRoomKey, RoomEvent, RoomStore,
};
use rtchat_driver::{
    ChatUseCases, DriverConfig, RepairTask, RoomSweeper, RoomSweeperConfig, RoomWriters, Shutdown,
    WriterConfig,
};
use rtchat_jwt::JwtTokens;
use rtchat_memory::{InProcessBroker, MemoryPresence, MemoryStore, SystemClock};
use rtchat_postgres::PostgresStore;
use rtchat_redis::{PresenceConfig, RedisBroker, RedisPresence, SweepListener, SweepOutcome};
use rtchat_sqlite::SqliteStore;
use rtchat_stomp::{HeartBeat, SessionConfig};
use rtchat_web::{AppState, SockJsConfig, WebConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where messages and rooms are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// A SQLite file in `--data-dir` (the default): one node that keeps rooms, history and
    /// identities across restarts, with no service to run.
    Sqlite,
    /// In this process's memory (lost on restart): for tests and throwaway runs.
    Memory,
    /// PostgreSQL (`--database-url`), shared by every node.
    Postgres,
}

/// The SQLite database file, inside `--data-dir`.
pub const SQLITE_FILE: &str = "rtchat.db";

/// How room events and live counts reach every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    /// Within this process only (a single node).
    Memory,
    /// Redis pub/sub and Redis presence (`--redis-url`): several nodes behind a load balancer.
    Redis,
}

/// Every setting, from flags or `RTCHAT_*` environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rtchat-server",
    version,
    about = "Anonymous real-time chat over STOMP and WebSocket"
)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "RTCHAT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Message and room store.
    #[arg(long, env = "RTCHAT_STORE", value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// Where the embedded default keeps its database and its generated JWT secret.
    #[arg(long, env = "RTCHAT_DATA_DIR", default_value = "rtchat-data")]
    pub data_dir: std::path::PathBuf,
    /// Broker between nodes.
    #[arg(long, env = "RTCHAT_BROKER", value_enum, default_value = "memory")]
    pub broker: BrokerKind,
    /// PostgreSQL URL, for `--store postgres`.
    #[arg(long, env = "RTCHAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema for rtchat's tables (created when missing); default: the database's
    /// default (`public`).
    #[arg(long, env = "RTCHAT_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// Redis URL, for `--broker redis`.
    #[arg(long, env = "RTCHAT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    #[arg(long, env = "RTCHAT_REDIS_PREFIX", default_value = "rtchat")]
    pub redis_prefix: String,
    /// HS256 secret for tokens. Without one, `--store sqlite` makes one in `--data-dir` (kept
    /// across restarts); other stores make a random one that dies with the process.
    #[arg(long, env = "RTCHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token lifetime in hours.
    #[arg(long, env = "RTCHAT_TOKEN_TTL_HOURS", default_value_t = 24 * 30)]
    pub token_ttl_hours: u64,
    /// Server heart-beat "SX,SY" in milliseconds: how often we send, how often we want to hear.
    #[arg(long, env = "RTCHAT_HEART_BEAT", default_value = "25000,25000", value_parser = parse_heart_beat)]
    pub heart_beat: HeartBeat,
    /// Longest chat message, in characters.
    #[arg(long, env = "RTCHAT_MAX_MESSAGE_CHARS", default_value_t = 2000)]
    pub max_message_chars: usize,
    /// Largest STOMP frame a client may send, in bytes.
    #[arg(long, env = "RTCHAT_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Deliveries queued per connection before it is closed as a slow consumer.
    #[arg(long, env = "RTCHAT_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// Chat SENDs per connection per second.
    #[arg(long, env = "RTCHAT_MAX_SENDS_PER_SECOND", default_value_t = 20)]
    pub max_sends_per_second: u32,
    /// SUBSCRIBEs per connection per second (joining rooms makes the server tell others).
    #[arg(long, env = "RTCHAT_MAX_SUBSCRIBES_PER_SECOND", default_value_t = 10)]
    pub max_subscribes_per_second: u32,
    /// STOMP frames a connection may send per second (bursts of as many); 0 for no limit.
    #[arg(long, env = "RTCHAT_MAX_FRAMES_PER_SECOND", default_value_t = 1000)]
    pub max_frames_per_second: u32,
    /// Rooms this node keeps at most, public and private.
    #[arg(long, env = "RTCHAT_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,
    /// Open WebSocket connections at most; more get a 503.
    #[arg(long, env = "RTCHAT_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,
    /// Connections not yet upgraded to a WebSocket (HTTP requests, handshakes) at most; more
    /// are accepted and closed at once.
    #[arg(long, env = "RTCHAT_MAX_PENDING_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_connections: u32,
    /// Connections not yet upgraded from one client address (an IPv4 address, an IPv6 /64)
    /// at most; more from it are accepted and closed at once. 0 turns it off; it is off with
    /// `--trust-forwarded-for` (every connection then comes from the proxy).
    #[arg(long, env = "RTCHAT_MAX_PENDING_PER_ADDRESS", default_value_t = 256)]
    pub max_pending_per_address: u32,
    /// How long a client may take to send a request's head (from connecting, or from the
    /// request's first byte on a kept-alive connection) before it is closed, e.g. `10s` or
    /// `500ms` (a bare number is seconds).
    #[arg(long, env = "RTCHAT_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub header_read_timeout: Duration,
    /// How long a connection that is not a WebSocket may wait for its next request, or for a
    /// request to be read and answered once its head is in, before it is closed.
    #[arg(long, env = "RTCHAT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// Rooms one identity, and one client address prefix, may create per hour; 0 for no limit.
    #[arg(long, env = "RTCHAT_ROOMS_PER_HOUR", default_value_t = 10)]
    pub rooms_per_hour: u32,
    /// New tokens (identities) `/init` issues per client address prefix per hour; 0 for no limit.
    #[arg(long, env = "RTCHAT_TOKENS_PER_HOUR", default_value_t = 60)]
    pub tokens_per_hour: u32,
    /// On SIGTERM/SIGINT, how long connections may take to get their SENDs in flight stored
    /// and answered before they are told the server is going away.
    #[arg(long, env = "RTCHAT_DRAIN_SECONDS", default_value_t = 10)]
    pub drain_seconds: u64,
    /// An origin whose pages may call the HTTP API (CORS), e.g. `http://127.0.0.1:5500`;
    /// repeatable (the environment variable takes a comma-separated list). `*` allows any
    /// origin, but without credentials.
    #[arg(
        long = "cors-origin",
        env = "RTCHAT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A public room that exists from the start, `ID` or `ID=NAME` (created when missing, on
    /// every node); repeatable (the environment variable takes a comma-separated list). Keeps
    /// the room ids pages hard-code.
    #[arg(long = "room", env = "RTCHAT_ROOMS", value_delimiter = ',', value_parser = parse_room)]
    pub rooms: Vec<(String, String)>,
    /// Rooms with nobody in them and no message stored for this long are removed with their
    /// messages (never `lobby` or the `--room` rooms), e.g. `7d`, `12h` (a bare number is
    /// seconds); `0` keeps every room.
    #[arg(long, env = "RTCHAT_ROOM_IDLE_TTL", default_value = "7d", value_parser = parse_duration)]
    pub room_idle_ttl: Duration,
    /// Take client addresses from X-Forwarded-For (only behind your own proxy).
    #[arg(long, env = "RTCHAT_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Serve `GET /metrics` on this address instead of on `--bind` (an operator's port that
    /// the public cannot reach).
    #[arg(long, env = "RTCHAT_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// A SockJS session (at `/connect`) that no request receives for this long is ended and
    /// its STOMP connection closed, e.g. `5s`.
    #[arg(long, env = "RTCHAT_SOCKJS_DISCONNECT_DELAY", default_value = "5s", value_parser = parse_timeout)]
    pub sockjs_disconnect_delay: Duration,
    /// How often a quiet SockJS receiver gets a heartbeat frame, e.g. `25s`.
    #[arg(long, env = "RTCHAT_SOCKJS_HEARTBEAT", default_value = "25s", value_parser = parse_timeout)]
    pub sockjs_heartbeat: Duration,
    /// Bytes one SockJS streaming answer (xhr-streaming, eventsource) carries before it ends
    /// and the client opens the next, so browsers free what they hold.
    #[arg(long, env = "RTCHAT_SOCKJS_STREAM_BYTES", default_value_t = 128 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub sockjs_stream_bytes: u32,
    /// This node's name: the token issuer and the `server` of CONNECTED.
    #[arg(long, env = "RTCHAT_NODE_NAME", default_value = "rtchat")]
    pub node_name: String,
    /// Also serve STOMP over WebTransport on this UDP address (path `/stomp`), on the same
    /// node; `GET /webtransport` tells clients the URL and the certificate hashes to pin.
    #[arg(long, env = "RTCHAT_WEBTRANSPORT")]
    pub webtransport: Option<SocketAddr>,
    /// WebTransport certificate chain (PEM) instead of a self-signed one made at start and
    /// rotated; needs `--wt-key`.
    #[arg(long, env = "RTCHAT_WT_CERT", requires = "wt_key")]
    pub wt_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of `--wt-cert`.
    #[arg(long, env = "RTCHAT_WT_KEY", requires = "wt_cert")]
    pub wt_key: Option<std::path::PathBuf>,
    /// Extra host name or address for the self-signed WebTransport certificate (besides
    /// localhost, 127.0.0.1 and ::1); repeatable (comma-separated in the variable).
    #[arg(
        long = "wt-cert-name",
        env = "RTCHAT_WT_CERT_NAMES",
        value_delimiter = ','
    )]
    pub wt_cert_names: Vec<String>,
    /// Which WebTransport streams carry the frames: `single` (everything on the client's
    /// bidirectional stream) or `per-subscription` (each subscription's MESSAGEs on a
    /// unidirectional stream the server opens, so a lost packet holds up one subscription
    /// only; see docs/protocol.md). `GET /webtransport` tells clients which.
    #[arg(long, env = "RTCHAT_WT_STREAMS", value_enum, default_value = "single")]
    pub wt_streams: WtStreams,
}

/// `--wt-streams`: which WebTransport streams carry the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WtStreams {
    /// Every frame on the client's bidirectional stream.
    #[default]
    Single,
    /// Each subscription's MESSAGE frames on a unidirectional stream of its own.
    PerSubscription,
}

impl From<WtStreams> for rtchat_webtransport::StreamMode {
    fn from(streams: WtStreams) -> Self {
        match streams {
            WtStreams::Single => rtchat_webtransport::StreamMode::Single,
            WtStreams::PerSubscription => rtchat_webtransport::StreamMode::PerSubscription,
        }
    }
}

/// `ID` or `ID=NAME` (the name defaults to the id).
fn parse_room(value: &str) -> Result<(String, String), String> {
    let (id, name) = value.split_once('=').unwrap_or((value, value));
    let (id, name) = (id.trim(), name.trim());
    if rtchat_chat::RoomId::parse(id).is_none_or(|room| room.is_reserved()) {
        return Err(format!(
            "room id {id:?} must be 1 to 64 of [A-Za-z0-9_-], and not reserved"
        ));
    }
    if name.is_empty() {
        return Err(format!("room {id:?} needs a name after '='"));
    }
    Ok((id.to_owned(), name.to_owned()))
}

/// A duration: a number with a unit `ms`, `s`, `m`, `h` or `d` (`10s`, `7d`), or a bare
/// number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a number with a unit (ms, s, m, h, d), got {value:?}"))?;
    let unit_millis: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    number
        .checked_mul(unit_millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value:?} is too long"))
}

/// A [`parse_duration`] that is not zero.
fn parse_timeout(value: &str) -> Result<Duration, String> {
    match parse_duration(value)? {
        Duration::ZERO => Err("a timeout cannot be 0".to_owned()),
        timeout => Ok(timeout),
    }
}

fn parse_heart_beat(value: &str) -> Result<HeartBeat, String> {
    HeartBeat::parse(value).ok_or_else(|| format!("expected SX,SY in milliseconds, got {value:?}"))
}

impl ServerConfig {
    /// The defaults, as if started with no flags (the environment still counts).
    pub fn embedded() -> Self {
        ServerConfig::parse_from(["rtchat-server"])
    }

    /// The defaults with the memory store: nothing written to disk (tests, throwaway runs).
    pub fn in_memory() -> Self {
        ServerConfig {
            store: StoreKind::Memory,
            ..Self::embedded()
        }
    }

    fn session_config(&self) -> SessionConfig {
        let mut session = SessionConfig {
            heart_beat: self.heart_beat,
            server_name: format!("{}/{}", self.node_name, env!("CARGO_PKG_VERSION")),
            max_frames_per_second: self.max_frames_per_second,
            // A DISCONNECT's RECEIPT comes after the RECEIPTs of the SENDs before it.
            defer_disconnect: true,
            ..SessionConfig::default()
        };
        session.limits.max_body_bytes = self.max_frame_bytes;
        session.limits.max_frame_bytes = self.max_frame_bytes + 8 * 1024;
        session
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    /// The chat could not be assembled.
    #[error("cannot start the chat: {0}")]
    Assemble(#[source] rtchat_chat::ChatError),
    /// A store or broker is unreachable or refused to start.
    #[error("{doing}: {source}")]
    Backend {
        /// What the server was doing, e.g. `cannot connect to Redis`.
        doing: String,
        /// The adapter's error.
        #[source]
        source: BackendError,
    },
    /// A file or directory the server needs cannot be used.
    #[error("{doing}: {source}")]
    Io {
        /// What the server was doing, naming the path.
        doing: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The options name a backend without what it needs (e.g. `--store postgres` without
    /// `--database-url`).
    #[error("{0}")]
    Config(&'static str),
    /// The WebTransport endpoint could not start.
    #[error("cannot serve WebTransport: {0}")]
    WebTransport(#[source] rtchat_webtransport::WebTransportError),
}

/// An assembled node: the chat service and how its connections are run, not yet bound to
/// a socket (the conformance suite drives it in-process, with no sockets at all).
pub struct Node {
    /// The chat service.
    pub service: ChatService,
    /// The HTTP/WebSocket settings, including the driver's.
    pub web: WebConfig,
    /// The bounds on connections not yet upgraded to a WebSocket.
    pub http: HttpLimits,
    /// Shared presence to take this node's sessions out of when it stops.
    redis_presence: Option<Arc<RedisPresence>>,
    /// The SQLite store, closed (its log folded into the file) when the node stops.
    sqlite: Option<Arc<SqliteStore>>,
    /// The room-log repair task; it ends with the node.
    _repairs: RepairTask,
    /// The sweeper of idle rooms (none with `--room-idle-ttl 0`); it ends with the node.
    _sweeper: Option<RoomSweeper>,
}

impl Node {
    /// Stops what the node shares with others: its sessions leave the shared counts at once
    /// (otherwise they would expire like a crashed node's).
    pub async fn leave_cluster(&self) {
        if let Some(presence) = &self.redis_presence
            && let Err(error) = presence.shutdown().await
        {
            tracing::warn!(%error, "could not remove this node's sessions from Redis presence");
        }
        if let Some(store) = &self.sqlite
            && let Err(error) = store.close().await
        {
            tracing::warn!(%error, "could not close the SQLite store cleanly (no commit is lost)");
        }
    }
}

/// Assembles the adapters `config` names.
pub async fn assemble(config: &ServerConfig) -> Result<Node, StartError> {
    let secret = match (&config.jwt_secret, config.store) {
        (Some(secret), _) => secret.as_bytes().to_vec(),
        (None, StoreKind::Sqlite) => {
            data_dir::jwt_secret(&config.data_dir).map_err(|source| StartError::Io {
                doing: format!("cannot keep a JWT secret in {}", config.data_dir.display()),
                source,
            })?
        }
        (None, _) => {
            tracing::warn!(
                "no RTCHAT_JWT_SECRET or --jwt-secret: using a random secret; tokens will not survive a restart"
            );
            JwtTokens::generate_secret()
        }
    };
    let tokens = JwtTokens::new(
        &secret,
        config.node_name.clone(),
        Duration::from_secs(config.token_ttl_hours.saturating_mul(3600)),
    );
    let hub = Arc::new(Hub::new());
    let (messages, rooms, sqlite) = store(config, hub.metrics()).await?;
    let (broker, presence, redis_presence) = broker_and_presence(config, hub.clone()).await?;
    let appender = Arc::new(RoomWriters::new(
        messages.clone(),
        rooms.clone(),
        broker.clone(),
        WriterConfig {
            metrics: hub.metrics().clone(),
            ..WriterConfig::default()
        },
    ));
    let writers_known_rooms = appender.known_rooms().clone();
    let ports = Ports {
        messages,
        rooms,
        presence,
        broker,
        appender,
        tokens: Arc::new(tokens),
        clock: Arc::new(SystemClock),
    };
    let chat = ChatConfig {
        private_room_key: private_room_key(&secret),
        max_message_chars: config.max_message_chars,
        max_sends_per_second: config.max_sends_per_second,
        max_subscribes_per_second: config.max_subscribes_per_second,
        max_rooms: config.max_rooms,
        node_name: config.node_name.clone(),
        // Core has no randomness of its own: names, tags, room ids and session keys come from this.
        seed: rand::random(),
        ..ChatConfig::default()
    };
    let service = ChatService::new(ports, hub, chat)
        .await
        .map_err(StartError::Assemble)?;
    let repairs = rtchat_driver::spawn_room_log_repairs(&service);
    for (id, name) in &config.rooms {
        match service.create_room(name, Some(id)).await {
            Ok(_) => tracing::info!(room = %id, "created the room --room names"),
            Err(rtchat_chat::ChatError::RoomExists) => {}
            Err(error) => return Err(StartError::Assemble(error)),
        }
    }
    let sweeper = room_sweeper(config, &service, writers_known_rooms);
    let driver = DriverConfig {
        session: config.session_config(),
        outbound_capacity: config.outbound_queue,
        drain: Duration::from_secs(config.drain_seconds),
        ..DriverConfig::default()
    };
    let open_files = open_files::raise_to_hard_limit();
    let caps = open_files::connection_caps(
        config.max_connections,
        config.max_pending_connections as usize,
        open_files,
    );
    if caps.websockets < config.max_connections
        || caps.pending < config.max_pending_connections as usize
    {
        tracing::info!(
            max_connections = caps.websockets,
            max_pending_connections = caps.pending,
            open_files = open_files.unwrap_or_default(),
            "connection caps lowered to what the open-file limit allows"
        );
    }
    let max_connections = caps.websockets;
    let max_ws_message_bytes = driver.session.limits.max_frame_bytes * 2;
    let sockjs = SockJsConfig {
        heartbeat: config.sockjs_heartbeat,
        disconnect_delay: config.sockjs_disconnect_delay,
        stream_bytes: config.sockjs_stream_bytes as usize,
        // A streaming answer must end before the idle timeout would cut it off.
        max_response_time: (config.idle_timeout * 3 / 4).min(Duration::from_secs(45)),
        // JSON escaping grows a STOMP frame (a NUL becomes six bytes).
        max_send_bytes: max_ws_message_bytes * 2,
        max_buffered_bytes: (max_ws_message_bytes * 2).max(256 * 1024),
        ..SockJsConfig::default()
    };
    let web = WebConfig {
        max_ws_message_bytes,
        sockjs,
        driver,
        trust_forwarded_for: config.trust_forwarded_for,
        max_connections,
        rooms_per_hour: config.rooms_per_hour,
        tokens_per_hour: config.tokens_per_hour,
        cors_origins: config.cors_origins.clone(),
        serve_metrics: config.metrics_bind.is_none(),
    };
    let http = HttpLimits {
        deadlines: Deadlines {
            header_read: config.header_read_timeout,
            idle: config.idle_timeout,
        },
        max_pending: caps.pending,
        // Behind a proxy every connection comes from the proxy's address.
        max_pending_per_address: if config.trust_forwarded_for {
            0
        } else {
            config.max_pending_per_address as usize
        },
    };
    Ok(Node {
        service,
        web,
        http,
        redis_presence,
        sqlite,
        _repairs: repairs,
        _sweeper: sweeper,
    })
}

/// The sweeper of rooms idle past `--room-idle-ttl`, keeping the `--room` rooms; `None` when
/// the TTL is 0. What it removes, the service and the room writers (`writers_known_rooms`)
/// forget at once.
fn room_sweeper(
    config: &ServerConfig,
    service: &ChatService,
    writers_known_rooms: Arc<rtchat_chat::KnownRooms>,
) -> Option<RoomSweeper> {
    if config.room_idle_ttl.is_zero() {
        return None;
    }
    let keep = config
        .rooms
        .iter()
        .filter_map(|(id, _)| rtchat_chat::RoomId::parse(id))
        .collect();
    let ports = service.ports();
    Some(rtchat_driver::spawn_room_sweeper(
        ports.rooms.clone(),
        ports.presence.clone(),
        RoomSweeperConfig::new(config.room_idle_ttl, keep),
        vec![service.known_rooms().clone(), writers_known_rooms],
    ))
}

/// The key private room ids are made with: derived from the JWT secret (HMAC-SHA256 of a
/// fixed label), so every node with the same secret makes the same ids, and a token secret
/// leaked in a room id is impossible.
fn private_room_key(jwt_secret: &[u8]) -> PrivateRoomKey {
    use hmac::{Hmac, Mac};
    let mut key = [0; 32];
    if let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(jwt_secret) {
        mac.update(b"rtchat private room ids v1");
        key.copy_from_slice(&mac.finalize().into_bytes());
    }
    PrivateRoomKey::new(key)
}

fn backend(what: &str) -> impl Fn(BackendError) -> StartError + '_ {
    move |source| StartError::Backend {
        doing: what.to_owned(),
        source,
    }
}

/// The message and room stores `--store` names.
async fn store(config: &ServerConfig, metrics: &Metrics) -> Result<Stores, StartError> {
    match config.store {
        StoreKind::Sqlite => {
            let cannot = |source: std::io::Error| StartError::Io {
                doing: format!(
                    "cannot use the data directory {}",
                    config.data_dir.display()
                ),
                source,
            };
            std::fs::create_dir_all(&config.data_dir).map_err(cannot)?;
            let path = config.data_dir.join(SQLITE_FILE);
            let store = SqliteStore::open(&path)
                .await
                .map_err(backend("cannot open the SQLite database"))?;
            store
                .migrate()
                .await
                .map_err(backend("cannot migrate the SQLite database"))?;
            tracing::info!(path = %path.display(), "SQLite store");
            let store = Arc::new(store);
            Ok((store.clone(), store.clone(), Some(store)))
        }
        StoreKind::Memory => {
            let store = Arc::new(MemoryStore::new());
            Ok((store.clone(), store, None))
        }
        StoreKind::Postgres => {
            let url = config.database_url.as_deref().ok_or(StartError::Config(
                "--store postgres needs --database-url or RTCHAT_DATABASE_URL",
            ))?;
            let store = match &config.database_schema {
                Some(schema) => PostgresStore::connect_in_schema(url, schema).await,
                None => PostgresStore::connect(url).await,
            };
            let store = Arc::new(store.map_err(backend("cannot connect to PostgreSQL"))?);
            store
                .migrate()
                .await
                .map_err(backend("cannot migrate PostgreSQL"))?;
            metrics.observe_store_connections(store.connections_opened());
            Ok((store.clone(), store, None))
        }
    }
}

/// The message and room stores, and the SQLite store to close on shutdown if that is it.
type Stores = (
    Arc<dyn MessageStore>,
    Arc<dyn RoomStore>,
    Option<Arc<SqliteStore>>,
);

type BrokerAndPresence = (
    Arc<dyn Broker>,
    Arc<dyn Presence>,
    Option<Arc<RedisPresence>>,
);

/// The broker and presence `--broker` names.
async fn broker_and_presence(
    config: &ServerConfig,
    hub: Arc<Hub>,
) -> Result<BrokerAndPresence, StartError> {
    match config.broker {
        BrokerKind::Memory => Ok((
            Arc::new(InProcessBroker::new(hub)),
            Arc::new(MemoryPresence::new()),
            None,
        )),
        BrokerKind::Redis => {
            let url = config.redis_url.as_deref().ok_or(StartError::Config(
                "--broker redis needs --redis-url or RTCHAT_REDIS_URL",
            ))?;
            let broker = Arc::new(
                RedisBroker::connect_with_prefix(url, &config.redis_prefix, hub.clone())
                    .await
                    .map_err(backend("cannot connect to Redis"))?,
            );
            hub.metrics().observe_broker_reconnects(broker.reconnects());
            let mut presence = PresenceConfig::new(
                format!("{}:presence", config.redis_prefix),
                // Unique per running process, as the presence design requires.
                format!("{}-{:016x}", config.node_name, rand::random::<u64>()),
            );
            presence.on_sweep = Some(announce_sweeps(broker.clone()));
            let presence = Arc::new(
                RedisPresence::connect_with(url, presence)
                    .await
                    .map_err(backend("cannot start Redis presence"))?,
            );
            Ok((broker, presence.clone(), Some(presence)))
        }
    }
}

/// When a crashed node's sessions are swept from the shared counts, everyone is told the new
/// counts, as if those sessions had disconnected.
fn announce_sweeps(broker: Arc<RedisBroker>) -> SweepListener {
    Arc::new(move |outcome: SweepOutcome| {
        let broker = broker.clone();
        tokio::spawn(async move {
            for (room_id, count) in outcome.rooms {
                let _ = broker.publish(RoomEvent::Presence { room_id, count }).await;
            }
            let _ = broker
                .publish(RoomEvent::Entry {
                    count: outcome.total,
                })
                .await;
        });
    })
}

/// A bound, assembled node, ready to run.
pub struct Server {
    listener: TcpListener,
    /// `--metrics-bind`'s listener, when the metrics have one of their own.
    metrics_listener: Option<TcpListener>,
    node: Node,
    shutdown: Shutdown,
    /// `--webtransport`'s endpoint.
    webtransport: Option<webtransport::Bound>,
}

impl Server {
    /// Assembles the adapters `config` names and binds the listener.
    pub async fn bind(config: &ServerConfig) -> Result<Server, StartError> {
        let node = assemble(config).await?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(StartError::Bind)?;
        let metrics_listener = match config.metrics_bind {
            Some(address) => Some(TcpListener::bind(address).await.map_err(StartError::Bind)?),
            None => None,
        };
        let webtransport = webtransport::bind(config, &node)?;
        Ok(Server {
            listener,
            metrics_listener,
            node,
            shutdown: Shutdown::new(),
            webtransport,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `--metrics-bind` bound, when given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The UDP address `--webtransport` bound, when given.
    pub fn webtransport_addr(&self) -> Option<SocketAddr> {
        self.webtransport
            .as_ref()
            .map(webtransport::Bound::local_addr)
    }

    /// The assembled chat service (tests use it to look inside).
    pub fn service(&self) -> &ChatService {
        &self.node.service
    }

    /// Serves until `stop` resolves, then stops accepting, closes every WebSocket with "going
    /// away" (and every WebTransport session with "server shutting down"), lets connections not yet upgraded finish their request, and waits (at most
    /// `drain`) for all of them to finish.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
        drain: Duration,
    ) -> std::io::Result<()> {
        let mut state = AppState::new(
            self.node.service.clone(),
            self.node.web.clone(),
            self.shutdown.clone(),
        );
        if let Some(bound) = &self.webtransport {
            state = state.with_webtransport(bound.offers());
        }
        let webtransport = self.webtransport.map(|bound| bound.serve(&self.node));
        let router = rtchat_web::router(state);
        if let Some(listener) = self.metrics_listener {
            let mut stop = self.shutdown.signal();
            let metrics = rtchat_web::metrics_router(self.node.service.clone());
            tokio::spawn(async move {
                let served = axum::serve(listener, metrics)
                    .with_graceful_shutdown(async move { stop.triggered().await })
                    .await;
                if let Err(error) = served {
                    tracing::warn!(%error, "the metrics listener failed");
                }
            });
        }
        let pending = accept::serve(self.listener, router, self.node.http, stop).await;
        self.shutdown.trigger();
        if let Some(webtransport) = &webtransport {
            webtransport.trigger();
        }
        let drained = async {
            let webtransport = async {
                if let Some(webtransport) = webtransport {
                    webtransport.finished().await;
                }
            };
            tokio::join!(pending.close(), self.shutdown.wait_idle(), webtransport);
        };
        if tokio::time::timeout(drain, drained).await.is_err() {
            tracing::warn!(
                connections = self.shutdown.live_connections(),
                "connections still open after the drain period"
            );
        }
        self.node.leave_cluster().await;
        Ok(())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the apps' cue to shut down gracefully.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Structured logs on stderr (stdout carries only the lines scripts read), at `info` unless
/// `RUST_LOG` says otherwise, in colour only on a terminal and without `NO_COLOR`. For the
/// apps' `main`.
pub fn init_logging() {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_are_seconds() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("7d"), Ok(secs(7 * 24 * 3600)));
        assert_eq!(parse_duration("12h"), Ok(secs(12 * 3600)));
        assert_eq!(parse_duration("90m"), Ok(secs(90 * 60)));
        assert_eq!(parse_duration(" 10s "), Ok(secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "10 sec",
            "5w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let config = ServerConfig::parse_from(["rtchat-server", "--room-idle-ttl", "0"]);
        assert_eq!(config.room_idle_ttl, Duration::ZERO);
        assert_eq!(
            ServerConfig::parse_from(["rtchat-server"]).room_idle_ttl,
            secs(7 * 24 * 3600)
        );
    }

    #[test]
    fn timeouts_cannot_be_zero() {
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(
            ServerConfig::try_parse_from(["rtchat-server", "--header-read-timeout", "0"]).is_err()
        );
        assert!(
            ServerConfig::try_parse_from(["rtchat-server", "--max-pending-connections", "0"])
                .is_err()
        );
    }

    #[test]
    fn room_flags_take_an_id_and_an_optional_name() {
        assert_eq!(
            parse_room("723a2a33-577b-4380-8116-a1aa8e5868d3=lobby2"),
            Ok((
                "723a2a33-577b-4380-8116-a1aa8e5868d3".to_owned(),
                "lobby2".to_owned()
            ))
        );
        assert_eq!(
            parse_room(" garden "),
            Ok(("garden".to_owned(), "garden".to_owned()))
        );
        for bad in ["", "has space", "entry", "private-x", "garden="] {
            assert!(parse_room(bad).is_err(), "{bad:?}");
        }
        let config = ServerConfig::parse_from([
            "rtchat-server",
            "--room",
            "a=A",
            "--room",
            "b",
            "--cors-origin",
            "http://127.0.0.1:5500",
        ]);
        assert_eq!(config.rooms.len(), 2);
        assert_eq!(config.cors_origins, ["http://127.0.0.1:5500"]);
    }
}
