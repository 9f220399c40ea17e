//! The byte stream STOMP runs on, over either transport, and the STOMP client on top:
//! CONNECT, frames out, frames in (heart-beats skipped).

use crate::error::CliError;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtchat_stomp::{Command, Frame, Item, Limits, Parser, Version, encode_to_bytes};
use rtchat_webtransport::CertificateHash;
use rtchat_webtransport::client::ClientStream;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The transport under STOMP.
pub enum Link {
    /// STOMP over WebSocket (`/ws`, subprotocol `v12.stomp`).
    WebSocket(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// STOMP on a WebTransport session's first bidirectional stream.
    WebTransport(Box<ClientStream>),
}

impl Link {
    /// Opens a WebSocket on `url`.
    pub async fn websocket(url: &str) -> Result<Link, CliError> {
        let failed = |error: &dyn std::fmt::Display| CliError::WebSocket {
            url: url.to_owned(),
            error: error.to_string(),
        };
        let mut request = url.into_client_request().map_err(|error| failed(&error))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|error| failed(&error))?;
        Ok(Link::WebSocket(Box::new(socket)))
    }

    /// Opens a WebTransport session on `url` and its STOMP stream.
    pub async fn webtransport(url: &str, pins: &[CertificateHash]) -> Result<Link, CliError> {
        let stream = rtchat_webtransport::client::connect(url, pins).await?;
        Ok(Link::WebTransport(Box::new(stream)))
    }

    /// The transport's name, as the user chose it.
    pub fn name(&self) -> &'static str {
        match self {
            Link::WebSocket(_) => "WebSocket",
            Link::WebTransport(_) => "WebTransport",
        }
    }

    async fn send(&mut self, bytes: Bytes) -> Result<(), CliError> {
        let failed = |error: &dyn std::fmt::Display| CliError::Io(error.to_string());
        match self {
            Link::WebSocket(socket) => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|error| failed(&error))?;
                socket
                    .send(Message::text(text))
                    .await
                    .map_err(|error| failed(&error))
            }
            Link::WebTransport(stream) => stream
                .send
                .write_all(&bytes)
                .await
                .map_err(|error| failed(&error)),
        }
    }

    /// The next bytes from the server; `None` once it closed. Cancel-safe.
    async fn recv(&mut self) -> Result<Option<Bytes>, CliError> {
        match self {
            Link::WebSocket(socket) => loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => return Ok(Some(Bytes::from(text))),
                    Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes)),
                    Some(Ok(Message::Close(_))) | None => return Ok(None),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(CliError::Io(error.to_string())),
                }
            },
            // quinn documents `read_chunk` as cancel-safe.
            Link::WebTransport(stream) => match stream.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
                Ok(None) => Ok(None),
                Err(error) => Err(CliError::Io(error.to_string())),
            },
        }
    }

    /// Closes the transport, waiting (at most `wait`) for the server's side of the close.
    async fn close(self, wait: Duration) {
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

/// A STOMP 1.2 session over a [`Link`].
pub struct Stomp {
    link: Link,
    parser: Parser,
    /// How long to wait for CONNECTED and receipts.
    timeout: Duration,
}

impl Stomp {
    /// Sends CONNECT with `token` and waits for CONNECTED.
    pub async fn connect(link: Link, token: &str, timeout: Duration) -> Result<Stomp, CliError> {
        let mut stomp = Stomp {
            link,
            parser: Parser::new(Limits::default()),
            timeout,
        };
        stomp
            .send(
                Frame::new(Command::Connect)
                    .header("accept-version", "1.2")
                    .header("host", "rtchat")
                    .header("heart-beat", "0,0")
                    .header("Authorization", format!("Bearer {token}")),
            )
            .await?;
        let frame = stomp.expect_frame("CONNECTED").await?;
        match frame.command {
            Command::Connected => Ok(stomp),
            _ => Err(unexpected(&frame)),
        }
    }

    /// The transport's name.
    pub fn transport(&self) -> &'static str {
        self.link.name()
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) -> Result<(), CliError> {
        self.link.send(encode_to_bytes(&frame, Version::V1_2)).await
    }

    /// The next frame; `None` once the server closed. An ERROR frame is returned as
    /// [`CliError::Stomp`]. Cancel-safe: bytes already read stay in the parser.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, CliError> {
        loop {
            match self.parser.next_item() {
                Ok(Some(Item::Frame(frame))) if frame.command == Command::Error => {
                    return Err(CliError::Stomp(
                        frame.get("message").unwrap_or("(no message)").to_owned(),
                    ));
                }
                Ok(Some(Item::Frame(frame))) => return Ok(Some(frame)),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(error) => return Err(CliError::Protocol(error.to_string())),
            }
            match self.link.recv().await? {
                Some(bytes) => self.parser.feed(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The next frame within the timeout; the server closing is an error naming `what`.
    pub async fn expect_frame(&mut self, what: &'static str) -> Result<Frame, CliError> {
        tokio::time::timeout(self.timeout, self.next_frame())
            .await
            .map_err(|_| CliError::Timeout(self.timeout, what))??
            .ok_or(CliError::Closed(what))
    }

    /// Sends `frame` with `receipt:id` and waits for that RECEIPT; frames before it go to
    /// `other`.
    pub async fn request(
        &mut self,
        frame: Frame,
        id: &str,
        what: &'static str,
        mut other: impl FnMut(Frame),
    ) -> Result<(), CliError> {
        self.send(frame.header("receipt", id)).await?;
        loop {
            let frame = self.expect_frame(what).await?;
            if frame.command == Command::Receipt && frame.get("receipt-id") == Some(id) {
                return Ok(());
            }
            other(frame);
        }
    }

    /// DISCONNECTs (waiting for its receipt; frames before it go to `other`) and closes.
    pub async fn disconnect(mut self, other: impl FnMut(Frame)) -> Result<(), CliError> {
        let result = self
            .request(
                Frame::new(Command::Disconnect),
                "bye",
                "the DISCONNECT receipt",
                other,
            )
            .await;
        self.link.close(self.timeout).await;
        result
    }
}

fn unexpected(frame: &Frame) -> CliError {
    CliError::Protocol(format!("expected CONNECTED, got {}", frame.command))
}
