//! What the driver needs from a transport.

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_chat::TransportKind;
use rtchat_stomp::{SubscriptionKey, Transmit};

/// What arrived from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Bytes of the STOMP stream (any chunking; a WebSocket message need not be one frame).
    Data(Bytes),
    /// Proof of life without STOMP bytes (a WebSocket ping or pong).
    Liveness,
    /// The peer sent a transport message larger than the transport accepts: the connection
    /// is told why (an ERROR) and closed.
    TooLarge,
    /// The peer closed, or the transport failed.
    Closed,
}

/// The transport failed; the connection is over.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The other end is gone (an in-process client dropped its end).
    #[error("transport failed: the other end is gone")]
    Gone,
    /// The transport's library reported an error.
    #[error("transport failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TransportError {
    /// The transport's library failed with `error`.
    pub fn failed(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        TransportError::Failed(Box::new(error))
    }
}

/// A message-oriented byte transport: each [`Transmit`] is written as one message.
#[async_trait]
pub trait Transport: Send {
    /// Which transport this is (connections are counted by it).
    fn kind(&self) -> TransportKind;
    /// The next thing from the peer. Must be cancel-safe: the driver calls it inside `select!`.
    async fn recv(&mut self) -> Incoming;
    /// Queues one transmit for writing (may write it at once).
    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError>;
    /// Writes everything queued.
    async fn flush(&mut self) -> Result<(), TransportError>;
    /// The client ended subscription `key` (UNSUBSCRIBE) and every MESSAGE of it has been
    /// fed: a transport that gives each subscription a stream of its own finishes that
    /// stream. Called after the transmits queued with it were fed, before the flush. Most
    /// transports carry one stream and do nothing.
    async fn end_subscription(&mut self, key: SubscriptionKey) -> Result<(), TransportError> {
        let _ = key;
        Ok(())
    }
    /// Closes the transport; `going_away` when the server shuts down (WebSocket code 1001),
    /// else a normal close.
    async fn close(&mut self, going_away: bool);
}
