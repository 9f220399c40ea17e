//! The server side of one STOMP connection, as a sans-IO state machine.
//!
//! Modelled on quinn-proto's `Connection`: the owner feeds it what happened
//! ([`Session::handle_input`] with the peer's bytes, [`Session::handle_timeout`] when the
//! deadline from [`Session::poll_timeout`] passes), tells it what the application decided
//! (accept a CONNECT, deliver a message, complete a receipt, ...), and then drains it with the
//! `poll_*` methods in this order: [`Session::poll_event`] until `None` (answering each event),
//! [`Session::poll_transmit`] until `None` (writing each buffer to the transport as one
//! message), and [`Session::poll_timeout`] for the next deadline. It never reads a clock,
//! never touches a socket, and never panics on what the peer sends.
//!
//! Receipts: an [`Event`] with a `receipt` field hands the receipt to the application, which
//! sends it with [`Session::receipt`] once the frame's effect is done (for a SEND to the chat,
//! once the message is stored). Frames whose whole effect is inside the engine (BEGIN, ABORT,
//! DISCONNECT, and ACK/NACK inside a transaction) are receipted by the engine itself.

use crate::encode::SharedMessage;
use crate::frame::{Frame, Headers, Version};
use crate::parse::{Limits, ParseError};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// How the server wants heart-beats, as the `heart-beat` header of CONNECTED would say:
/// `send_every` is the server's cx (how often it can send), `want_every` its cy (how often
/// it wants to hear from the client). Zero means "not at all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartBeat {
    /// The smallest interval at which the server can send heart-beats.
    pub send_every: Duration,
    /// The interval at which the server wants heart-beats from the client.
    pub want_every: Duration,
}

impl HeartBeat {
    /// No heart-beats either way.
    pub const OFF: HeartBeat = HeartBeat {
        send_every: Duration::ZERO,
        want_every: Duration::ZERO,
    };

    /// Parses `"cx,cy"` in milliseconds, as in the `heart-beat` header and `--heart-beat`.
    pub fn parse(value: &str) -> Option<HeartBeat> {
        let (cx, cy) = value.split_once(',')?;
        Some(HeartBeat {
            send_every: Duration::from_millis(cx.trim().parse().ok()?),
            want_every: Duration::from_millis(cy.trim().parse().ok()?),
        })
    }
}

impl Default for HeartBeat {
    /// `25000,25000`, like Spring's recommended setting and Centrifugo's ping.
    fn default() -> Self {
        HeartBeat {
            send_every: Duration::from_secs(25),
            want_every: Duration::from_secs(25),
        }
    }
}

/// Everything a session needs to know before the first byte.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Versions this server speaks (all three by default).
    pub versions: Vec<Version>,
    /// The server's heart-beat wish.
    pub heart_beat: HeartBeat,
    /// How much longer than the negotiated interval a silent client is tolerated
    /// before it is closed (the spec suggests some tolerance; we allow the interval again).
    pub heart_beat_grace: Duration,
    /// A connection that has not sent CONNECT by then is closed.
    pub connect_timeout: Duration,
    /// Parser limits.
    pub limits: Limits,
    /// The `server` header of CONNECTED, e.g. `rtchat/0.1.0`.
    pub server_name: String,
    /// Active subscriptions per session.
    pub max_subscriptions: usize,
    /// Unacknowledged messages held per `client`/`client-individual` subscription;
    /// a delivery past this bound fails with [`DeliverError::TooManyUnacked`].
    pub max_unacked_per_subscription: usize,
    /// Open transactions per session.
    pub max_transactions: usize,
    /// Frames held in one transaction.
    pub max_frames_per_transaction: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            versions: Version::ALL.to_vec(),
            heart_beat: HeartBeat::default(),
            heart_beat_grace: Duration::from_secs(25),
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            server_name: concat!("rtchat/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_subscriptions: 64,
            max_unacked_per_subscription: 1024,
            max_transactions: 16,
            max_frames_per_transaction: 256,
        }
    }
}

/// A `receipt` header value the application owes a RECEIPT for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptId(pub String);

/// How a subscription acknowledges messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// Messages count as acknowledged when sent.
    #[default]
    Auto,
    /// ACK of a message acknowledges it and every earlier one on the subscription.
    Client,
    /// ACK acknowledges exactly one message.
    ClientIndividual,
}

