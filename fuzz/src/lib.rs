//! # rtchat-fuzz
//!
//! What the fuzz targets share: a whole rtchat node in process (the memory stores, HS256
//! tokens, the real [`rtchat_web::router`]), requests sent through the router with no socket
//! (`tower::ServiceExt::oneshot` on a current-thread runtime), and the checks every HTTP
//! answer must pass.
//!
//! A target whose requests change something gets a fresh node per input, so what one input
//! does (rooms created, rate limits taken) never changes what the next one sees: libFuzzer's
//! coverage feedback stays deterministic, and the 10,000-room cap or the per-hour limits are
//! never reached by accident. Read-only targets share one node.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use rtchat_chat::{
    ChatConfig, ChatService, Clock, Hub, Identity, MessageId, Ports, PrivateRoomKey, Tokens,
};
use rtchat_driver::{ChatUseCases, RoomWriters, Shutdown, WriterConfig};
use rtchat_jwt::JwtTokens;
use rtchat_memory::{InProcessBroker, MemoryMessageStore, MemoryPresence, MemoryRoomStore};
use rtchat_web::{AppState, WebConfig};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

const SECRET: &[u8] = b"rtchat-fuzz-secret-not-for-production";
const ISSUER: &str = "rtchat";

/// The address every request comes from.
pub const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 40_000);

/// The name tag of the caller whose token [`token`] returns (seeds use it as `senderId`).
pub const CALLER_TAG: &str = "#A11CE0";

/// Messages in `lobby` on a node made with [`Node::with_lobby_messages`].
pub const LOBBY_MESSAGES: usize = 15;

/// The caller every authenticated request is made as.
pub fn caller() -> Identity {
    Identity {
        rand_id: "Alice".to_owned(),
        name_tag: CALLER_TAG.to_owned(),
    }
}

/// A valid token for [`caller`], issued once: signing one per input would only cost time.
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| tokens().issue(&caller(), &CLIENT.ip().to_string()))
}

fn tokens() -> JwtTokens {
    // A long life: a campaign runs for hours, and an expired token would turn every input
    // into the same 401.
    JwtTokens::new(
        SECRET,
        ISSUER.to_owned(),
        Duration::from_secs(30 * 24 * 3600),
    )
}

/// The runtime every request runs on (one thread, like libFuzzer).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// A clock that never moves, so a node built from the same input behaves the same way (the
/// service stirs its seed with the clock).
struct FixedClock;

impl Clock for FixedClock {
    fn now_rfc3339(&self) -> String {
        "2026-01-01T00:00:00.000Z".to_owned()
    }

    fn now_system_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }
}

/// A fresh chat service on memory stores, with only `lobby`, empty (what a target without
/// the HTTP side needs).
pub async fn service() -> ChatService {
    let hub = Arc::new(Hub::new());
    let messages = Arc::new(MemoryMessageStore::new());
    let rooms = Arc::new(MemoryRoomStore::new());
    let broker = Arc::new(InProcessBroker::new(hub.clone()));
    let ports = Ports {
        messages: messages.clone(),
        rooms: rooms.clone(),
        presence: Arc::new(MemoryPresence::new()),
        broker: broker.clone(),
        appender: Arc::new(RoomWriters::new(
            messages,
            rooms,
            broker,
            WriterConfig::default(),
        )),
        tokens: Arc::new(tokens()),
        clock: Arc::new(FixedClock),
    };
    let config = ChatConfig {
        private_room_key: PrivateRoomKey::new([7; 32]),
        seed: [1; 32],
        ..ChatConfig::default()
    };
    ChatService::new(ports, hub, config)
        .await
        .expect("a memory node assembles")
}

/// One node: its service and router.
pub struct Node {
    /// The chat service behind the router.
    pub service: ChatService,
    router: Router,
    /// Ids of the messages in `lobby`, oldest first.
    pub lobby_ids: Vec<MessageId>,
}

impl Node {
    /// A fresh node with only `lobby`, empty.
    pub async fn new() -> Node {
        let service = service().await;
        let router = rtchat_web::router(AppState::new(
            service.clone(),
            WebConfig::default(),
            Shutdown::new(),
        ));
        Node {
            service,
            router,
            lobby_ids: Vec::new(),
        }
    }

