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
//! DISCONNECT, and SEND/ACK/NACK when they join a transaction) are receipted by the engine
//! itself; the events a COMMIT releases carry no receipt.
//!
//! Acknowledgements: 1.2 clients ACK by the `ack` header of the MESSAGE (a session-unique
//! number the engine makes up), 1.1 clients by `message-id` and `subscription`, 1.0 clients by
//! `message-id` alone. In `client` mode ACK and NACK are cumulative; in `client-individual`
//! mode they settle one message.
//!
//! Closing: see [`Session`] for when [`State::Closing`] becomes [`State::Closed`].

mod subscriptions;
#[cfg(test)]
mod tests;
mod transactions;

use crate::encode::{SharedMessage, encode_message_head, encode_to_bytes};
use crate::frame::{Command, Frame, Headers, Version};
use crate::parse::{Item, Limits, ParseError, Parser};
use crate::rate::TokenBucket;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use subscriptions::{Acknowledged, Subscriptions, TrackError};
use transactions::{Held, TransactionError, Transactions};

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
    /// The most tolerance a silent client gets past the negotiated receive interval before
    /// it is closed. The spec suggests some tolerance; the session allows the interval again,
    /// at least [`MIN_HEART_BEAT_GRACE`] (so a short interval survives a scheduling hiccup)
    /// and at most this.
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
    /// Client frames per second, in bursts of as many; more is a protocol error
    /// ([`ProtocolError::TooManyFrames`]). Heart-beats do not count. 0 means unlimited.
    pub max_frames_per_second: u32,
    /// Whether a DISCONNECT waits for the application: the session yields
    /// [`Event::Disconnect`], reads nothing more, and sends the RECEIPT and closes only at
    /// [`Session::disconnect`], so the application can first answer the frames before it
    /// (RECEIPTs of SENDs still being stored). Off: the RECEIPT goes at once.
    pub defer_disconnect: bool,
}

impl Default for SessionConfig {
    /// All versions, `25000,25000` heart-beats with as much grace, 10 s to connect, default
    /// parser limits, 64 subscriptions, 1024 unacknowledged messages each, 16 transactions of
    /// at most 256 frames.
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
            max_frames_per_second: 1000,
            defer_disconnect: false,
        }
    }
}

/// The least tolerance past the negotiated receive interval, whatever the interval.
pub const MIN_HEART_BEAT_GRACE: Duration = Duration::from_secs(1);

