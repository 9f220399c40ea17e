//! A WebTransport client of the wire contract: a session on the STOMP path whose first
//! bidirectional stream carries STOMP bytes. For rtchat's own clients (the CLI, the load
//! generator, the conformance suite and tests).

use crate::certificate::CertificateHash;
use web_transport_quinn::{ClientBuilder, RecvStream, SendStream, Session};

/// Why a client could not open its STOMP stream.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not an `https://` URL.
    #[error("not a WebTransport URL (https://host:port/path): {0}")]
    Url(String),
    /// The client endpoint could not be made (TLS configuration, UDP socket).
    #[error("cannot make a WebTransport client: {0}")]
    Client(#[source] web_transport_quinn::ClientError),
    /// The QUIC handshake, the certificate check or the CONNECT request failed.
    #[error("cannot open a WebTransport session: {0}")]
    Session(#[source] web_transport_quinn::ClientError),
    /// The session opened but the STOMP stream could not.
    #[error("cannot open the STOMP stream: {0}")]
    Stream(#[source] web_transport_quinn::SessionError),
}

/// An open session and its STOMP stream.
#[derive(Debug)]
pub struct ClientStream {
    /// The session (close it with [`Session::close`]; await [`Session::closed`] for the
    /// server's close code and reason).
    pub session: Session,
    /// What the client writes.
    pub send: SendStream,
    /// What the server writes.
    pub recv: RecvStream,
}

/// Opens a session on `url` (`https://host:port/stomp`) and its STOMP stream. With `pins`,
/// the server's certificate must have one of these hashes (as a browser's
/// `serverCertificateHashes`); without, it is verified against the system's roots.
pub async fn connect(url: &str, pins: &[CertificateHash]) -> Result<ClientStream, ConnectError> {
    let parsed = web_transport_quinn::proto::ConnectRequest::new(
        url.parse::<url::Url>()
            .map_err(|error| ConnectError::Url(format!("{url}: {error}")))?,
    );
    if parsed.url.scheme() != "https" {
        return Err(ConnectError::Url(url.to_owned()));
    }
    let builder = ClientBuilder::new();
    let client = if pins.is_empty() {
        builder.with_system_roots()
    } else {
        builder.with_server_certificate_hashes(pins.iter().map(|pin| pin.0.to_vec()).collect())
    }
    .map_err(ConnectError::Client)?;
    let session = client
        .connect(parsed)
        .await
        .map_err(ConnectError::Session)?;
    let (send, recv) = session.open_bi().await.map_err(ConnectError::Stream)?;
    Ok(ClientStream {
        session,
        send,
        recv,
    })
}
