//! # rtchat-webtransport
//!
//! STOMP over WebTransport (HTTP/3 on QUIC), through the same driver and engine as the
//! WebSocket transport. Built on [`wtransport`] (quinn underneath, rustls with *ring*).
//!
//! ## The wire contract
//! - A client opens a WebTransport session on the server's path (default [`DEFAULT_PATH`],
//!   `/stomp`); other paths get a 404.
//! - The **first bidirectional stream the client opens** carries the STOMP byte stream, exactly
//!   as a TCP connection would: frames, EOL heart-beats and all, chunked any way. The server
//!   never opens streams; further streams and WebTransport datagrams are not used (and not read).
//! - The STOMP session ends when either side finishes the stream or closes the session. The
//!   server finishes its send side after its last frame (an ERROR, a RECEIPT for DISCONNECT),
//!   waits (bounded) for the client to acknowledge it, then closes the session with code
//!   [`CLOSE_NORMAL`], or [`CLOSE_GOING_AWAY`] when the server shuts down.
//! - Liveness is STOMP's own heart-beats; QUIC keep-alives and idle timeouts are the transport's
//!   business and do not count as STOMP liveness.
//!
//! A browser reaches a server with a self-signed certificate through
//! `new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value }] })`,
//! which requires an ECDSA P-256 certificate valid for at most 14 days: what
//! [`self_signed_identity`] makes.
//!
//! The entry points: [`WebTransportServer::bind`], then [`WebTransportServer::serve`];
//! [`WebTransportStream`] is the [`Transport`] one session runs on.

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_core::ChatService;
use rtchat_driver::{DriverConfig, Incoming, Shutdown, Transport, TransportError, run_connection};
use rtchat_stomp::Transmit;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Connection, Endpoint, Identity, RecvStream, SendStream, VarInt};

pub use wtransport::tls::Sha256Digest;

/// The path sessions are accepted on unless configured otherwise.
pub const DEFAULT_PATH: &str = "/stomp";

/// Session close code for a normal end (the STOMP session is over).
pub const CLOSE_NORMAL: u32 = 0;

/// Session close code when the server shuts down (the WebSocket "going away" code, reused).
pub const CLOSE_GOING_AWAY: u32 = 1001;

/// Largest chunk taken from the stream per read.
const READ_CHUNK: usize = 4096;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebTransportError {
    /// The certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Identity(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP: {0}")]
    Bind(#[source] std::io::Error),
}

/// Makes a fresh self-signed identity (ECDSA P-256, valid from now for 14 days, the most
/// `serverCertificateHashes` allows) for `localhost`, `127.0.0.1` and `::1`, plus `extra_names`.
pub fn self_signed_identity(extra_names: &[String]) -> Result<Identity, WebTransportError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    Identity::self_signed_builder()
        .subject_alt_names(names)
        .from_now_utc()
        .validity_days(14)
        .build()
        .map_err(|error| WebTransportError::Identity(error.to_string()))
}

/// The SHA-256 hash of an identity's leaf certificate: what a browser passes in
/// `serverCertificateHashes`, and what a test client pins.
pub fn certificate_hash(identity: &Identity) -> Option<Sha256Digest> {
    identity
        .certificate_chain()
        .as_slice()
        .first()
        .map(|certificate| certificate.hash())
}

/// How the WebTransport server listens.
#[derive(Debug)]
pub struct WebTransportConfig {
    /// UDP address to listen on (port 0 picks a free one).
    pub bind: SocketAddr,
    /// The TLS identity (see [`self_signed_identity`]).
    pub identity: Identity,
    /// The path sessions are accepted on; others get a 404.
    pub path: String,
    /// Longest a client may take, after the QUIC handshake, to send its CONNECT request and
    /// open the STOMP stream.
    pub handshake_timeout: Duration,
    /// QUIC idle timeout (the transport's own liveness, apart from STOMP heart-beats).
    pub idle_timeout: Duration,
    /// Open sessions at most; more are answered with 429.
    pub max_sessions: usize,
    /// Longest [`WebTransportServer::serve`] waits for sessions to end once shutdown is triggered.
    pub drain: Duration,
}