/// The tolerance past a receive interval of `every`: the interval again, within
/// [`MIN_HEART_BEAT_GRACE`] and `max` (a `max` below the minimum still allows the minimum).
fn heart_beat_grace(every: Duration, max: Duration) -> Duration {
    every.min(max).max(MIN_HEART_BEAT_GRACE)
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
        /// Where the client sent it.
        destination: String,
        /// All of the frame's headers, in wire order.
        headers: Headers,
        /// The body, shared with the parser's buffer (never copied).
        body: Bytes,
        /// The RECEIPT the application owes once the SEND took effect; `None` inside a
        /// transaction (the engine receipted it when it joined the transaction).
        receipt: Option<ReceiptId>,
    },
    /// A new subscription; the engine has recorded it.
    Subscribe {
        /// The subscription id (1.0 without `id`: the destination).
        id: String,
        /// What to subscribe to.
        destination: String,
        /// How its messages are acknowledged.
        ack: AckMode,
        /// All of the frame's headers (e.g. `since-id`, `limit`).
        headers: Headers,
        /// The RECEIPT the application owes once the subscription is live.
        receipt: Option<ReceiptId>,
    },
    /// A subscription ended; the engine has forgotten it.
    Unsubscribe {
        /// The subscription id.
        id: String,
        /// The destination it was subscribed to.
        destination: String,
        /// The RECEIPT the application owes.
        receipt: Option<ReceiptId>,
    },
    /// Messages acknowledged (for `client` mode, every message up to and including this one).
    Ack {
        /// The subscription the messages were delivered on.
        subscription: String,
        /// The `message-id`s acknowledged, oldest first.
        message_ids: Vec<String>,
        /// The RECEIPT the application owes (`None` inside a transaction).
        receipt: Option<ReceiptId>,
    },
    /// Messages refused by the client.
    Nack {
        /// The subscription the messages were delivered on.
        subscription: String,
        /// The `message-id`s refused, oldest first (cumulative in `client` mode, like ACK).
        message_ids: Vec<String>,
        /// The RECEIPT the application owes (`None` inside a transaction).
        receipt: Option<ReceiptId>,
    },
    /// The client sent DISCONNECT and [`SessionConfig::defer_disconnect`] is on: nothing more
    /// is read; call [`Session::disconnect`] once every earlier frame is answered.
    Disconnect {
        /// The RECEIPT [`Session::disconnect`] will send.
        receipt: Option<ReceiptId>,
    },
    /// A COMMIT: its held SEND/ACK/NACK events came just before this one.
    Commit {
        /// The transaction id.
        transaction: String,
        /// The RECEIPT the application owes once the released frames took effect.
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
    /// The bytes are not a STOMP frame (or break a parser limit).
    #[error("malformed frame: {0}")]
    Malformed(#[from] ParseError),
    /// A frame other than CONNECT or STOMP came first.
    #[error("frame received before CONNECT")]
    NotConnected,
    /// CONNECT or STOMP on a session that already has one.
    #[error("already connected")]
    AlreadyConnected,
    /// `accept-version` shares no version with the server's.
    #[error("supported protocol versions are {supported}")]
    UnsupportedVersion {
        /// The server's versions, comma-separated, as in the ERROR's `version` header.
        supported: String,
    },
    /// A server frame (CONNECTED, MESSAGE, RECEIPT, ERROR) sent by the client.
    #[error("{command} is not a client frame")]
    UnexpectedCommand {
        /// The command as written on the wire.
        command: &'static str,
    },
    /// A header the frame needs is absent.
    #[error("missing required header '{0}'")]
    MissingHeader(&'static str),
    /// A header has a value the spec does not allow.
    #[error("invalid header '{0}'")]
    InvalidHeader(&'static str),
    /// SUBSCRIBE with an `id` already active on this session.
    #[error("subscription id '{0}' already in use")]
    DuplicateSubscription(String),
    /// UNSUBSCRIBE (or a 1.1 ACK) naming no active subscription.
    #[error("no subscription with id '{0}'")]
    UnknownSubscription(String),
    /// SUBSCRIBE past [`SessionConfig::max_subscriptions`].
    #[error("too many subscriptions")]
    TooManySubscriptions,
    /// ACK or NACK of a message that is not waiting for one.
    #[error("no pending message with id '{0}'")]
    UnknownAck(String),
    /// BEGIN of a transaction that is already open.
    #[error("transaction '{0}' already begun")]
    DuplicateTransaction(String),
    /// COMMIT, ABORT or a transactional frame naming no open transaction.
    #[error("no transaction '{0}'")]
    UnknownTransaction(String),
    /// BEGIN past [`SessionConfig::max_transactions`].
    #[error("too many transactions")]
    TooManyTransactions,
    /// A frame past [`SessionConfig::max_frames_per_transaction`].
    #[error("transaction too large")]
    TransactionTooLarge,
    /// The client sent more than the pipelining allowance while its CONNECT was being
    /// decided (see [`Session::handle_input`]).
    #[error("too much data before CONNECTED")]
    TooMuchBeforeConnected,
    /// More frames than [`SessionConfig::max_frames_per_second`] allows.
    #[error("too many frames: at most {per_second} per second")]
    TooManyFrames { per_second: u32 },
}

/// Why [`Session::deliver`] did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The session has no subscription with this id (it may have just unsubscribed).
    #[error("no subscription with id '{0}'")]
    UnknownSubscription(String),
    /// The subscription already holds [`SessionConfig::max_unacked_per_subscription`]
    /// unacknowledged messages: the client is not keeping up.
    #[error("too many unacknowledged messages on subscription '{0}'")]
    TooManyUnacked(String),
    /// The session is not (or no longer) connected.
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
    Message {
        /// `MESSAGE`, `subscription` and (1.2 client modes) `ack`: encoded per delivery.
        head: Bytes,
        /// The rest of the frame: a clone of [`SharedMessage::tail`], shared by every delivery.
        tail: Bytes,
    },
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
///
/// Closing rule: every way a session ends (DISCONNECT, a protocol error, [`Session::refuse`],
/// [`Session::error`], [`Session::close`], a timeout) emits [`Event::Closed`] once and moves
/// to [`State::Closing`]; frames already queued (the RECEIPT of a DISCONNECT, an ERROR,
/// deliveries and receipts the application queued before) stay queued, and the session
/// becomes [`State::Closed`] when [`Session::poll_transmit`] has handed out the last of them
/// (at once when none are queued). [`Session::handle_transport_closed`] drops what is queued
/// and closes at once.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    parser: Parser,
    /// Set when CONNECT is read.
    version: Option<Version>,
    /// The client's `heart-beat` wish, kept from CONNECT until [`Session::accept`].
    client_heart_beat: HeartBeat,
    /// Negotiated at [`Session::accept`].
    heart_beat: Option<Negotiated>,
    /// Until the application accepts, the transport must bring a CONNECT and get it decided.
    connect_deadline: Option<Instant>,
    /// The `message` of the ERROR queued, if one was: nothing more goes to the peer (no late
    /// RECEIPT or MESSAGE).
    error_sent: Option<Box<str>>,
    /// A deferred DISCONNECT waits for [`Session::disconnect`], with its receipt.
    disconnecting: Option<Option<ReceiptId>>,
    /// When the peer last showed life (bytes or [`Session::handle_liveness`]).
    last_received: Instant,
    /// When something was last queued for the peer, as far as we know (see `latest_now`).
    last_sent: Instant,
    /// The latest `now` any call gave us. Application calls without a `now` (deliver,
    /// receipt) are stamped with it: it is never later than the real time, so heart-beats
    /// may go out a little early but never late.
    latest_now: Instant,
    /// Bytes fed while a CONNECT waits for the application, bounded by the pipelining
    /// allowance. Counted here rather than asked of the parser, which may already have
    /// split them into frames it holds for us.
    fed_while_authenticating: usize,
    /// Client frames allowed now: a burst of `max_frames_per_second`, refilled over time.
    frame_budget: TokenBucket,
    subscriptions: Subscriptions,
    transactions: Transactions,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
}

/// The negotiated heart-beat intervals; zero means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Negotiated {
    send_every: Duration,
    receive_every: Duration,
}

impl Negotiated {
    /// The spec's rule: each direction runs at the slower of what the sender can do and what
    /// the receiver wants, and not at all when either side says zero.
    fn new(server: HeartBeat, client: HeartBeat) -> Self {
        fn slower_unless_off(a: Duration, b: Duration) -> Duration {
            if a.is_zero() || b.is_zero() {
                Duration::ZERO
            } else {
                a.max(b)
            }
        }
        Negotiated {
            send_every: slower_unless_off(server.send_every, client.want_every),
            receive_every: slower_unless_off(client.send_every, server.want_every),
        }
    }
}

/// The deadlines a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// CONNECT must arrive and be accepted by then.
    Connect,
    /// Nothing was sent for the negotiated send interval: time for a heart-beat.
    SendHeartBeat,
    /// Nothing was received for the negotiated receive interval plus grace: the peer is gone.
    Receive,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Connect, Timer::SendHeartBeat, Timer::Receive];
}

