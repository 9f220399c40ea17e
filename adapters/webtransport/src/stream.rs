//! One session's STOMP stream: the [`Transport`] the driver runs on.

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_driver::{Incoming, Transport, TransportError};
use rtchat_stomp::{SubscriptionKey, Transmit};
use std::collections::HashMap;
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

/// Which streams the server writes a session's frames on (`--wt-streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Everything on the client's first bidirectional stream, as over a TCP connection.
    #[default]
    Single,
    /// Each subscription's MESSAGE frames on a unidirectional stream the server opens at that
    /// subscription's first MESSAGE and finishes when the subscription ends; everything else
    /// (CONNECTED, RECEIPT, ERROR, heart-beats) on the bidirectional stream. A lost packet
    /// then holds up only the subscription whose bytes it carried.
    PerSubscription,
}

impl StreamMode {
    /// The name `GET /webtransport` and `--wt-streams` use: `single` or `per-subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Single => "single",
            StreamMode::PerSubscription => "per-subscription",
        }
    }
}

/// A WebTransport session and the bidirectional stream that carries its STOMP bytes (and, in
/// [`StreamMode::PerSubscription`], the unidirectional streams of its subscriptions).
pub struct WebTransportStream {
    session: Session,
    send: SendStream,
    recv: RecvStream,
    /// The receive side ended (finished, reset or the session failed).
    ended: bool,
    mode: StreamMode,
    /// Per-subscription mode: the open stream of each subscription that had a MESSAGE and has
    /// not ended (`None` once the client stopped it). Bounded by the session's subscriptions
    /// (`max_subscriptions`).
    subscriptions: HashMap<SubscriptionKey, Option<SendStream>>,
}

impl std::fmt::Debug for WebTransportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportStream")
            .field("remote", &self.session.remote_address())
            .field("ended", &self.ended)
            .field("mode", &self.mode)
            .field("subscription_streams", &self.subscriptions.len())
            .finish_non_exhaustive()
    }
}

impl WebTransportStream {
    /// Wraps an established session and the bidirectional stream that carries STOMP, with
    /// every frame on that stream ([`StreamMode::Single`]).
    pub fn new(session: Session, send: SendStream, recv: RecvStream) -> Self {
        WebTransportStream {
            session,
            send,
            recv,
            ended: false,
            mode: StreamMode::Single,
            subscriptions: HashMap::new(),
        }
    }

    /// The same, writing MESSAGE frames as `mode` says.
    pub fn with_mode(mut self, mode: StreamMode) -> Self {
        self.mode = mode;
        self
    }

    /// The stream `transmit` goes on: its subscription's (opened now if it is the first
    /// MESSAGE) in per-subscription mode, else the bidirectional one; `None` when the client
    /// stopped that subscription's stream (its MESSAGEs are dropped).
    async fn stream_for(
        &mut self,
        transmit: &Transmit,
    ) -> Result<Option<&mut SendStream>, TransportError> {
        let key = match transmit {
            Transmit::Message { subscription, .. } if self.mode == StreamMode::PerSubscription => {
                *subscription
            }
            _ => return Ok(Some(&mut self.send)),
        };
        if !self.subscriptions.contains_key(&key) {
            // Waits for the client's stream credit (MAX_STREAMS) if it allows no more; the
            // driver's write timeout bounds the wait.
            let stream = self
                .session
                .open_uni()
                .await
                .map_err(TransportError::failed)?;
            self.subscriptions.insert(key, Some(stream));
        }
        Ok(self.subscriptions.get_mut(&key).and_then(Option::as_mut))
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
        let bidirectional =
            !matches!(transmit, Transmit::Message { .. }) || self.mode == StreamMode::Single;
        let Some(stream) = self.stream_for(&transmit).await? else {
            return Ok(());
        };
        for chunk in transmit.chunks() {
            // A `Bytes` clone shares the buffer: no copy.
            match stream.write_chunk(Bytes::clone(chunk)).await {
                Ok(()) => {}
                Err(error) if bidirectional => return Err(TransportError::failed(error)),
                Err(error) => {
                    // The client stopped this subscription's stream (or it failed alone): its
                    // MESSAGEs are dropped from now on; the session goes on. If the session
                    // failed, the bidirectional stream reports it.
                    tracing::debug!(%error, "a subscription's stream was stopped");
                    if let Transmit::Message { subscription, .. } = &transmit {
                        self.subscriptions.insert(*subscription, None);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn end_subscription(&mut self, key: SubscriptionKey) -> Result<(), TransportError> {
        // Its last MESSAGE was written: FIN after it. A subscription that never had a MESSAGE
        // never had a stream.
        if let Some(Some(mut stream)) = self.subscriptions.remove(&key) {
            // Only fails if the client stopped the stream already: nothing left to finish.
            let _ = stream.finish();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // QUIC stream writes are handed to the connection as they are made; nothing to flush.
        Ok(())
    }

    async fn close(&mut self, going_away: bool) {
        // The subscriptions still open end with the session: their streams are finished too.
        let finished: Vec<SendStream> = self
            .subscriptions
            .drain()
            .filter_map(|(_, stream)| stream)
            .map(|mut stream| {
                let _ = stream.finish();
                stream
            })
            .collect();
        let bidirectional = self.send.finish().is_ok().then_some(&self.send);
        let stream_ended = bidirectional.is_some();
        // Let the last frames (an ERROR, a RECEIPT, the last MESSAGEs) arrive before the
        // session goes: closing the session abandons unacknowledged stream data. `stopped`
        // resolves once the client has read a stream to its end (or stopped it); the streams
        // progress together, so waiting on them one after another costs the longest wait.
        let _ = tokio::time::timeout(LAST_FRAMES, async {
            for stream in bidirectional.into_iter().chain(&finished) {
                let _ = stream.stopped().await;
            }
        })
        .await;
        if stream_ended {
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
