//! The endpoint: binds UDP, accepts sessions on the STOMP path and runs each with the
//! driver, rotates self-signed certificates, and drains on shutdown.

use crate::certificate::{CertificateError, ServedCertificate};
use crate::rotation::{CertificateOffer, Rotation, RotationPolicy, Step};
use crate::stream::{CLOSE_NORMAL, REASON_GOING_AWAY, StreamMode, WebTransportStream};
use rtchat_chat::ChatService;
use rtchat_driver::{DriverConfig, Shutdown, run_connection};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use web_transport_quinn::quinn;
use web_transport_quinn::quinn::rustls;

/// The path sessions are accepted on unless configured otherwise.
pub const DEFAULT_PATH: &str = "/stomp";

/// How long the endpoint gives closing sessions to deliver their close capsules once the
/// drain is over, before it closes every connection outright.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Longest the rotation task sleeps at once, so a wall clock that jumps is noticed.
const MAX_ROTATION_SLEEP: Duration = Duration::from_secs(3600);

/// How long the rotation task waits after failing to make a certificate.
const ROTATION_RETRY: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebTransportError {
    /// The certificate could not be made or loaded.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// rustls or quinn refused the certificate or the settings.
    #[error("cannot configure TLS for WebTransport: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP {address}: {error}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// Where the served certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// Made at start and rotated (see [`crate::rotation`]) for `localhost`, `127.0.0.1`,
    /// `::1` and these extra names.
    SelfSigned {
        /// Extra host names or addresses.
        extra_names: Vec<String>,
        /// When certificates are made and put in use.
        rotation: RotationPolicy,
    },
    /// A certificate chain and key from PEM files (an operator's own; not rotated: restart
    /// to renew).
    Files {
        /// The chain, leaf first.
        certificate: PathBuf,
        /// The private key.
        key: PathBuf,
    },
}

/// How the WebTransport server listens.
#[derive(Debug, Clone)]
pub struct WebTransportConfig {
    /// UDP address to listen on (port 0 picks a free one).
    pub bind: SocketAddr,
    /// The TLS certificate.
    pub certificate: CertificateSource,
    /// The path sessions are accepted on; others get a 404.
    pub path: String,
    /// Which streams the server writes frames on (see [`StreamMode`]).
    pub streams: StreamMode,
    /// Longest a client may take, from its first packet, to finish the QUIC handshake, send
    /// its CONNECT request and open the STOMP stream.
    pub handshake_timeout: Duration,
    /// QUIC idle timeout (the transport's own liveness, apart from STOMP heart-beats).
    pub idle_timeout: Duration,
    /// Open sessions (handshakes included) at most; more are refused.
    pub max_sessions: usize,
    /// Longest [`WebTransportServer::serve`] waits for sessions to end once shutdown is
    /// triggered.
    pub drain: Duration,
}

impl WebTransportConfig {
    /// Defaults for `bind`: a rotated self-signed certificate, path `/stomp`, every frame on
    /// the one bidirectional stream, 10 s
    /// handshake, 60 s idle timeout, 50,000 sessions, 5 s drain.
    pub fn new(bind: SocketAddr) -> Self {
        WebTransportConfig {
            bind,
            certificate: CertificateSource::SelfSigned {
                extra_names: Vec::new(),
                rotation: RotationPolicy::default(),
            },
            path: DEFAULT_PATH.to_owned(),
            streams: StreamMode::Single,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_sessions: 50_000,
            drain: Duration::from_secs(5),
        }
    }
}

/// A bound WebTransport endpoint, ready to serve.
pub struct WebTransportServer {
    endpoint: quinn::Endpoint,
    transport: Arc<quinn::TransportConfig>,
    config: WebTransportConfig,
    rotation: Option<Rotation>,
    offer: watch::Sender<CertificateOffer>,
}

