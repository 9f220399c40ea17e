//! SockJS's `websocket` transport at `/connect` on the real server: the same transcripts,
//! each client message wrapped in a SockJS array frame, each server frame unwrapped.

use crate::combination::{Client, Combination, Node, WebSocket};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use rtchat_server::ServerConfig;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The real server, clients over SockJS's `websocket` transport.
pub struct SockJsWebSocket;

struct SockJsNode {
    /// The server, run as the WebSocket combination runs it.
    inner: Box<dyn Node>,
    address: std::net::SocketAddr,
    sessions: u64,
}

#[async_trait]
impl Combination for SockJsWebSocket {
    fn name(&self) -> &'static str {
        "sockjs-websocket (SockJS /connect over TCP, memory store, in-process broker)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        let (inner, address) = WebSocket::start_at(config).await?;
        Ok(Box::new(SockJsNode {
            inner,
            address,
            sessions: 0,
        }))
    }
}

#[async_trait]
impl Node for SockJsNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        self.sessions += 1;
        let url = format!(
            "ws://{}/connect/000/conformance{}/websocket",
            self.address, self.sessions
        );
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(5), connect_async(url))
            .await
            .map_err(|_| "the SockJS WebSocket handshake timed out".to_owned())?
            .map_err(|error| format!("the SockJS WebSocket handshake failed: {error}"))?;
        match stream.next().await {
            Some(Ok(Message::Text(open))) if open.as_str() == "o" => {}
            other => return Err(format!("expected the open frame \"o\", got {other:?}")),
        }
        Ok(Box::new(SockJsClient {
            stream: Some(stream),
            received: VecDeque::new(),
        }))
    }

    async fn stop(self: Box<Self>) {
        self.inner.stop().await;
    }
}

struct SockJsClient {
    /// `None` once closed.
    stream: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    /// Messages of an array frame not yet handed out.
    received: VecDeque<String>,
}

#[async_trait]
impl Client for SockJsClient {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let stream = self
            .stream
            .as_mut()
            .ok_or("the client already closed its connection")?;
        let text = String::from_utf8(bytes).map_err(|_| "SockJS carries text only".to_owned())?;
        let frame = serde_json::to_string(&[text]).map_err(|error| error.to_string())?;
        stream
            .send(Message::text(frame))
            .await
            .map_err(|error| format!("WebSocket send failed: {error}"))
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(message) = self.received.pop_front() {
                return Some(message.into_bytes());
            }
            let stream = self.stream.as_mut()?;
            let text = match stream.next().await? {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            };
            match text.as_str().split_at_checked(1) {
                Some(("h", "")) => {}
                Some(("a", array)) => {
                    let messages: Vec<String> = serde_json::from_str(array).ok()?;
                    self.received.extend(messages);
                }
                // A close frame, or anything SockJS does not send: the session is over.
                _ => return None,
            }
        }
    }

    async fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.close(None)).await;
        }
    }
}