/// A CONNECT (or STOMP) frame the application must answer with
/// [`Session::accept`] or [`Session::refuse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The version negotiated from `accept-version`.
    pub version: Version,
    /// The `host` header (required by 1.1+, but we do not refuse its absence).
    pub host: Option<String>,
    /// `login`, if any.
    pub login: Option<String>,
    /// `passcode`, if any.
    pub passcode: Option<String>,
    /// All headers, e.g. `Authorization`.
    pub headers: Headers,
}

/// What the peer asked for, handed to the application by [`Session::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer sent CONNECT or STOMP with a version we share; answer with accept or refuse.
    Connect(ConnectRequest),
    /// A SEND (outside a transaction, or released by its COMMIT).
    Send {
        destination: String,
        headers: Headers,
        body: Bytes,
        receipt: Option<ReceiptId>,
    },
    /// A new subscription; the engine has recorded it.
    Subscribe {
        id: String,
        destination: String,
        ack: AckMode,
        headers: Headers,
        receipt: Option<ReceiptId>,
    },
    /// A subscription ended; the engine has forgotten it.
    Unsubscribe {
        id: String,
        destination: String,
        receipt: Option<ReceiptId>,
    },
    /// Messages acknowledged (for `client` mode, every message up to and including this one).
    Ack {
        subscription: String,
        message_ids: Vec<String>,
        receipt: Option<ReceiptId>,
    },
    /// Messages refused by the client.
    Nack {
        subscription: String,
        message_ids: Vec<String>,
        receipt: Option<ReceiptId>,
    },
    /// A COMMIT: its held SEND/ACK/NACK events came just before this one.
    Commit {
        transaction: String,
        receipt: Option<ReceiptId>,
    },
    /// The connection is over (DISCONNECT, protocol error, timeout, or [`Session::close`]);
    /// no event follows. Subscriptions and open transactions are gone.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The application closed it (after [`Session::refuse`], [`Session::error`] or [`Session::close`]).
    Application,
    /// The peer broke the protocol; an ERROR was sent.
    ProtocolError(ProtocolError),
    /// No CONNECT in time.
    ConnectTimeout,
    /// The client went silent for longer than the negotiated heart-beat plus grace.
    HeartBeatTimeout,
    /// The transport ended (the owner called [`Session::handle_transport_closed`]).
    TransportClosed,
}

/// A protocol violation by the peer. The engine sends an ERROR whose `message` header is this
/// error's text, then closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("malformed frame: {0}")]
    Malformed(#[from] ParseError),
    #[error("frame received before CONNECT")]
    NotConnected,
    #[error("already connected")]
    AlreadyConnected,
    #[error("supported protocol versions are {supported}")]
    UnsupportedVersion { supported: String },
    #[error("{command} is not a client frame")]
    UnexpectedCommand { command: &'static str },
    #[error("missing required header '{0}'")]
    MissingHeader(&'static str),
    #[error("invalid header '{0}'")]
    InvalidHeader(&'static str),
    #[error("subscription id '{0}' already in use")]
    DuplicateSubscription(String),
    #[error("no subscription with id '{0}'")]
    UnknownSubscription(String),
    #[error("too many subscriptions")]
    TooManySubscriptions,
    #[error("no pending message with id '{0}'")]
    UnknownAck(String),
    #[error("transaction '{0}' already begun")]
    DuplicateTransaction(String),
    #[error("no transaction '{0}'")]
    UnknownTransaction(String),
    #[error("too many transactions")]
    TooManyTransactions,
    #[error("transaction too large")]
    TransactionTooLarge,
}

/// Why [`Session::deliver`] did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    #[error("no subscription with id '{0}'")]
    UnknownSubscription(String),
    #[error("too many unacknowledged messages on subscription '{0}'")]
    TooManyUnacked(String),
    #[error("session is not connected")]
    NotConnected,
}

/// Bytes to write to the transport: one STOMP frame or one heart-beat EOL per transmit, so a
/// message-oriented transport (WebSocket) sends each as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A whole encoded frame, or a heart-beat (`\n`).
    Bytes(Bytes),
    /// A MESSAGE: the per-subscription head and the shared tail, never copied per subscriber.
    Message { head: Bytes, tail: Bytes },
}

impl Transmit {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Transmit::Bytes(b) => b.len(),
            Transmit::Message { head, tail } => head.len() + tail.len(),
        }
    }

    /// True for an empty transmit (never produced by the session).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks in order, for vectored writes.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        let (first, second) = match self {
            Transmit::Bytes(b) => (b, None),
            Transmit::Message { head, tail } => (head, Some(tail)),
        };
        std::iter::once(first).chain(second)
    }

    /// One contiguous buffer (copies a MESSAGE's two parts together).
    pub fn into_contiguous(self) -> Bytes {
        match self {
            Transmit::Bytes(b) => b,
            Transmit::Message { head, tail } => {
                let mut out = bytes::BytesMut::with_capacity(head.len() + tail.len());
                out.extend_from_slice(&head);
                out.extend_from_slice(&tail);
                out.freeze()
            }
        }
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for CONNECT.
    AwaitingConnect,
    /// CONNECT received and handed to the application; waiting for accept or refuse.
    Authenticating,
    /// Connected: frames flow.
    Connected,
    /// An ERROR or a DISCONNECT receipt is queued; the owner should write what
    /// `poll_transmit` gives and then close the transport.
    Closing,
    /// Done.
    Closed,
}

