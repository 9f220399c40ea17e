//! # rtchat-sockjs
//!
//! SockJS 0.3 for rtchat, as the Spring service offered it at `/connect`: pages using
//! sockjs-client (and stompjs over it) talk STOMP to the same engine, driver and
//! `ChatConnection` as `/ws`. Each SockJS transport is a [`rtchat_driver::Transport`]; this
//! crate has no chat of its own.
//!
//! - `GET <prefix>` greeting, `GET <prefix>/info`;
//! - `websocket` (`<prefix>/{server}/{session}/websocket`), one WebSocket per session;
//! - `xhr_streaming`, `xhr` (polling) and `eventsource`, receiving, with `xhr_send` for the
//!   client's messages: [`session`] holds their state between requests;
//! - `iframe`, `htmlfile` and `jsonp` are not offered (404).
//!
//! The framing is pure and tested on its own ([`frame`]); [`router`] builds the axum routes.

pub mod frame;
mod http;
pub mod session;
mod websocket;

pub use http::router;
pub use session::Registry;

use axum::http::HeaderMap;
use rtchat_chat::ChatService;
use rtchat_driver::{DriverConfig, Shutdown};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the SockJS endpoint.
#[derive(Debug, Clone)]
pub struct SockJsConfig {
    /// Where it is served, e.g. `/connect` (no trailing slash).
    pub prefix: String,
    /// How often an idle receiver gets a heartbeat frame `h`.
    pub heartbeat: Duration,
    /// A session with no receiving request for this long is ended (its chat connection
    /// closed).
    pub disconnect_delay: Duration,
    /// A streaming answer (xhr-streaming, eventsource) ends after this many bytes, so the
    /// browser can free what it holds; the client then opens the next one.
    pub stream_bytes: usize,
    /// A streaming answer also ends after this long (kept below the server's idle timeout
    /// for requests, which would otherwise cut it off).
    pub max_response_time: Duration,
    /// Output held per session for its next poll at most; past it the connection's writes
    /// wait (and a client that stops polling is dropped by the driver's write timeout).
    pub max_buffered_bytes: usize,
    /// Largest `xhr_send` body accepted (413 above it).
    pub max_send_bytes: usize,
    /// Offer the `websocket` transport (`/info` says so).
    pub websocket: bool,
}

impl Default for SockJsConfig {
    fn default() -> Self {
        SockJsConfig {
            prefix: "/connect".to_owned(),
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            stream_bytes: 128 * 1024,
            max_response_time: Duration::from_secs(45),
            max_buffered_bytes: 256 * 1024,
            max_send_bytes: 256 * 1024,
            websocket: true,
        }
    }
}

/// How a request's client address is found (the peer, or a trusted proxy's header).
pub type ClientAddr = Arc<dyn Fn(SocketAddr, &HeaderMap) -> IpAddr + Send + Sync>;

/// What the SockJS handlers share.
#[derive(Clone)]
pub struct SockJs {
    service: ChatService,
    driver: Arc<DriverConfig>,
    config: Arc<SockJsConfig>,
    shutdown: Shutdown,
    sessions: Arc<Registry>,
    client_addr: ClientAddr,
    max_connections: usize,
}

impl SockJs {
    /// The endpoint for `service`: connections run with `driver`, end on `shutdown`, and are
    /// refused past `max_connections` (counted with every other transport's).
    pub fn new(
        service: ChatService,
        driver: DriverConfig,
        config: SockJsConfig,
        shutdown: Shutdown,
        client_addr: ClientAddr,
        max_connections: usize,
    ) -> Self {
        SockJs {
            service,
            driver: Arc::new(driver),
            config: Arc::new(config),
            shutdown,
            sessions: Arc::new(Registry::default()),
            client_addr,
            max_connections,
        }
    }

    /// The sessions of the HTTP transports (for tests and metrics).
    pub fn sessions(&self) -> &Registry {
        &self.sessions
    }
}