impl std::fmt::Debug for WebTransportServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportServer")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl WebTransportServer {
    /// Makes or loads the certificate and binds the UDP socket. Must run inside a tokio
    /// runtime.
    pub fn bind(config: WebTransportConfig) -> Result<Self, WebTransportError> {
        let (certificate, rotation) = match &config.certificate {
            CertificateSource::SelfSigned {
                extra_names,
                rotation,
            } => {
                let certificate = ServedCertificate::self_signed(
                    extra_names,
                    rotation.validity,
                    SystemTime::now(),
                )?;
                let schedule = Rotation::new(*rotation, &certificate);
                (certificate, schedule)
            }
            CertificateSource::Files { certificate, key } => {
                (ServedCertificate::from_pem_files(certificate, key)?, None)
            }
        };
        let offer = match &rotation {
            Some(rotation) => rotation.offer(),
            None => CertificateOffer {
                hashes: Vec::new(),
                valid_until: None,
            },
        };
        let transport = Arc::new(transport_config(config.idle_timeout)?);
        let server_config = server_config(&certificate, transport.clone())?;
        let endpoint = quinn::Endpoint::server(server_config, config.bind).map_err(|error| {
            WebTransportError::Bind {
                address: config.bind,
                error,
            }
        })?;
        Ok(WebTransportServer {
            endpoint,
            transport,
            config,
            rotation,
            offer: watch::Sender::new(offer),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The path sessions are accepted on.
    pub fn path(&self) -> &str {
        &self.config.path
    }

    /// Which streams the server writes frames on.
    pub fn streams(&self) -> StreamMode {
        self.config.streams
    }

    /// The certificate hashes clients are to pin, kept current as certificates rotate.
    pub fn offer(&self) -> watch::Receiver<CertificateOffer> {
        self.offer.subscribe()
    }

    /// Accepts sessions and runs each with [`run_connection`] until `shutdown` is triggered;
    /// then stops accepting, lets every session close with "server shutting down", waits (at
    /// most the configured drain) for them to end and for their close capsules to be
    /// delivered, and closes the endpoint. `shutdown` must be this server's own (its
    /// live-connection count enforces `max_sessions`).
    pub async fn serve(self, service: ChatService, driver: DriverConfig, shutdown: Shutdown) {
        let rotating = self.rotation.map(|rotation| {
            let names = match &self.config.certificate {
                CertificateSource::SelfSigned { extra_names, .. } => extra_names.clone(),
                CertificateSource::Files { .. } => Vec::new(),
            };
            tokio::spawn(rotate(
                rotation,
                names,
                self.endpoint.clone(),
                self.transport.clone(),
                self.offer,
            ))
        });
        let config = Arc::new(self.config);
        let mut stop = shutdown.signal();
        loop {
            let incoming = tokio::select! {
                () = stop.triggered() => break,
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
            };
            // Every connection's signal counts as live, handshakes included (and `stop`).
            let signal = shutdown.signal();
            if shutdown.live_connections() > config.max_sessions + 1 {
                incoming.refuse();
                continue;
            }
            let service = service.clone();
            let driver = driver.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let mut handshake_signal = signal.clone();
                let accepted = tokio::select! {
                    () = handshake_signal.triggered() => None,
                    accepted = tokio::time::timeout(
                        config.handshake_timeout,
                        accept_session(incoming, &config.path, config.streams),
                    ) => accepted.ok().flatten(),
                };
                drop(handshake_signal);
                if let Some(stream) = accepted {
                    let client = stream.client_ip();
                    run_connection(stream, &service, client, &driver, signal).await;
                }
            });
        }
        drop(stop);
        if let Some(task) = rotating {
            task.abort();
        }
        if tokio::time::timeout(config.drain, shutdown.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = shutdown.live_connections(),
                "WebTransport sessions still open after the drain period"
            );
        }
        // Sessions that ended wrote their close capsules from tasks of their own: give the
        // clients a moment to take them and close, then close whatever is left.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
        self.endpoint
            .close(CLOSE_NORMAL.into(), REASON_GOING_AWAY.as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The QUIC handshake, the HTTP/3 CONNECT request, the path check and the first
/// bidirectional stream.
async fn accept_session(
    incoming: quinn::Incoming,
    path: &str,
    streams: StreamMode,
) -> Option<WebTransportStream> {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "QUIC handshake failed");
            return None;
        }
    };
    let request = match web_transport_quinn::Request::accept(connection).await {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(%error, "WebTransport CONNECT request failed");
            return None;
        }
    };
    if request.url.path() != path {
        tracing::debug!(
            path = request.url.path(),
            "WebTransport session on an unknown path"
        );
        let _ = request
            .reject(web_transport_quinn::http::StatusCode::NOT_FOUND)
            .await;
        return None;
    }
    let session = match request.ok().await {
        Ok(session) => session,
        Err(error) => {
            tracing::debug!(%error, "WebTransport session not established");
            return None;
        }
    };
    match session.accept_bi().await {
        Ok((send, recv)) => Some(WebTransportStream::new(session, send, recv).with_mode(streams)),
        Err(error) => {
            tracing::debug!(%error, "WebTransport session ended before opening its stream");
            None
        }
    }
}

/// QUIC settings: the idle timeout, with keep-alives well within it.
fn transport_config(idle_timeout: Duration) -> Result<quinn::TransportConfig, WebTransportError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .map_err(|error| WebTransportError::Tls(format!("idle timeout: {error}")))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(idle_timeout / 3));
    Ok(transport)
}

/// The endpoint's TLS 1.3 settings for `certificate`, with HTTP/3's ALPN.
fn server_config(
    certificate: &ServedCertificate,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, WebTransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| WebTransportError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificate.chain.clone(), certificate.key.clone_key())
        .map_err(|error| WebTransportError::Tls(error.to_string()))?;
    tls.alpn_protocols = vec![web_transport_quinn::ALPN.as_bytes().to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|error| WebTransportError::Tls(error.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

/// Follows the rotation schedule: makes, announces and switches certificates, and keeps the
/// offer current.
async fn rotate(
    mut rotation: Rotation,
    names: Vec<String>,
    endpoint: quinn::Endpoint,
    transport: Arc<quinn::TransportConfig>,
    offer: watch::Sender<CertificateOffer>,
) {
    let validity = rotation.policy().validity;
    loop {
        let wait = rotation
            .next_event()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait.min(MAX_ROTATION_SLEEP)).await;
        let now = SystemTime::now();
        match rotation.step(now, |now| {
            ServedCertificate::self_signed(&names, validity, now)
        }) {
            Ok(Step::Idle) => {}
            Ok(Step::Announced) => tracing::info!("next WebTransport certificate announced"),
            Ok(Step::Switch(certificate)) => match server_config(&certificate, transport.clone()) {
                Ok(config) => {
                    endpoint.set_server_config(Some(config));
                    tracing::info!(
                        sha256 = certificate.hash.to_hex(),
                        "serving the next WebTransport certificate"
                    );
                }
                Err(error) => tracing::error!(%error, "cannot serve the next certificate"),
            },
            Err(error) => {
                tracing::error!(%error, "cannot make the next WebTransport certificate");
                tokio::time::sleep(ROTATION_RETRY).await;
            }
        }
        offer.send_replace(rotation.offer());
    }
}
