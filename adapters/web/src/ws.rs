//! STOMP over WebSocket at `/ws`: the upgrade, and the [`Transport`] the driver runs on.

use crate::AppState;
use crate::client_addr::client_addr;
use crate::envelope::Envelope;
use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use rtchat_driver::{Incoming, Transport, TransportError, run_connection};
use rtchat_stomp::Transmit;
use std::net::SocketAddr;

/// The STOMP subprotocols, best first (spec: "STOMP Over WebSocket" names them so).
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Read buffer per connection. tungstenite's default is 128 KiB allocated up front; 1 KiB
/// reads a typical chat frame in one go (bigger ones take a few reads) and keeps an idle
/// connection under 8 KiB in all (docs/benchmarks.md).
const READ_BUFFER_BYTES: usize = 1024;

/// Bytes of frames held for one write. The driver flushes after each batch of deliveries, so
/// this bounds a batch's write, not its latency; the buffer keeps the capacity it reached
/// (about this much on a connection that ever got a batch, a few hundred bytes otherwise).
const WRITE_BUFFER_BYTES: usize = 4096;

/// `GET /ws`: upgrade and run the connection.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = client_addr(peer, &headers, state.config.trust_forwarded_for);
    if state.shutdown.live_connections() >= state.config.max_connections {
        tracing::warn!(%client, "connection limit reached: refusing a WebSocket");
        return Envelope::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CONNECTIONS",
            "the server is full; try again later",
        )
        .into_response();
    }
    let max_message = state.config.max_ws_message_bytes;
    upgrade
        .protocols(SUBPROTOCOLS)
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames collect until the driver flushes its batch (or this much is waiting): one
        // `send()`, so one TCP segment with TCP_NODELAY, per batch instead of per MESSAGE.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        // What a stalled reader may hold in tungstenite before writes fail.
        .max_write_buffer_size(max_message.max(1 << 20))
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let signal = state.shutdown.signal();
            run_connection(
                WsTransport { socket },
                &state.service,
                client,
                &state.config.driver,
                signal,
            )
            .await;
        })
}

/// One upgraded WebSocket as a driver [`Transport`]: every transmit is one WebSocket message.
struct WsTransport {
    socket: WebSocket,
}

/// Whether a read failed because the peer's message or frame was over the size limit.
fn is_too_large(error: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(tungstenite) = cause.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(
                tungstenite,
                tokio_tungstenite::tungstenite::Error::Capacity(_)
            );
        }
        source = cause.source();
    }
    false
}

fn failed(error: axum::Error) -> TransportError {
    TransportError::failed(error)
}

#[async_trait]
impl Transport for WsTransport {
    fn kind(&self) -> rtchat_chat::TransportKind {
        rtchat_chat::TransportKind::WebSocket
    }

    async fn recv(&mut self) -> Incoming {
        match self.socket.recv().await {
            Some(Ok(Message::Text(text))) => Incoming::Data(text.into()),
            Some(Ok(Message::Binary(bytes))) => Incoming::Data(bytes),
            // tungstenite answers pings itself; both still prove the peer is there.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Liveness,
            Some(Err(error)) if is_too_large(&error) => Incoming::TooLarge,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Incoming::Closed,
        }
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        let bytes = transmit.into_contiguous();
        // Browsers' STOMP clients read text frames most readily; our frames are UTF-8 unless a
        // client sent binary bodies, which then go out as binary.
        let message = match Utf8Bytes::try_from(bytes.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(bytes),
        };
        self.socket.feed(message).await.map_err(failed)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.socket.flush().await.map_err(failed)
    }

    async fn close(&mut self, going_away: bool) {
        let frame = if going_away {
            CloseFrame {
                code: close_code::AWAY,
                reason: Utf8Bytes::from_static("server shutting down"),
            }
        } else {
            CloseFrame {
                code: close_code::NORMAL,
                reason: Utf8Bytes::from_static(""),
            }
        };
        // The peer may already be gone; nothing more to do then.
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}
