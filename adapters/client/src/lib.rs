//! The client end of rtchat's transports, for its own clients (`rtchat-cli`, the load
//! generator): one pipe of STOMP bytes over a WebSocket (`/ws`, subprotocol `v12.stomp`, a
//! frame per message) or over a WebTransport session's first bidirectional stream.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtchat_webtransport::CertificateHash;
use rtchat_webtransport::client::ClientStream;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a link could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The WebSocket could not be opened.
    #[error("WebSocket {url}: {error}")]
    WebSocket {
        /// The WebSocket URL.
        url: String,
        /// Why.
        #[source]
        error: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The WebTransport session or its stream could not be opened.
    #[error(transparent)]
    WebTransport(#[from] rtchat_webtransport::client::ConnectError),
    /// Sending or receiving failed.
    #[error("{0}")]
    Io(String),
}

/// The transport under STOMP.
pub enum Link {
    /// STOMP over WebSocket.
    WebSocket(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// STOMP on a WebTransport session's first bidirectional stream.
    WebTransport(Box<ClientStream>),
}

impl Link {
    /// Opens a WebSocket on `url`.
    pub async fn websocket(url: &str) -> Result<Link, LinkError> {
        let failed = |error: tokio_tungstenite::tungstenite::Error| LinkError::WebSocket {
            url: url.to_owned(),
            error: Box::new(error),
        };
        let mut request = url.into_client_request().map_err(failed)?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        // TCP_NODELAY, as browsers set it for WebSockets: each frame leaves when written.
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .map_err(failed)?;
        Ok(Link::WebSocket(Box::new(socket)))
    }

    /// Opens a WebTransport session on `url` (pinned to one of `pins` when there are any) and
    /// its STOMP stream.
    pub async fn webtransport(url: &str, pins: &[CertificateHash]) -> Result<Link, LinkError> {
        let stream = rtchat_webtransport::client::connect(url, pins).await?;
        Ok(Link::WebTransport(Box::new(stream)))
    }

    /// The transport's name.
    pub fn name(&self) -> &'static str {
        match self {
            Link::WebSocket(_) => "WebSocket",
            Link::WebTransport(_) => "WebTransport",
        }
    }

    /// Sends `bytes` (one or more whole STOMP frames; one WebSocket message).
    pub async fn send(&mut self, bytes: Bytes) -> Result<(), LinkError> {
        match self {
            Link::WebSocket(socket) => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|error| LinkError::Io(error.to_string()))?;
                socket
                    .send(Message::text(text))
                    .await
                    .map_err(|error| LinkError::Io(error.to_string()))
            }
            Link::WebTransport(stream) => stream
                .send
                .write_all(&bytes)
                .await
                .map_err(|error| LinkError::Io(error.to_string())),
        }
    }

    /// The next bytes from the server; `None` once it closed. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        match self {
            Link::WebSocket(socket) => loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => return Ok(Some(Bytes::from(text))),
                    Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes)),
                    Some(Ok(Message::Close(_))) | None => return Ok(None),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(LinkError::Io(error.to_string())),
                }
            },
            // quinn documents `read_chunk` as cancel-safe.
            Link::WebTransport(stream) => match stream.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
                Ok(None) => Ok(None),
                Err(error) => Err(LinkError::Io(error.to_string())),
            },
        }
    }

    /// Closes the transport, waiting (at most `wait`) for the server's side of the close.
    pub async fn close(self, wait: Duration) {
        match self {
            Link::WebSocket(mut socket) => {
                let _ =
                    tokio::time::timeout(wait, WebSocketStream::close(&mut *socket, None)).await;
            }
            Link::WebTransport(mut stream) => {
                let _ = stream.send.finish();
                // The server ends the session after DISCONNECT; this waits for its capsule.
                let _ = tokio::time::timeout(wait, stream.session.closed()).await;
                stream.session.close(0, b"bye");
            }
        }
    }
}
