//! One session's STOMP stream: the [`Transport`] the driver runs on.

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_driver::{Incoming, Transport, TransportError};
use rtchat_stomp::Transmit;
use std::net::IpAddr;
use std::time::Duration;
use web_transport_quinn::{RecvStream, SendStream, Session};

/// Largest chunk taken from the stream per read.
const READ_CHUNK: usize = 4096;

/// Longest the server waits for the client to take its last frames before closing.
const LAST_FRAMES: Duration = Duration::from_secs(2);

/// Longest the server then waits for the client to end the session itself. Chromium rejects
/// `closed` with "Connection lost" when the server's CLOSE_WEBTRANSPORT_SESSION comes first,
/// but resolves it when the page closes on seeing the stream end; clients that do not close
/// get the server's capsule after this.
const PEER_CLOSE: Duration = Duration::from_secs(1);

/// Session close code for every close the server makes: the STOMP session is over (an
/// ERROR frame, if any, said why). WebTransport's `closed` resolves with it.
pub const CLOSE_NORMAL: u32 = 0;

/// The close reason after a normal end (DISCONNECT, an ERROR, the client's close).
pub const REASON_DONE: &str = "stomp session ended";

/// The close reason when the server shuts down.
pub const REASON_GOING_AWAY: &str = "server shutting down";

/// A WebTransport session and the bidirectional stream that carries its STOMP bytes.
pub struct WebTransportStream {
    session: Session,
    send: SendStream,
    recv: RecvStream,
    /// The receive side ended (finished, reset or the session failed).
    ended: bool,
}

impl std::fmt::Debug for WebTransportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportStream")
            .field("remote", &self.session.remote_address())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl WebTransportStream {
    /// Wraps an established session and the bidirectional stream that carries STOMP.
    pub fn new(session: Session, send: SendStream, recv: RecvStream) -> Self {
        WebTransportStream {
            session,
            send,
            recv,
            ended: false,
        }
    }

    /// The client's address, from the QUIC path (IPv4-mapped IPv6 addresses as IPv4).
    pub fn client_ip(&self) -> IpAddr {
        self.session.remote_address().ip().to_canonical()
    }
}

#[async_trait]
impl Transport for WebTransportStream {
    fn kind(&self) -> rtchat_chat::TransportKind {
        rtchat_chat::TransportKind::WebTransport
    }

    async fn recv(&mut self) -> Incoming {
        if self.ended {
            return Incoming::Closed;
        }
        // quinn documents `read_chunk` as cancel-safe: a dropped future loses no data.
        match self.recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => Incoming::Data(chunk.bytes),
            Ok(None) => {
                self.ended = true;
                Incoming::Closed
            }
            Err(error) => {
                tracing::debug!(%error, "WebTransport stream read failed");
                self.ended = true;
                Incoming::Closed
            }
        }
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        for chunk in transmit.chunks() {
            // A `Bytes` clone shares the buffer: no copy.
            self.send
                .write_chunk(Bytes::clone(chunk))
                .await
                .map_err(TransportError::failed)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // QUIC stream writes are handed to the connection as they are made; nothing to flush.
        Ok(())
    }

    async fn close(&mut self, going_away: bool) {
        if self.send.finish().is_ok() {
            // Let the last frame (an ERROR, a RECEIPT) arrive before the session goes: closing
            // the session abandons unacknowledged stream data. `stopped` resolves once the
            // client has read the stream to its end (or stopped it).
            let _ = tokio::time::timeout(LAST_FRAMES, self.send.stopped()).await;
            // The stream's end tells the client the STOMP session is over; a client that ends
            // the WebTransport session on it (the page) closes it the way Chromium accepts.
            let _ = tokio::time::timeout(PEER_CLOSE, self.session.closed()).await;
        }
        let reason = if going_away {
            REASON_GOING_AWAY
        } else {
            REASON_DONE
        };
        // A CLOSE_WEBTRANSPORT_SESSION capsule on the CONNECT stream, then FIN: the browser's
        // `closed` resolves with {closeCode: 0, reason}. The capsule is written by a task that
        // outlives this transport and closes the QUIC connection when the client has.
        self.session.close(CLOSE_NORMAL, reason.as_bytes());
    }
}
