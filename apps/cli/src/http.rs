//! The server's HTTP API as the client needs it: `GET` a path, get the envelope. hyper's own
//! HTTP/1.1 client over one TCP connection per request, in TLS (rustls, the system's roots)
//! for an `https://` server.

use crate::error::CliError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// An rtchat server's HTTP side.
#[derive(Clone)]
pub struct Api {
    /// `host:port`.
    authority: String,
    /// For an `https://` server: the name its certificate must have, and the TLS client.
    tls: Option<(ServerName<'static>, TlsConnector)>,
    /// How long one request may take.
    timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An answer: the HTTP status and the envelope.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON envelope.
    pub body: Value,
}

impl Answer {
    /// The envelope's `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// The envelope's error message, or the status when it has none.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

impl Api {
    /// The API of `server`: `http://host:port` (or `ws://`), or `https://host:port` (or
    /// `wss://`), whose certificate is checked against the system's roots (`SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` name others).
    pub fn new(server: &str, timeout: Duration) -> Result<Self, CliError> {
        let bad = || CliError::Server(server.to_owned());
        let url = url::Url::parse(server).map_err(|_| bad())?;
        let secure = match url.scheme() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(bad()),
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(bad());
        };
        if !matches!(url.path(), "" | "/") {
            return Err(bad());
        }
        let tls = if secure {
            // `host_str` keeps an IPv6 address's brackets; a certificate names it without.
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|_| bad())?;
            Some((name, TlsConnector::from(tls_client()?)))
        } else {
            None
        };
        Ok(Api {
            authority: format!("{host}:{port}"),
            tls,
            timeout,
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The URL of `path` on this server (for messages).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }

    /// The STOMP-over-WebSocket URL: `wss://` for an `https://` server.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.authority)
    }

    /// `GET path_and_query`, with the token when given.
    pub async fn get(&self, path_and_query: &str, token: Option<&str>) -> Result<Answer, CliError> {
        let url = self.url(path_and_query);
        tokio::time::timeout(self.timeout, self.fetch(path_and_query, token, &url))
            .await
            .map_err(|_| CliError::Timeout(self.timeout, "HTTP answer"))?
    }

    async fn fetch(
        &self,
        path_and_query: &str,
        token: Option<&str>,
        url: &str,
    ) -> Result<Answer, CliError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|error| unreachable(url, &error))?;
        match &self.tls {
            None => self.exchange(stream, path_and_query, token, url).await,
            Some((name, connector)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|error| unreachable(url, &error))?;
                self.exchange(stream, path_and_query, token, url).await
            }
        }
    }

    /// One request and its answer on `stream`.
    async fn exchange<S>(
        &self,
        stream: S,
        path_and_query: &str,
        token: Option<&str>,
        url: &str,
    ) -> Result<Answer, CliError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(url, &error))?;
        // The connection is driven beside the request; it ends with the request.
        let driving = tokio::spawn(connection);
        let mut request = Request::get(path_and_query).header(HOST, &self.authority);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|error| unreachable(url, &error))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(url, &error))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| unreachable(url, &error))?
            .to_bytes();
        driving.abort();
        let body = serde_json::from_slice(&body).map_err(|_| CliError::BadAnswer {
            url: url.to_owned(),
            what: format!("HTTP {status} without a JSON envelope"),
        })?;
        Ok(Answer { status, body })
    }
}

fn unreachable(url: &str, error: &dyn std::fmt::Display) -> CliError {
    CliError::Unreachable {
        url: url.to_owned(),
        error: error.to_string(),
    }
}

/// A TLS client trusting the system's roots (rustls-native-certs: `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` when set, else the platform's store), on the ring provider the WebTransport
/// client uses too.
fn tls_client() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, CliError> {
    use tokio_rustls::rustls;
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(CliError::Tls(format!(
            "no trusted root certificates ({why})"
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| CliError::Tls(error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
