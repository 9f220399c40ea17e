//! Everything that ends `rtchat-cli` with a non-zero exit, each with a message a user can act on.

use std::path::PathBuf;
use std::time::Duration;

/// Why `rtchat-cli` stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--server` is not an `http://host:port` or `https://host:port` URL.
    #[error("bad --server {0:?}: expected http://host:port or https://host:port")]
    Server(String),
    /// The TLS client for an `https://` server could not be made.
    #[error("cannot make a TLS client: {0}")]
    Tls(String),
    /// A `--cert-hash` is neither 64 hex digits nor base64 of 32 bytes.
    #[error("bad --cert-hash {0:?}: expected 64 hex digits or the base64 of 32 bytes")]
    CertHash(String),
    /// The server could not be reached over TCP or HTTP.
    #[error("cannot reach {url}: {error}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why.
        error: String,
    },
    /// The server answered, but with something rtchat does not send.
    #[error("{url}: unexpected answer ({what})")]
    BadAnswer {
        /// What was asked.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// The server refused a request (its envelope's error message).
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// What was asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The envelope's error message.
        message: String,
    },
    /// The token file could not be read or written.
    #[error("cannot keep the token in {}: {error}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// There is no per-user config directory to keep the token in.
    #[error("no config directory to keep the token in: pass --token-file")]
    NoConfigDir,
    /// The server does not serve WebTransport.
    #[error("the server does not serve WebTransport (start it with --webtransport)")]
    NoWebTransport,
    /// The WebSocket could not be opened or failed.
    #[error("WebSocket {url}: {error}")]
    WebSocket {
        /// The WebSocket URL.
        url: String,
        /// Why.
        error: String,
    },
    /// The WebTransport session or its stream could not be opened.
    #[error("WebTransport: {0}")]
    WebTransport(#[from] rtchat_webtransport::client::ConnectError),
    /// Reading or writing the STOMP stream failed.
    #[error("the connection failed: {0}")]
    Io(String),
    /// The server sent a STOMP ERROR frame.
    #[error("the server said: {0}")]
    Stomp(String),
    /// The server ended the connection before the client was done.
    #[error("the server closed the connection while waiting for {0}")]
    Closed(&'static str),
    /// The server sent bytes that are not STOMP.
    #[error("the server sent an invalid STOMP frame: {0}")]
    Protocol(String),
    /// Something took longer than `--timeout`.
    #[error("no {1} within {0:?} (see --timeout)")]
    Timeout(Duration, &'static str),
    /// The line editor failed.
    #[error("terminal: {0}")]
    Terminal(String),
}

impl From<rtchat_client::LinkError> for CliError {
    fn from(error: rtchat_client::LinkError) -> Self {
        match error {
            rtchat_client::LinkError::WebSocket { url, error } => CliError::WebSocket {
                url,
                error: error.to_string(),
            },
            rtchat_client::LinkError::WebTransport(error) => CliError::WebTransport(error),
            rtchat_client::LinkError::Io(error) => CliError::Io(error),
        }
    }
}