    /// The node with [`LOBBY_MESSAGES`] messages in `lobby` that every input of a read-only
    /// target shares: reading history changes nothing, so sharing it keeps runs independent
    /// and saves building a node (half the cost of a run) each time.
    pub fn with_lobby_messages() -> &'static Node {
        static NODE: OnceLock<Node> = OnceLock::new();
        NODE.get_or_init(|| runtime().block_on(Node::build_with_lobby_messages()))
    }

    async fn build_with_lobby_messages() -> Node {
        let mut node = Node::new().await;
        for n in 0..LOBBY_MESSAGES {
            let stored = node
                .service
                .post_message(&caller(), CLIENT.ip(), "lobby", &format!("message {n}"))
                .await
                .expect("posting to lobby on a memory node");
            node.lobby_ids.push(stored.id);
        }
        node
    }

    /// Sends `request` through the router as if from [`CLIENT`] and reads the whole answer,
    /// which must be an envelope (see [`Reply::from_parts`]).
    pub async fn send(&self, mut request: Request<Body>) -> Reply {
        request.extensions_mut().insert(ConnectInfo(CLIENT));
        let described = format!("{} {}", request.method(), request.uri());
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("an in-memory answer body");
        Reply::from_parts(&described, status, content_type, &body)
    }

    /// `GET uri` with `auth` as the Authorization header.
    pub async fn get(&self, uri: &str, auth: &Auth) -> Reply {
        let request = auth
            .apply(Request::builder().method(Method::GET).uri(uri))
            .body(Body::empty())
            .expect("a GET request");
        self.send(request).await
    }

    /// `POST uri` with a JSON body, as the caller.
    pub async fn post_json(&self, uri: &str, body: &Value) -> Reply {
        let request = Auth::Caller
            .apply(Request::builder().method(Method::POST).uri(uri))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("a POST request");
        self.send(request).await
    }
}

/// The Authorization header a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Bearer <a valid token of the caller>`.
    Caller,
    /// None.
    Absent,
    /// Whatever the fuzzer wrote (never a valid token: it cannot forge the signature).
    Raw(HeaderValue),
}

impl Auth {
    /// The builder with this header set.
    pub fn apply(&self, builder: axum::http::request::Builder) -> axum::http::request::Builder {
        match self {
            Auth::Caller => builder.header(header::AUTHORIZATION, format!("Bearer {}", token())),
            Auth::Absent => builder,
            Auth::Raw(value) => builder.header(header::AUTHORIZATION, value.clone()),
        }
    }

    /// Picks the header from two bits of a control byte: mostly the caller's token (most
    /// paths need one), sometimes none, sometimes the first line of `input` (taken off it).
    pub fn from_control(bits: u8, input: &mut &[u8]) -> Auth {
        match bits & 3 {
            0 | 1 => Auth::Caller,
            2 => Auth::Absent,
            _ => {
                let (line, rest) = match input.iter().position(|&b| b == b'\n') {
                    Some(end) => (&input[..end], &input[end + 1..]),
                    None => (*input, &[][..]),
                };
                *input = rest;
                // Bytes no HTTP parser would let through are no request at all.
                HeaderValue::from_bytes(line).map_or(Auth::Absent, Auth::Raw)
            }
        }
    }
}

/// An answer of the API, checked to be an envelope.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The envelope's `type`.
    pub kind: String,
    /// The envelope's `response` (`null` on failures).
    pub response: Value,
}

impl Reply {
    /// Checks what every answer of the API must be, whatever the request: JSON with exactly
    /// the envelope's four fields; `success` exactly when the status is 200; a failure has a
    /// message and no payload; and no 5xx (a memory node has no backend to be down, so a
    /// server error could only be a bug). `described` names the request in a failed check.
    pub fn from_parts(
        described: &str,
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: &[u8],
    ) -> Reply {
        let shown = String::from_utf8_lossy(body);
        assert!(
            !status.is_server_error(),
            "{described}: server error {status}: {shown}"
        );
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{described}: {status} is not JSON: {shown}"
        );
        let envelope: Value = serde_json::from_slice(body).unwrap_or_else(|error| {
            panic!("{described}: {status}: body is not JSON ({error}): {shown}")
        });
        let fields = envelope
            .as_object()
            .unwrap_or_else(|| panic!("{described}: envelope is not an object: {shown}"));
        assert_eq!(
            fields.len(),
            4,
            "{described}: envelope has other fields than success, response, error, type: {shown}"
        );
        let success = envelope["success"]
            .as_bool()
            .unwrap_or_else(|| panic!("{described}: success is not a boolean: {shown}"));
        let kind = envelope["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{described}: type is not a string: {shown}"))
            .to_owned();
        assert_eq!(
            success,
            status == StatusCode::OK,
            "{described}: success does not match the status {status}: {shown}"
        );
        if success {
            assert!(envelope["error"].is_null(), "{described}: {shown}");
        } else {
            assert!(
                status.is_client_error(),
                "{described}: a refusal must be a 4xx, got {status}: {shown}"
            );
            let message = envelope["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.is_empty(),
                "{described}: a refusal without a message: {shown}"
            );
            assert!(
                envelope["response"].is_null(),
                "{described}: a refusal with a payload: {shown}"
            );
        }
        Reply {
            status,
            kind,
            response: envelope["response"].clone(),
        }
    }
}