/// The EOL a heart-beat is made of.
const HEART_BEAT: &[u8] = b"\n";

/// While the application decides on a CONNECT the engine reads no further frames, but a
/// client may pipeline SUBSCRIBEs and SENDs behind its CONNECT; it may buffer this many
/// maximum-size frames' worth of bytes before it is cut off.
const PIPELINED_FRAMES_BEFORE_CONNECTED: usize = 2;

impl Session {
    /// A new session for a transport that just opened at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let frame_budget = TokenBucket::new(config.max_frames_per_second);
        Session {
            parser: Parser::new(config.limits),
            connect_deadline: now.checked_add(config.connect_timeout),
            error_sent: None,
            disconnecting: None,
            config,
            state: State::AwaitingConnect,
            version: None,
            client_heart_beat: HeartBeat::OFF,
            heart_beat: None,
            last_received: now,
            last_sent: now,
            latest_now: now,
            fed_while_authenticating: 0,
            frame_budget,
            subscriptions: Subscriptions::default(),
            transactions: Transactions::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiated version, once CONNECT was read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The negotiated (send, receive) heart-beat intervals, once connected; zero means off.
    pub fn heart_beat(&self) -> Option<(Duration, Duration)> {
        self.heart_beat
            .map(|negotiated| (negotiated.send_every, negotiated.receive_every))
    }

    /// True once the session is over and the transport should be closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The ack mode of an active subscription.
    pub fn subscription(&self, id: &str) -> Option<AckMode> {
        self.subscriptions.get(id).map(|s| s.ack)
    }

    /// The number of active subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    // ---- handle_*: what happened ----

    /// Bytes from the peer (any chunking). Any input also counts as liveness.
    ///
    /// While a CONNECT waits for [`Session::accept`] or [`Session::refuse`], later frames
    /// stay unread in the parser and are processed after `accept`; a client that pipelines
    /// more than two maximum-size frames' worth meanwhile is closed with
    /// [`ProtocolError::TooMuchBeforeConnected`]. Once closing, input is ignored.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.is_over() {
            return;
        }
        self.observe(now);
        self.last_received = now;
        if self.state == State::Authenticating {
            self.fed_while_authenticating =
                self.fed_while_authenticating.saturating_add(bytes.len());
        }
        self.parser.feed(bytes);
        self.read_frames();
    }

    /// The deadline from [`Session::poll_timeout`] has passed: send a heart-beat, or
    /// close a silent peer or one that never sent CONNECT.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        for timer in Timer::ALL {
            if self.is_over() {
                return;
            }
            if self.deadline(timer).is_none_or(|deadline| now < deadline) {
                continue;
            }
            match timer {
                // Every close the server starts says why first (the peer may be gone; then
                // nobody reads it, which costs nothing).
                Timer::Connect => {
                    self.queue_error(
                        "connect timeout",
                        "no CONNECT came in time after the connection was opened",
                        None,
                        None,
                    );
                    self.close_with(CloseReason::ConnectTimeout);
                }
                Timer::Receive => {
                    self.queue_error(
                        "heart-beat timeout",
                        "nothing was received within the negotiated heart-beat interval and grace",
                        None,
                        None,
                    );
                    self.close_with(CloseReason::HeartBeatTimeout);
                }
                Timer::SendHeartBeat => {
                    self.queue(Transmit::Bytes(Bytes::from_static(HEART_BEAT)));
                }
            }
        }
    }

    /// The transport saw life from the peer without bytes for us (a WebSocket ping or pong):
    /// browsers throttle timers in background tabs, so this counts as a heart-beat.
    pub fn handle_liveness(&mut self, now: Instant) {
        if self.is_over() {
            return;
        }
        self.observe(now);
        self.last_received = now;
    }

    /// The transport is gone; emits [`Event::Closed`] if the session was not over yet.
    pub fn handle_transport_closed(&mut self) {
        // Nothing queued can be written any more.
        self.transmits.clear();
        self.close_with(CloseReason::TransportClosed);
        self.state = State::Closed;
    }

    // ---- application calls ----

    /// Accepts the pending CONNECT: queues CONNECTED with `version`, `heart-beat`,
    /// `session: <session_id>` and `server`. Ignored unless a CONNECT is pending.
    pub fn accept(&mut self, session_id: &str, now: Instant) {
        self.accept_with(session_id, &Headers::new(), now);
    }

    /// Like [`Session::accept`], with the application's own `headers` added to CONNECTED
    /// after the spec's (e.g. a server's log epoch).
    pub fn accept_with(&mut self, session_id: &str, headers: &Headers, now: Instant) {
        if self.state != State::Authenticating {
            return;
        }
        let Some(version) = self.version else {
            // Authenticating is only entered with a negotiated version.
            return;
        };
        self.observe(now);
        let negotiated = if version == Version::V1_0 {
            // Heart-beats arrived with 1.1.
            Negotiated::new(HeartBeat::OFF, HeartBeat::OFF)
        } else {
            Negotiated::new(self.config.heart_beat, self.client_heart_beat)
        };
        let advertised = if version == Version::V1_0 {
            HeartBeat::OFF
        } else {
            self.config.heart_beat
        };
        let connected = Frame::new(Command::Connected)
            .header("version", version.as_str())
            .header(
                "heart-beat",
                format!(
                    "{},{}",
                    advertised.send_every.as_millis(),
                    advertised.want_every.as_millis()
                ),
            )
            .header("session", session_id)
            .header("server", self.config.server_name.as_str());
        let connected = headers
            .iter()
            .fold(connected, |frame, (name, value)| frame.header(name, value));
        self.queue_frame(&connected);
        self.heart_beat = Some(negotiated);
        self.connect_deadline = None;
        // The client's receive window starts now: it may have waited for us.
        self.last_received = now;
        self.state = State::Connected;
        self.read_frames();
    }

    /// Refuses the pending CONNECT: queues ERROR with `message` (and `body` as text), then closes.
    /// Ignored unless a CONNECT is pending.
    pub fn refuse(&mut self, message: &str, body: &str) {
        if self.state != State::Authenticating {
            return;
        }
        self.queue_error(message, body, None, None);
        self.close_with(CloseReason::Application);
    }

    /// Queues a MESSAGE on subscription `subscription`. For `client` and
    /// `client-individual` subscriptions the message is tracked until acknowledged (1.2: an
    /// `ack` header is added).
    pub fn deliver(
        &mut self,
        subscription: &str,
        message: &SharedMessage,
    ) -> Result<(), DeliverError> {
        let (State::Connected, Some(version)) = (self.state, self.version) else {
            return Err(DeliverError::NotConnected);
        };
        let ack_id = self
            .subscriptions
            .track(
                subscription,
                message.message_id(),
                self.config.max_unacked_per_subscription,
            )
            .map_err(|error| match error {
                TrackError::UnknownSubscription => {
                    DeliverError::UnknownSubscription(subscription.to_owned())
                }
                TrackError::TooManyPending => DeliverError::TooManyUnacked(subscription.to_owned()),
            })?;
        // Only 1.2 has the `ack` header; older clients ACK by message-id.
        let ack_header = ack_id
            .filter(|_| version == Version::V1_2)
            .map(|id| id.to_string());
        let mut head = BytesMut::with_capacity(32 + subscription.len());
        encode_message_head(subscription, ack_header.as_deref(), version, &mut head);
        self.queue(Transmit::Message {
            head: head.freeze(),
            tail: message.tail(version).clone(),
        });
        Ok(())
    }

    /// Forgets a subscription the application refused (e.g. an unknown room): its id is free
    /// again and it no longer counts against the limit. No frame is sent; the application
    /// says why in its own way. Returns false when there was no such subscription.
    pub fn refuse_subscription(&mut self, id: &str) -> bool {
        self.subscriptions.remove(id).is_some()
    }

    /// Queues the RECEIPT owed for `receipt`. Accepted while connected and while closing
    /// (so receipts for frames that came before a DISCONNECT still go out); ignored otherwise.
    pub fn receipt(&mut self, receipt: ReceiptId) {
        // Nothing follows an ERROR: the session is over for the peer.
        if matches!(self.state, State::Connected | State::Closing) && self.error_sent.is_none() {
            self.queue_receipt(receipt);
        }
    }

    /// Queues an ERROR (with `receipt-id` when given) and closes: for failures the
    /// application decides are fatal (e.g. a slow consumer). Ignored once closing.
    pub fn error(&mut self, message: &str, body: &str, receipt: Option<ReceiptId>) {
        if self.is_over() {
            return;
        }
        self.queue_error(message, body, receipt.as_ref(), None);
        self.close_with(CloseReason::Application);
    }

    /// Whether bytes the peer sent are still unread: frames are read one at a time, as
    /// [`Session::poll_event`] is called. An owner that holds back `poll_event` (while it
    /// finishes what an earlier frame asked) can stop reading the transport until this is
    /// false, so what it holds stays bounded.
    pub fn has_unread_input(&self) -> bool {
        !self.is_over() && self.parser.has_unread()
    }

    /// The `message` header of the ERROR this session sent, if it sent one (for metrics: why
    /// the server ended it).
    pub fn error_sent(&self) -> Option<&str> {
        self.error_sent.as_deref()
    }

    /// Completes a deferred DISCONNECT ([`Event::Disconnect`]): queues its RECEIPT, if it
    /// asked for one, and closes. Ignored when no DISCONNECT waits.
    pub fn disconnect(&mut self) {
        let Some(receipt) = self.disconnecting.take() else {
            return;
        };
        if self.is_over() {
            return;
        }
        if let Some(receipt) = receipt {
            self.queue_receipt(receipt);
        }
        self.close_with(CloseReason::Disconnect);
    }

    /// Closes without a frame (e.g. on server shutdown, after the owner sent what it wanted).
    /// What is already queued is still handed out by [`Session::poll_transmit`].
    pub fn close(&mut self) {
        self.close_with(CloseReason::Application);
    }

    // ---- poll_*: what to do ----

    /// The next thing the application must handle.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            // The next frame is read only now, after the application has acted on the one
            // before (accepted or refused a SUBSCRIBE, say): the same bytes get the same
            // answers however the transport chunked them.
            self.read_frames();
        }
        let event = self.events.pop_front();
        if event.is_none() {
            release_if_drained(&mut self.events);
        }
        event
    }

    /// The next buffer to write to the transport.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if self.state == State::Closing && self.transmits.is_empty() {
            self.state = State::Closed;
        }
        if transmit.is_none() {
            release_if_drained(&mut self.transmits);
        }
        transmit
    }

    /// When [`Session::handle_timeout`] must be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        Timer::ALL
            .into_iter()
            .filter_map(|timer| self.deadline(timer))
            .min()
    }

    // ---- internals ----

    /// Closing or closed: nothing the peer does matters any more.
    fn is_over(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
    }

    fn observe(&mut self, now: Instant) {
        self.latest_now = self.latest_now.max(now);
    }

    fn deadline(&self, timer: Timer) -> Option<Instant> {
        match (timer, self.state) {
            (Timer::Connect, State::AwaitingConnect | State::Authenticating) => {
                self.connect_deadline
            }
            (Timer::SendHeartBeat, State::Connected) => {
                let every = self.heart_beat?.send_every;
                if every.is_zero() {
                    return None;
                }
                self.last_sent.checked_add(every)
            }
            (Timer::Receive, State::Connected) => {
                let every = self.heart_beat?.receive_every;
                if every.is_zero() {
                    return None;
                }
                // An absurd interval from the peer overflows to "never", not a panic.
                self.last_received
                    .checked_add(every)?
                    .checked_add(heart_beat_grace(every, self.config.heart_beat_grace))
            }
            _ => None,
        }
    }

    /// Pulls frames from the parser while the state lets the session act on them.
    /// Reads frames until one yields an event for the application (or no whole frame is
    /// left): frames are handed over one at a time, see [`Session::poll_event`].
    fn read_frames(&mut self) {
        while self.events.is_empty() {
            if self.disconnecting.is_some() {
                // After DISCONNECT a client sends nothing; whatever it did send is not read.
                return;
            }
            match self.state {
                State::AwaitingConnect | State::Connected => {}
                State::Authenticating => {
                    let allowance = self
                        .config
                        .limits
                        .max_frame_bytes
                        .saturating_mul(PIPELINED_FRAMES_BEFORE_CONNECTED);
                    if self.fed_while_authenticating > allowance {
                        self.protocol_error(ProtocolError::TooMuchBeforeConnected, None);
                    }
                    return;
                }
                State::Closing | State::Closed => return,
            }
            match self.parser.next_item() {
                Ok(None) => return,
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(frame))) => {
                    if self.frame_budget.try_take(self.latest_now) {
                        self.handle_frame(frame);
                    } else {
                        let per_second = self.config.max_frames_per_second;
                        let receipt = frame.get("receipt").map(|r| ReceiptId(r.to_owned()));
                        self.protocol_error(
                            ProtocolError::TooManyFrames { per_second },
                            receipt.as_ref(),
                        );
                    }
                }
                Err(error) => self.protocol_error(ProtocolError::Malformed(error), None),
            }
        }
    }

    fn handle_frame(&mut self, frame: Frame) {
        let receipt = frame.get("receipt").map(|r| ReceiptId(r.to_owned()));
        let result = match (self.state, frame.command) {
            (
                _,
                command @ (Command::Connected
                | Command::Message
                | Command::Receipt
                | Command::Error),
            ) => Err(ProtocolError::UnexpectedCommand {
                command: command.as_str(),
            }),
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => self.on_connect(frame),
            (State::AwaitingConnect, _) => Err(ProtocolError::NotConnected),
            (_, Command::Connect | Command::Stomp) => Err(ProtocolError::AlreadyConnected),
            (_, Command::Send) => self.on_send(frame, receipt.clone()),
            (_, Command::Subscribe) => self.on_subscribe(frame, receipt.clone()),
            (_, Command::Unsubscribe) => self.on_unsubscribe(frame, receipt.clone()),
            (_, Command::Ack) => self.on_ack(frame, false, receipt.clone()),
            (_, Command::Nack) => self.on_ack(frame, true, receipt.clone()),
            (_, Command::Begin) => self.on_begin(frame, receipt.clone()),
            (_, Command::Commit) => self.on_commit(frame, receipt.clone()),
            (_, Command::Abort) => self.on_abort(frame, receipt.clone()),
            (_, Command::Disconnect) => {
                self.on_disconnect(receipt.clone());
                Ok(())
            }
        };
        if let Err(error) = result {
            self.protocol_error(error, receipt.as_ref());
        }
    }

    fn on_connect(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        // No accept-version means a 1.0 client.
        let offered = frame.get("accept-version").unwrap_or("1.0");
        let version = offered
            .split(',')
            .filter_map(Version::from_header)
            .filter(|v| self.config.versions.contains(v))
            .max()
            .ok_or_else(|| ProtocolError::UnsupportedVersion {
                supported: self.supported_versions(),
            })?;
        self.version = Some(version);
        self.parser.set_version(version);
        if version != Version::V1_0 {
            self.client_heart_beat = match frame.get("heart-beat") {
                None => HeartBeat::OFF,
                Some(value) => {
                    HeartBeat::parse(value).ok_or(ProtocolError::InvalidHeader("heart-beat"))?
                }
            };
        }
        let header = |name: &str| frame.get(name).map(str::to_owned);
        let request = ConnectRequest {
            version,
            host: header("host"),
            login: header("login"),
            passcode: header("passcode"),
            headers: frame.headers,
        };
        self.state = State::Authenticating;
        self.events.push_back(Event::Connect(request));
        Ok(())
    }

    fn on_send(&mut self, frame: Frame, receipt: Option<ReceiptId>) -> Result<(), ProtocolError> {
        let destination = required(&frame, "destination")?.to_owned();
        let transaction = frame.get("transaction").map(str::to_owned);
        let Frame { headers, body, .. } = frame;
        match transaction {
            Some(transaction) => self.hold(
                &transaction,
                Held::Send {
                    destination,
                    headers,
                    body,
                },
                receipt,
            ),
            None => {
                self.events.push_back(Event::Send {
                    destination,
                    headers,
                    body,
                    receipt,
                });
                Ok(())
            }
        }
    }

    fn on_subscribe(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
    ) -> Result<(), ProtocolError> {
        let version = self.negotiated_version();
        let destination = required(&frame, "destination")?.to_owned();
        let id = match (frame.get("id"), version) {
            (Some(id), _) => id.to_owned(),
            // 1.0 made `id` optional; the destination names the subscription then.
            (None, Version::V1_0) => destination.clone(),
            (None, _) => return Err(ProtocolError::MissingHeader("id")),
        };
        let ack = match (frame.get("ack"), version) {
            (None | Some("auto"), _) => AckMode::Auto,
            (Some("client"), _) => AckMode::Client,
            (Some("client-individual"), Version::V1_1 | Version::V1_2) => AckMode::ClientIndividual,
            (Some(_), _) => return Err(ProtocolError::InvalidHeader("ack")),
        };
        if self.subscriptions.get(&id).is_some() {
            return Err(ProtocolError::DuplicateSubscription(id));
        }
        if self.subscriptions.len() >= self.config.max_subscriptions {
            return Err(ProtocolError::TooManySubscriptions);
        }
        self.subscriptions
            .insert(id.clone(), destination.clone(), ack);
        self.events.push_back(Event::Subscribe {
            id,
            destination,
            ack,
            headers: frame.headers,
            receipt,
        });
        Ok(())
    }

    fn on_unsubscribe(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
    ) -> Result<(), ProtocolError> {
        let id = match (frame.get("id"), self.negotiated_version()) {
            (Some(id), _) => id.to_owned(),
            // 1.0 may unsubscribe by destination.
            (None, Version::V1_0) => {
                let destination = frame
                    .get("destination")
                    .ok_or(ProtocolError::MissingHeader("id"))?;
                self.subscriptions
                    .id_for_destination(destination)
                    .unwrap_or(destination)
                    .to_owned()
            }
            (None, _) => return Err(ProtocolError::MissingHeader("id")),
        };
        let subscription = self
            .subscriptions
            .remove(&id)
            .ok_or(ProtocolError::UnknownSubscription(id))?;
        self.events.push_back(Event::Unsubscribe {
            id: subscription.id,
            destination: subscription.destination,
            receipt,
        });
        Ok(())
    }

    fn on_ack(
        &mut self,
        frame: Frame,
        nack: bool,
        receipt: Option<ReceiptId>,
    ) -> Result<(), ProtocolError> {
        let ack_id = self.ack_id_of(&frame)?;
        match frame.get("transaction") {
            Some(transaction) => self.hold(transaction, Held::Ack { ack_id, nack }, receipt),
            None => {
                self.settle(ack_id, nack, receipt);
                Ok(())
            }
        }
    }

    /// The pending delivery an ACK or NACK names, by each version's rules.
    fn ack_id_of(&self, frame: &Frame) -> Result<u64, ProtocolError> {
        match self.negotiated_version() {
            Version::V1_2 => {
                let id = required(frame, "id")?;
                id.parse::<u64>()
                    .ok()
                    .filter(|&ack_id| self.subscriptions.is_pending(ack_id))
                    .ok_or_else(|| ProtocolError::UnknownAck(id.to_owned()))
            }
            version => {
                let message_id = required(frame, "message-id")?;
                let subscription = match (frame.get("subscription"), version) {
                    (Some(subscription), _) => {
                        if self.subscriptions.get(subscription).is_none() {
                            return Err(ProtocolError::UnknownSubscription(
                                subscription.to_owned(),
                            ));
                        }
                        Some(subscription)
                    }
                    (None, Version::V1_1) => {
                        return Err(ProtocolError::MissingHeader("subscription"));
                    }
                    (None, _) => None,
                };
                self.subscriptions
                    .ack_id_for_message(subscription, message_id)
                    .ok_or_else(|| ProtocolError::UnknownAck(message_id.to_owned()))
            }
        }
    }

    /// Applies an ACK or NACK. A delivery settled meanwhile (by a cumulative ACK, or an
    /// UNSUBSCRIBE, between a transactional ACK and its COMMIT) is skipped: acknowledging
    /// twice is harmless.
    fn settle(&mut self, ack_id: u64, nack: bool, receipt: Option<ReceiptId>) {
        let Some(Acknowledged {
            subscription,
            message_ids,
        }) = self.subscriptions.settle(ack_id)
        else {
            if let Some(receipt) = receipt {
                self.queue_receipt(receipt);
            }
            return;
        };
        self.events.push_back(if nack {
            Event::Nack {
                subscription,
                message_ids,
                receipt,
            }
        } else {
            Event::Ack {
                subscription,
                message_ids,
                receipt,
            }
        });
    }

    fn on_begin(&mut self, frame: Frame, receipt: Option<ReceiptId>) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        self.transactions
            .begin(transaction, self.config.max_transactions)
            .map_err(|error| transaction_error(error, transaction))?;
        if let Some(receipt) = receipt {
            self.queue_receipt(receipt);
        }
        Ok(())
    }

    fn on_commit(&mut self, frame: Frame, receipt: Option<ReceiptId>) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        let held = self
            .transactions
            .end(transaction)
            .map_err(|error| transaction_error(error, transaction))?;
        for frame in held {
            match frame {
                Held::Send {
                    destination,
                    headers,
                    body,
                } => self.events.push_back(Event::Send {
                    destination,
                    headers,
                    body,
                    // Receipted when it joined the transaction.
                    receipt: None,
                }),
                Held::Ack { ack_id, nack } => self.settle(ack_id, nack, None),
            }
        }
        self.events.push_back(Event::Commit {
            transaction: transaction.to_owned(),
            receipt,
        });
        Ok(())
    }

    fn on_abort(&mut self, frame: Frame, receipt: Option<ReceiptId>) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        self.transactions
            .end(transaction)
            .map_err(|error| transaction_error(error, transaction))?;
        if let Some(receipt) = receipt {
            self.queue_receipt(receipt);
        }
        Ok(())
    }

    fn on_disconnect(&mut self, receipt: Option<ReceiptId>) {
        if self.config.defer_disconnect {
            self.disconnecting = Some(receipt.clone());
            self.events.push_back(Event::Disconnect { receipt });
            return;
        }
        if let Some(receipt) = receipt {
            self.queue_receipt(receipt);
        }
        self.close_with(CloseReason::Disconnect);
    }

    /// Accepts a frame into an open transaction; its receipt is owed now, so it is sent now.
    fn hold(
        &mut self,
        transaction: &str,
        frame: Held,
        receipt: Option<ReceiptId>,
    ) -> Result<(), ProtocolError> {
        self.transactions
            .hold(transaction, frame, self.config.max_frames_per_transaction)
            .map_err(|error| transaction_error(error, transaction))?;
        if let Some(receipt) = receipt {
            self.queue_receipt(receipt);
        }
        Ok(())
    }

    fn negotiated_version(&self) -> Version {
        // Frames other than CONNECT are only read once a version is negotiated; 1.2 is the
        // safe reading should that ever not hold.
        self.version.unwrap_or(Version::V1_2)
    }

    fn supported_versions(&self) -> String {
        let mut versions = self.config.versions.clone();
        versions.sort();
        versions.dedup();
        versions
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Sends the ERROR a protocol violation calls for, then closes.
    fn protocol_error(&mut self, error: ProtocolError, receipt: Option<&ReceiptId>) {
        let version_header = match &error {
            ProtocolError::UnsupportedVersion { supported } => Some(supported.clone()),
            _ => None,
        };
        self.queue_error(
            &error.to_string(),
            explanation(&error),
            receipt,
            version_header,
        );
        self.close_with(CloseReason::ProtocolError(error));
    }

    fn queue_error(
        &mut self,
        message: &str,
        body: &str,
        receipt: Option<&ReceiptId>,
        version_header: Option<String>,
    ) {
        let mut frame = Frame::new(Command::Error);
        if let Some(versions) = version_header {
            frame = frame.header("version", versions);
        }
        frame = frame.header("message", message);
        if let Some(ReceiptId(receipt)) = receipt {
            frame = frame.header("receipt-id", receipt.as_str());
        }
        frame = frame
            .header("content-type", "text/plain")
            .body(Bytes::copy_from_slice(body.as_bytes()));
        self.queue_frame(&frame);
        self.error_sent = Some(message.into());
    }

    fn queue_receipt(&mut self, ReceiptId(receipt): ReceiptId) {
        self.queue_frame(&Frame::new(Command::Receipt).header("receipt-id", receipt));
    }

    fn queue_frame(&mut self, frame: &Frame) {
        // Before negotiation (an ERROR for a bad CONNECT) 1.2's rules apply.
        let bytes = encode_to_bytes(frame, self.negotiated_version());
        self.queue(Transmit::Bytes(bytes));
    }

    fn queue(&mut self, transmit: Transmit) {
        self.last_sent = self.latest_now;
        self.transmits.push_back(transmit);
    }

    /// Ends the session once: emits [`Event::Closed`] and forgets subscriptions and open
    /// transactions (which aborts them). Already closing: nothing.
    fn close_with(&mut self, reason: CloseReason) {
        if self.is_over() {
            return;
        }
        self.subscriptions.clear();
        self.transactions.clear();
        self.connect_deadline = None;
        self.state = if self.transmits.is_empty() {
            State::Closed
        } else {
            State::Closing
        };
        self.events.push_back(Event::Closed(reason));
    }
}

