//! An in-memory transport: the client end is a pair of channels. Used by tests and by the
//! conformance suite to run the real driver with no sockets.

use crate::transport::{Incoming, Transport, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use rtchat_stomp::Transmit;
use tokio::sync::mpsc;

/// The server end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    from_client: mpsc::Receiver<Incoming>,
    to_client: mpsc::Sender<Bytes>,
    pending: Vec<Bytes>,
}

/// The client end of an in-memory connection: what a test or transcript runner holds.
#[derive(Debug)]
pub struct MemoryClient {
    to_server: mpsc::Sender<Incoming>,
    from_server: mpsc::Receiver<Bytes>,
}

/// A connected pair. `capacity` bounds each direction, in messages, like a socket buffer:
/// a client that stops reading makes the server's writes wait.
pub fn memory_pair(capacity: usize) -> (MemoryTransport, MemoryClient) {
    let (to_server, from_client) = mpsc::channel(capacity.max(1));
    let (to_client, from_server) = mpsc::channel(capacity.max(1));
    (
        MemoryTransport {
            from_client,
            to_client,
            pending: Vec::new(),
        },
        MemoryClient {
            to_server,
            from_server,
        },
    )
}

impl MemoryClient {
    /// Sends bytes of the STOMP stream. False when the server end is gone.
    pub async fn send(&self, bytes: impl Into<Bytes>) -> bool {
        self.to_server
            .send(Incoming::Data(bytes.into()))
            .await
            .is_ok()
    }

    /// Sends a transport-level liveness signal (like a WebSocket ping).
    pub async fn ping(&self) -> bool {
        self.to_server.send(Incoming::Liveness).await.is_ok()
    }

    /// The next message from the server; `None` once the server closed.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.from_server.recv().await
    }

    /// Closes the client side (the server sees the transport close).
    pub async fn close(self) {
        let _ = self.to_server.send(Incoming::Closed).await;
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn kind(&self) -> rtchat_chat::TransportKind {
        rtchat_chat::TransportKind::Memory
    }

    async fn recv(&mut self) -> Incoming {
        // A dropped client end is a closed transport.
        self.from_client.recv().await.unwrap_or(Incoming::Closed)
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        self.pending.push(transmit.into_contiguous());
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        for message in self.pending.drain(..) {
            self.to_client
                .send(message)
                .await
                .map_err(|_| TransportError::Gone)?;
        }
        Ok(())
    }

    async fn close(&mut self, _going_away: bool) {
        // Dropping nothing here: the client sees `None` once this transport is dropped.
        self.from_client.close();
    }
}