impl WebTransportConfig {
    /// Defaults for `bind` and `identity`: path `/stomp`, 10 s handshake, 60 s idle timeout,
    /// 50,000 sessions, 5 s drain.
    pub fn new(bind: SocketAddr, identity: Identity) -> Self {
        WebTransportConfig {
            bind,
            identity,
            path: DEFAULT_PATH.to_owned(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_sessions: 50_000,
            drain: Duration::from_secs(5),
        }
    }
}

/// A bound WebTransport endpoint, ready to serve.
pub struct WebTransportServer {
    endpoint: Endpoint<Server>,
    certificate_hash: Option<Sha256Digest>,
    path: String,
    handshake_timeout: Duration,
    max_sessions: usize,
    drain: Duration,
}

impl std::fmt::Debug for WebTransportServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportServer")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebTransportServer {
    /// Binds the UDP socket. Must run inside a tokio runtime.
    pub fn bind(config: WebTransportConfig) -> Result<Self, WebTransportError> {
        let certificate_hash = certificate_hash(&config.identity);
        let server_config = wtransport::ServerConfig::builder()
            .with_bind_address(config.bind)
            .with_identity(config.identity)
            .keep_alive_interval(Some(config.idle_timeout / 3))
            .max_idle_timeout(Some(config.idle_timeout))
            .map_err(|error| {
                WebTransportError::Bind(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    error.to_string(),
                ))
            })?
            .build();
        let endpoint = Endpoint::server(server_config).map_err(WebTransportError::Bind)?;
        Ok(WebTransportServer {
            endpoint,
            certificate_hash,
            path: config.path,
            handshake_timeout: config.handshake_timeout,
            max_sessions: config.max_sessions,
            drain: config.drain,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The SHA-256 hash of the served certificate.
    pub fn certificate_hash(&self) -> Option<&Sha256Digest> {
        self.certificate_hash.as_ref()
    }

    /// Accepts sessions and runs each with [`run_connection`] until `shutdown` is triggered;
    /// then stops accepting, lets every session close with "going away", waits (at most the
    /// configured drain) for them to end, and closes the endpoint. `shutdown` must be this
    /// server's own (its live-connection count enforces `max_sessions`).
    pub async fn serve(self, service: ChatService, driver: DriverConfig, shutdown: Shutdown) {
        let mut stop = shutdown.signal();
        loop {
            let incoming = tokio::select! {
                () = stop.triggered() => break,
                incoming = self.endpoint.accept() => incoming,
            };
            // Every connection's signal counts as live, handshakes included.
            let signal = shutdown.signal();
            if shutdown.live_connections() > self.max_sessions + 1 {
                tokio::spawn(async move {
                    if let Ok(request) = incoming.await {
                        request.too_many_requests().await;
                    }
                });
                continue;
            }
            let service = service.clone();
            let driver = driver.clone();
            let path = self.path.clone();
            let handshake_timeout = self.handshake_timeout;
            tokio::spawn(async move {
                let mut handshake_signal = signal.clone();
                let accepted = tokio::select! {
                    () = handshake_signal.triggered() => None,
                    accepted = tokio::time::timeout(handshake_timeout, accept_session(incoming, &path)) => {
                        accepted.ok().flatten()
                    }
                };
                drop(handshake_signal);
                if let Some(stream) = accepted {
                    let client = stream.client_ip();
                    run_connection(stream, &service, client, &driver, signal).await;
                }
            });
        }
        drop(stop);
        if tokio::time::timeout(self.drain, shutdown.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = shutdown.live_connections(),
                "WebTransport sessions still open after the drain period"
            );
        }
        self.endpoint
            .close(VarInt::from_u32(CLOSE_GOING_AWAY), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The WebTransport handshake, the path check, and the first bidirectional stream.
async fn accept_session(incoming: IncomingSession, path: &str) -> Option<WebTransportStream> {
    let request = match incoming.await {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(%error, "WebTransport handshake failed");
            return None;
        }
    };
    if request.path() != path {
        tracing::debug!(
            path = request.path(),
            "WebTransport session on an unknown path"
        );
        request.not_found().await;
        return None;
    }
    let connection = match request.accept().await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "WebTransport session not established");
            return None;
        }
    };
    match connection.accept_bi().await {
        Ok((send, recv)) => Some(WebTransportStream::new(connection, send, recv)),
        Err(error) => {
            tracing::debug!(%error, "WebTransport session ended before opening its stream");
            None
        }
    }
}

/// One session's STOMP stream: the [`Transport`] the driver runs on.
pub struct WebTransportStream {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    /// The receive side ended (finished, reset or the connection failed).
    ended: bool,
}

impl std::fmt::Debug for WebTransportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportStream")
            .field("remote", &self.connection.remote_address())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl WebTransportStream {
    /// Wraps an established session and the bidirectional stream that carries STOMP.
    pub fn new(connection: Connection, send: SendStream, recv: RecvStream) -> Self {
        WebTransportStream {
            connection,
            send,
            recv,
            ended: false,
        }
    }

    /// The client's address, from the QUIC path (IPv4-mapped IPv6 addresses as IPv4).
    pub fn client_ip(&self) -> IpAddr {
        self.connection.remote_address().ip().to_canonical()
    }
}

#[async_trait]
impl Transport for WebTransportStream {
    fn kind(&self) -> rtchat_core::TransportKind {
        rtchat_core::TransportKind::WebTransport
    }

    async fn recv(&mut self) -> Incoming {
        if self.ended {
            return Incoming::Closed;
        }
        // quinn documents `read_chunk` as cancel-safe: a dropped future loses no data.
        match self
            .recv
            .quic_stream_mut()
            .read_chunk(READ_CHUNK, true)
            .await
        {
            Ok(Some(chunk)) => Incoming::Data(chunk.bytes),
            Ok(None) => {
                self.ended = true;
                Incoming::Closed
            }
            Err(error) => {
                tracing::debug!(%error, "WebTransport stream read failed");
                self.ended = true;
                Incoming::Closed
            }
        }
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        for chunk in transmit.chunks() {
            // A `Bytes` clone shares the buffer: no copy.
            self.send
                .quic_stream_mut()
                .write_chunk(Bytes::clone(chunk))
                .await
                .map_err(TransportError::failed)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // QUIC stream writes are handed to the connection as they are made; nothing to flush.
        Ok(())
    }

    async fn close(&mut self, going_away: bool) {
        let stream = self.send.quic_stream_mut();
        if stream.finish().is_ok() {
            // Let the last frame (an ERROR, a RECEIPT) arrive before the session goes: closing
            // the connection abandons unacknowledged data.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.stopped()).await;
        }
        let (code, reason): (u32, &[u8]) = if going_away {
            (CLOSE_GOING_AWAY, b"server shutting down")
        } else {
            (CLOSE_NORMAL, b"")
        };
        self.connection.close(VarInt::from_u32(code), reason);
    }
}