/// The first value of a header the frame cannot do without.
fn required<'a>(frame: &'a Frame, name: &'static str) -> Result<&'a str, ProtocolError> {
    frame.get(name).ok_or(ProtocolError::MissingHeader(name))
}

fn transaction_error(error: TransactionError, transaction: &str) -> ProtocolError {
    match error {
        TransactionError::Duplicate => ProtocolError::DuplicateTransaction(transaction.to_owned()),
        TransactionError::Unknown => ProtocolError::UnknownTransaction(transaction.to_owned()),
        TransactionError::TooMany => ProtocolError::TooManyTransactions,
        TransactionError::TooLarge => ProtocolError::TransactionTooLarge,
    }
}

/// The body of the ERROR for `error`: what the client did wrong, in a sentence.
fn explanation(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::Malformed(_) => "The bytes received do not form a valid STOMP frame.",
        ProtocolError::NotConnected => "The first frame must be CONNECT or STOMP.",
        ProtocolError::AlreadyConnected => "CONNECT may only be sent once per connection.",
        ProtocolError::UnsupportedVersion { .. } => {
            "The client's accept-version header names no protocol version this server speaks."
        }
        ProtocolError::UnexpectedCommand { .. } => {
            "Clients may not send CONNECTED, MESSAGE, RECEIPT or ERROR frames."
        }
        ProtocolError::MissingHeader(_) => "The frame lacks a header the specification requires.",
        ProtocolError::InvalidHeader(_) => "A header has a value the specification does not allow.",
        ProtocolError::DuplicateSubscription(_) => {
            "Subscription ids must be unique within a connection."
        }
        ProtocolError::UnknownSubscription(_) => {
            "The frame names a subscription that is not active."
        }
        ProtocolError::TooManySubscriptions => "The connection has too many active subscriptions.",
        ProtocolError::UnknownAck(_) => "The frame acknowledges a message that is not pending.",
        ProtocolError::DuplicateTransaction(_) => "The transaction has already begun.",
        ProtocolError::UnknownTransaction(_) => "The frame names a transaction that is not open.",
        ProtocolError::TooManyTransactions => "The connection has too many open transactions.",
        ProtocolError::TransactionTooLarge => "The transaction holds too many frames.",
        ProtocolError::TooMuchBeforeConnected => {
            "The client sent too much data before the server answered its CONNECT."
        }
        ProtocolError::TooManyFrames { .. } => {
            "The client sent frames faster than this server accepts from one connection."
        }
    }
}

/// Gives a drained queue's buffer back to the allocator. Most connections are idle most of the
/// time: a queue that keeps the capacity of its last burst would cost every idle connection
/// hundreds of bytes, while reallocating costs one allocation per burst.
fn release_if_drained<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
}
