//! # rtchat-web
//!
//! The HTTP side of rtchat, on axum: the JSON API of the contract (every answer in the
//! envelope), STOMP over WebSocket at `/ws` (run by [`rtchat_driver`]), SockJS at `/connect`
//! ([`rtchat_sockjs`], with plain STOMP over WebSocket at `/connect/websocket` as Spring
//! offers), the embedded page, and `GET /webtransport` (where a node's WebTransport endpoint
//! is, see [`AppState::with_webtransport`]).
//! Build the [`Router`] with [`router`] and serve it with connect info
//! (`into_make_service_with_connect_info::<SocketAddr>()`) so clients' addresses are known.

mod api;
mod assets;
mod client_addr;
mod envelope;
mod webtransport;
mod ws;

pub use api::REFRESHES_PER_HOUR;
pub use envelope::Envelope;
pub use rtchat_sockjs::SockJsConfig;
pub use webtransport::{WebTransportOffer, WebTransportOffers};

use axum::Router;
use axum::routing::{get, post};
use rtchat_chat::ChatService;
use rtchat_driver::{DriverConfig, Shutdown};
use std::sync::Arc;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// How STOMP connections are run.
    pub driver: DriverConfig,
    /// Largest WebSocket message accepted from a client. A message may hold several STOMP
    /// frames, so this is a little more than one frame; bigger messages close the socket.
    pub max_ws_message_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Open WebSocket connections at most; upgrades past it get a 503 envelope.
    pub max_connections: usize,
    /// Rooms one identity, and one client address prefix, may create per hour (0: no limit).
    pub rooms_per_hour: u32,
    /// New tokens (identities) `/init` issues per client address prefix per hour (0: no limit).
    pub tokens_per_hour: u32,
    /// Origins whose pages may call the HTTP API (CORS). Empty: same origin only. `*`: any
    /// origin, without credentials.
    pub cors_origins: Vec<String>,
    /// Serve `GET /metrics` on this router (off when the metrics have a listener of their
    /// own, see [`metrics_router`]).
    pub serve_metrics: bool,
    /// The SockJS endpoint (at its prefix, `/connect`).
    pub sockjs: SockJsConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        let driver = DriverConfig::default();
        let max_ws_message_bytes = driver.session.limits.max_frame_bytes * 2;
        WebConfig {
            driver,
            max_ws_message_bytes,
            trust_forwarded_for: false,
            max_connections: 50_000,
            rooms_per_hour: 10,
            tokens_per_hour: 60,
            cors_origins: Vec::new(),
            serve_metrics: true,
            sockjs: SockJsConfig::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    service: ChatService,
    config: Arc<WebConfig>,
    shutdown: Shutdown,
    limits: Arc<api::AbuseLimits>,
    /// What `GET /webtransport` tells; `None` when WebTransport is off.
    webtransport: Option<WebTransportOffers>,
}

impl AppState {
    /// State for a router serving `service`; `shutdown` closes its WebSocket connections.
    pub fn new(service: ChatService, config: WebConfig, shutdown: Shutdown) -> Self {
        let limits = Arc::new(api::AbuseLimits::new(&config));
        AppState {
            service,
            config: Arc::new(config),
            shutdown,
            limits,
            webtransport: None,
        }
    }

    /// Answers `GET /webtransport` from `offers` (a node that also serves WebTransport).
    pub fn with_webtransport(mut self, offers: WebTransportOffers) -> Self {
        self.webtransport = Some(offers);
        self
    }
}

/// Every route of the contract.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.config.cors_origins);
    let router = routes(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// How long a browser may keep a preflight's answer.
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The CORS layer for `origins`: preflights answered with the origin echoed, credentials
/// allowed (a page sends its token), the request's headers allowed, and a max age. `*` allows
/// any origin but then no credentials, as browsers require. `None` for no origins.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderValue, Method};
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(CORS_MAX_AGE);
    if origins.iter().any(|origin| origin == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
        .collect();
    Some(
        layer
            .allow_origin(AllowOrigin::list(allowed))
            .allow_credentials(true),
    )
}

/// `GET /metrics` alone, for a listener of its own (an operator's port, not the public one).
pub fn metrics_router(service: ChatService) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .with_state(service)
}

/// SockJS at its prefix, on the same service, driver and connection count as `/ws`.
fn sockjs_router(state: &AppState) -> Router {
    let trust_forwarded_for = state.config.trust_forwarded_for;
    let sockjs = rtchat_sockjs::SockJs::new(
        state.service.clone(),
        state.config.driver.clone(),
        state.config.sockjs.clone(),
        state.shutdown.clone(),
        Arc::new(move |peer, headers: &axum::http::HeaderMap| {
            client_addr::client_addr(peer, headers, trust_forwarded_for)
        }),
        state.config.max_connections,
    );
    rtchat_sockjs::router(sockjs)
}

fn routes(state: AppState) -> Router {
    let metrics = state
        .config
        .serve_metrics
        .then(|| metrics_router(state.service.clone()));
    let sockjs = sockjs_router(&state);
    let raw_websocket = format!(
        "{}/websocket",
        state.config.sockjs.prefix.trim_end_matches('/')
    );
    let router = Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/init", get(api::init))
        .route("/message", get(api::newest_messages))
        .route("/message/lastMessageId", get(api::messages_before))
        .route("/rooms", get(api::list_rooms).post(api::create_room))
        .route("/chatroom/private", post(api::private_room))
        .route("/ws", get(ws::upgrade))
        .route(&raw_websocket, get(ws::upgrade))
        .route("/webtransport", get(webtransport::offer))
        .fallback(api::not_found)
        .with_state(state)
        .merge(sockjs);
    match metrics {
        Some(metrics) => router.merge(metrics),
        None => router,
    }
}
