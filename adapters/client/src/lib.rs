//! The client end of rtchat's transports, for its own clients (`rtchat-cli`, the load
//! generator): one pipe of STOMP bytes over a WebSocket (`/ws`, subprotocol `v12.stomp`, a
//! frame per message) or over a WebTransport session's first bidirectional stream.
//!
//! Over WebTransport the server may also write each subscription's MESSAGEs on a
//! unidirectional stream of its own (its `--wt-streams per-subscription`). The link takes
//! both modes without being told: it accepts whatever unidirectional streams the server
//! opens, cuts every stream into whole frames
//! ([`FrameSplitter`]) and hands them out one
//! whole frame (or run of frames) at a time, so frames of different streams never interleave
//! mid-frame.

mod offer;
pub use offer::{OfferError, WebTransportOffer};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtchat_webtransport::CertificateHash;
use rtchat_webtransport::client::{ClientStream, FrameSplitter};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
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
    /// STOMP on a WebTransport session's first bidirectional stream (and the server's
    /// per-subscription unidirectional streams, if it opens any).
    WebTransport(Box<WebTransportLink>),
}

/// Runs of whole frames from the unidirectional streams queued for the reader at most (then
/// their readers wait, and QUIC flow control holds the server back).
const UNI_QUEUE: usize = 256;

/// A WebTransport session's streams, merged into one sequence of whole frames.
pub struct WebTransportLink {
    stream: ClientStream,
    /// Cuts the bidirectional stream into whole frames.
    splitter: FrameSplitter,
    /// Whole frames read from the unidirectional streams, by their readers.
    uni: mpsc::Receiver<Bytes>,
    /// Accepts unidirectional streams and starts a reader for each.
    acceptor: JoinHandle<()>,
    /// Unidirectional streams the server has opened so far.
    opened: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for WebTransportLink {
    fn drop(&mut self) {
        // The readers end on their own: their session closes, or the queue is gone.
        self.acceptor.abort();
    }
}

impl WebTransportLink {
    fn new(stream: ClientStream) -> Self {
        let (sender, uni) = mpsc::channel(UNI_QUEUE);
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let session = stream.session.clone();
        let counter = opened.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok(recv) = session.accept_uni().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(read_uni(recv, sender.clone()));
            }
        });
        WebTransportLink {
            stream,
            splitter: FrameSplitter::new(),
            uni,
            acceptor,
            opened,
        }
    }

    /// The session and its bidirectional stream.
    pub fn stream(&mut self) -> &mut ClientStream {
        &mut self.stream
    }

    /// How many unidirectional streams the server has opened (0 in `single` mode; one per
    /// subscription that had a MESSAGE in `per-subscription` mode).
    pub fn uni_streams_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next whole frames from any stream. Cancel-safe: a partial frame stays in the
    /// splitter, and both reads are cancel-safe.
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        loop {
            tokio::select! {
                // quinn documents `read_chunk` as cancel-safe.
                chunk = self.stream.recv.read_chunk(64 * 1024, true) => match chunk {
                    Ok(Some(chunk)) => {
                        let whole = self
                            .splitter
                            .push(&chunk.bytes)
                            .map_err(|error| LinkError::Io(error.to_string()))?;
                        if !whole.is_empty() {
                            return Ok(Some(whole));
                        }
                    }
                    // The session is over: MESSAGEs already read from the other streams
                    // still count.
                    Ok(None) => return Ok(self.uni.try_recv().ok()),
                    Err(error) => return Err(LinkError::Io(error.to_string())),
                },
                Some(whole) = self.uni.recv() => return Ok(Some(whole)),
            }
        }
    }
}

/// Reads one unidirectional stream, handing out whole frames, until it ends.
async fn read_uni(
    mut recv: rtchat_webtransport::web_transport_quinn::RecvStream,
    frames: mpsc::Sender<Bytes>,
) {
    let mut splitter = FrameSplitter::new();
    loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => match splitter.push(&chunk.bytes) {
                Ok(whole) if whole.is_empty() => {}
                Ok(whole) => {
                    if frames.send(whole).await.is_err() {
                        return;
                    }
                }
                Err(_) => {
                    // A broken stream: the bytes cannot be trusted to be frames.
                    let _ = recv.stop(1);
                    return;
                }
            },
            // Finished (the subscription ended), or the session ended.
            Ok(None) | Err(_) => return,
        }
    }
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
        Ok(Link::WebTransport(Box::new(WebTransportLink::new(stream))))
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
            Link::WebTransport(link) => link
                .stream
                .send
                .write_all(&bytes)
                .await
                .map_err(|error| LinkError::Io(error.to_string())),
        }
    }

    /// The next bytes from the server; `None` once it closed. Cancel-safe. Over WebTransport,
    /// always whole frames (from whichever stream had them).
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
            Link::WebTransport(link) => link.recv().await,
        }
    }

    /// Closes the transport, waiting (at most `wait`) for the server's side of the close.
    pub async fn close(self, wait: Duration) {
        match self {
            Link::WebSocket(mut socket) => {
                let _ =
                    tokio::time::timeout(wait, WebSocketStream::close(&mut *socket, None)).await;
            }
            Link::WebTransport(mut link) => {
                let stream = &mut link.stream;
                let _ = stream.send.finish();
                // After DISCONNECT's RECEIPT the server finishes the STOMP stream and waits a
                // moment for the client to end the session (docs/protocol.md): read to that
                // end, then end it from here with code 0, as the page does.
                let _ = tokio::time::timeout(wait, async {
                    while let Ok(Some(_)) = stream.recv.read_chunk(64 * 1024, true).await {}
                })
                .await;
                stream.session.close(0, b"bye");
                let _ = tokio::time::timeout(wait, stream.session.closed()).await;
            }
        }
    }
}