/// One server-side STOMP session. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Session {
    // Filled in by the implementation.
    _private: (),
}

impl Session {
    /// A new session for a transport that just opened at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let _ = (config, now);
        todo!()
    }

    // ---- getters ----

    /// Where the session is.
    pub fn state(&self) -> State {
        todo!()
    }

    /// The negotiated version, once CONNECT was read.
    pub fn version(&self) -> Option<Version> {
        todo!()
    }

    /// The negotiated (send, receive) heart-beat intervals, once connected; zero means off.
    pub fn heart_beat(&self) -> Option<(Duration, Duration)> {
        todo!()
    }

    /// True once the session is over and the transport should be closed.
    pub fn is_closed(&self) -> bool {
        todo!()
    }

    /// The ack mode of an active subscription.
    pub fn subscription(&self, id: &str) -> Option<AckMode> {
        let _ = id;
        todo!()
    }

    // ---- handle_*: what happened ----

    /// Bytes from the peer (any chunking). Any input also counts as liveness.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        let _ = (bytes, now);
        todo!()
    }

    /// The deadline from [`Session::poll_timeout`] has passed: send a heart-beat, or
    /// close a silent peer or one that never sent CONNECT.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The transport saw life from the peer without bytes for us (a WebSocket ping or pong):
    /// browsers throttle timers in background tabs, so this counts as a heart-beat.
    pub fn handle_liveness(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The transport is gone; emits [`Event::Closed`] if the session was not over yet.
    pub fn handle_transport_closed(&mut self) {
        todo!()
    }

    // ---- application calls ----

    /// Accepts the pending CONNECT: queues CONNECTED with `version`, `heart-beat`,
    /// `session: <session_id>` and `server`.
    pub fn accept(&mut self, session_id: &str, now: Instant) {
        let _ = (session_id, now);
        todo!()
    }

    /// Refuses the pending CONNECT: queues ERROR with `message` (and `body` as text), then closes.
    pub fn refuse(&mut self, message: &str, body: &str) {
        let _ = (message, body);
        todo!()
    }

    /// Queues a MESSAGE on subscription `subscription`. For `client` and
    /// `client-individual` subscriptions the message is tracked until acknowledged (1.2: an
    /// `ack` header is added).
    pub fn deliver(&mut self, subscription: &str, message: &SharedMessage) -> Result<(), DeliverError> {
        let _ = (subscription, message);
        todo!()
    }

    /// Queues the RECEIPT owed for `receipt`.
    pub fn receipt(&mut self, receipt: ReceiptId) {
        let _ = receipt;
        todo!()
    }

    /// Queues an ERROR (with `receipt-id` when given) and closes: for failures the
    /// application decides are fatal (e.g. a slow consumer).
    pub fn error(&mut self, message: &str, body: &str, receipt: Option<ReceiptId>) {
        let _ = (message, body, receipt);
        todo!()
    }

    /// Closes without a frame (e.g. on server shutdown, after the owner sent what it wanted).
    pub fn close(&mut self) {
        todo!()
    }

    // ---- poll_*: what to do ----

    /// The next thing the application must handle.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }

    /// The next buffer to write to the transport.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        todo!()
    }

    /// When [`Session::handle_timeout`] must be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}

#[allow(dead_code)]
fn _assert_frame_used(_: Frame) {}
