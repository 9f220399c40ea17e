//! The SockJS `websocket` transport: one WebSocket per session, every frame one text message
//! (`o`, `h`, `a[...]`, `c[...]`), the client's messages JSON arrays of strings.

use crate::frame::{self, CloseCode};
use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use rtchat_chat::TransportKind;
use rtchat_driver::{Incoming, Transport, TransportError};
use rtchat_stomp::Transmit;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// A SockJS WebSocket session as a driver [`Transport`].
pub struct SockJsWebSocket {
    socket: WebSocket,
    heartbeat: Duration,
    /// When the next `h` is due (pushed back by every write).
    next_heartbeat: Instant,
    /// Messages of one WebSocket message not yet handed to the driver.
    received: VecDeque<String>,
    /// Transmits written since the last flush, sent as one array frame.
    batch: Vec<String>,
    /// The client broke the framing: the socket is dropped without a close frame.
    broken: bool,
}

impl SockJsWebSocket {
    /// Opens the session on `socket`: the open frame goes out at once.
    pub async fn open(mut socket: WebSocket, heartbeat: Duration) -> Option<Self> {
        socket
            .send(Message::Text(Utf8Bytes::from_static(frame::OPEN)))
            .await
            .ok()?;
        Some(SockJsWebSocket {
            socket,
            heartbeat,
            next_heartbeat: Instant::now() + heartbeat,
            received: VecDeque::new(),
            batch: Vec::new(),
            broken: false,
        })
    }

    async fn send_text(&mut self, text: String) -> Result<(), axum::Error> {
        self.next_heartbeat = Instant::now() + self.heartbeat;
        self.socket.send(Message::Text(text.into())).await
    }
}

#[async_trait]
impl Transport for SockJsWebSocket {
    fn kind(&self) -> TransportKind {
        TransportKind::SockJsWebSocket
    }

    async fn recv(&mut self) -> Incoming {
        loop {
            if let Some(message) = self.received.pop_front() {
                return Incoming::Data(message.into());
            }
            tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => match frame::decode_websocket(text.as_str()) {
                        Ok(messages) => self.received.extend(messages),
                        Err(error) => {
                            tracing::debug!(%error, "SockJS WebSocket message refused");
                            self.broken = true;
                            return Incoming::Closed;
                        }
                    },
                    // SockJS is text only.
                    Some(Ok(Message::Binary(_))) => {
                        self.broken = true;
                        return Incoming::Closed;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Incoming::Liveness,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Incoming::Closed,
                },
                // A cancelled send leaves the `h` queued in the socket; the next write flushes it.
                () = tokio::time::sleep_until(self.next_heartbeat) => {
                    if self.send_text(frame::HEARTBEAT.to_owned()).await.is_err() {
                        return Incoming::Closed;
                    }
                }
            }
        }
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        self.batch.push(crate::session::text(&transmit));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let frame = frame::messages(&std::mem::take(&mut self.batch));
        self.send_text(frame).await.map_err(TransportError::failed)
    }

    async fn close(&mut self, _going_away: bool) {
        if self.broken {
            return;
        }
        // The peer may be gone already; nothing more to do then.
        let _ = self.send_text(CloseCode::GoAway.frame()).await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: Utf8Bytes::from_static(""),
            })))
            .await;
    }
}
