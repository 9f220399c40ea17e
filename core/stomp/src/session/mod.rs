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
//! Subscriptions: each has one [`SubscriptionKey`] from its SUBSCRIBE to its UNSUBSCRIBE (or
//! the end of the session), never reused. [`Event::Subscribe`] hands it to the application,
//! which answers with [`Session::accept_subscription`] or [`Session::refuse_subscription`], as
//! it answers a CONNECT; it then delivers by it ([`Session::deliver`], one hash lookup) and
//! [`Transmit::Message`] names it, so a delivery queued for a subscription that has ended
//! finds nothing, whatever id a later subscription took.
//!
//! Acknowledgements: 1.2 clients ACK by the `ack` header of the MESSAGE (a session-unique
//! number the engine makes up), 1.1 clients by `message-id` and `subscription`, 1.0 clients by
//! `message-id` alone. In `client` mode ACK and NACK are cumulative; in `client-individual`
//! mode they settle one message.
//!
//! Closing: see [`Session`] for when [`State::Closing`] becomes [`State::Closed`].
mod config;
mod errors;
mod events;
mod handlers;
mod subscriptions;
#[cfg(test)]
mod tests;
mod timers;
mod transactions;

pub use config::{HeartBeat, MIN_HEART_BEAT_GRACE, SessionConfig};
pub use errors::{DeliverError, ProtocolError};
pub use events::{
    AckMode, CloseReason, ConnectRequest, Event, ReceiptId, SubscriptionKey, Transmit,
};

use crate::encode::{SharedMessage, encode_message_head, encode_to_bytes};
use crate::frame::{Command, Frame, Headers, Version};
use crate::parse::{Item, Parser};
use crate::rate::TokenBucket;
use bytes::{Bytes, BytesMut};
use handlers::{Connected, Flow};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use subscriptions::TrackError;
use timers::{HEART_BEAT, Negotiated, Timer};

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
    /// Where the session is, with what only that phase knows.
    phase: Phase,
    parser: Parser,
    /// The `message` of the ERROR queued, if one was: nothing more goes to the peer (no late
    /// RECEIPT or MESSAGE).
    error_sent: Option<Box<str>>,
    /// When the peer last showed life (bytes or [`Session::handle_liveness`]).
    last_received: Instant,
    /// Client frames allowed now: a burst of `max_frames_per_second`, refilled over time.
    frame_budget: TokenBucket,
    out: Output,
}

/// The session's phases, each with the data that is only valid in it (as rustls does): the
/// version exists from CONNECT on, the heart-beats, subscriptions and transactions only
/// while connected.
#[derive(Debug)]
enum Phase {
    /// Until the application accepts, the transport must bring a CONNECT and get it decided.
    AwaitingConnect {
        deadline: Option<Instant>,
    },
    Authenticating(Authenticating),
    Connected(Connected),
    /// What was negotiated, if anything: what is still queued is written by its rules.
    Closing(Option<Version>),
    Closed(Option<Version>),
}

impl Phase {
    fn version(&self) -> Option<Version> {
        match self {
            Phase::AwaitingConnect { .. } => None,
            Phase::Authenticating(authenticating) => Some(authenticating.version),
            Phase::Connected(connected) => Some(connected.version),
            Phase::Closing(version) | Phase::Closed(version) => *version,
        }
    }
}

/// A CONNECT waiting for the application's answer.
#[derive(Debug)]
struct Authenticating {
    /// Negotiated from `accept-version`.
    version: Version,
    /// The client's `heart-beat` wish, kept until [`Session::accept`].
    client_heart_beat: HeartBeat,
    /// The CONNECT deadline still runs.
    deadline: Option<Instant>,
    /// Bytes fed meanwhile, bounded by the pipelining allowance. Counted here rather than
    /// asked of the parser, which may already have split them into frames it holds for us.
    fed: usize,
}

/// What the session has for the application and the transport, and when it last queued
/// something for the peer.
#[derive(Debug)]
struct Output {
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    /// Subscriptions ended by UNSUBSCRIBE, for [`Session::poll_ended_subscription`]: every
    /// MESSAGE they will ever have is already in `transmits`.
    ended: Vec<SubscriptionKey>,
    /// When something was last queued for the peer, as far as we know (see `latest_now`).
    last_sent: Instant,
    /// The latest `now` any call gave us. Frames read in [`Session::poll_event`], which takes
    /// no `now`, are answered at it: it is never later than the real time, so heart-beats
    /// may go out a little early but never late.
    latest_now: Instant,
}

impl Output {
    fn queue(&mut self, transmit: Transmit) {
        self.last_sent = self.latest_now;
        self.transmits.push_back(transmit);
    }

    fn frame(&mut self, frame: &Frame, version: Version) {
        self.queue(Transmit::Bytes(encode_to_bytes(frame, version)));
    }

    fn receipt(&mut self, ReceiptId(receipt): ReceiptId, version: Version) {
        self.frame(
            &Frame::new(Command::Receipt).header("receipt-id", receipt),
            version,
        );
    }
}

/// While the application decides on a CONNECT the engine reads no further frames, but a
/// client may pipeline SUBSCRIBEs and SENDs behind its CONNECT; it may buffer this many
/// maximum-size frames' worth of bytes before it is cut off.
const PIPELINED_FRAMES_BEFORE_CONNECTED: usize = 2;

impl Session {
    /// A new session for a transport that just opened at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Session {
            parser: Parser::new(config.limits),
            phase: Phase::AwaitingConnect {
                deadline: now.checked_add(config.connect_timeout),
            },
            error_sent: None,
            last_received: now,
            frame_budget: TokenBucket::new(config.max_frames_per_second),
            config,
            out: Output {
                events: VecDeque::new(),
                transmits: VecDeque::new(),
                ended: Vec::new(),
                last_sent: now,
                latest_now: now,
            },
        }
    }

    // ---- getters ----

    /// Where the session is.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::AwaitingConnect { .. } => State::AwaitingConnect,
            Phase::Authenticating(_) => State::Authenticating,
            Phase::Connected(_) => State::Connected,
            Phase::Closing(_) => State::Closing,
            Phase::Closed(_) => State::Closed,
        }
    }

    /// The negotiated version, once CONNECT was read.
    pub fn version(&self) -> Option<Version> {
        self.phase.version()
    }

    /// The negotiated (send, receive) heart-beat intervals while connected; zero means off.
    pub fn heart_beat(&self) -> Option<(Duration, Duration)> {
        let Phase::Connected(connected) = &self.phase else {
            return None;
        };
        let Negotiated {
            send_every,
            receive_every,
        } = connected.heart_beat;
        Some((send_every, receive_every))
    }

    /// True once the session is over and the transport should be closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    /// The ack mode of subscription `key`, once the application accepted it (and until it
    /// ends).
    pub fn subscription(&self, key: SubscriptionKey) -> Option<AckMode> {
        let Phase::Connected(connected) = &self.phase else {
            return None;
        };
        connected
            .subscriptions
            .by_key(key)
            .filter(|s| s.accepted)
            .map(|s| s.ack)
    }

    /// The number of subscriptions the session holds: accepted ones and those awaiting the
    /// application's answer (both count against
    /// [`SessionConfig::max_subscriptions`](crate::SessionConfig::max_subscriptions)).
    pub fn subscription_count(&self) -> usize {
        match &self.phase {
            Phase::Connected(connected) => connected.subscriptions.len(),
            _ => 0,
        }
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
        if let Phase::Authenticating(authenticating) = &mut self.phase {
            authenticating.fed = authenticating.fed.saturating_add(bytes.len());
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
                    self.out
                        .queue(Transmit::Bytes(Bytes::from_static(HEART_BEAT)));
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
        self.out.transmits.clear();
        self.close_with(CloseReason::TransportClosed);
        self.phase = Phase::Closed(self.phase.version());
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
        let Phase::Authenticating(Authenticating {
            version,
            client_heart_beat,
            ..
        }) = self.phase
        else {
            return;
        };
        self.observe(now);
        // Heart-beats arrived with 1.1.
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
        self.out.frame(&connected, version);
        self.phase = Phase::Connected(Connected {
            version,
            heart_beat: Negotiated::new(advertised, client_heart_beat),
            subscriptions: Default::default(),
            transactions: Default::default(),
            disconnecting: None,
        });
        // The client's receive window starts now: it may have waited for us.
        self.last_received = now;
        self.read_frames();
    }

    /// Refuses the pending CONNECT: queues ERROR with `message` (and `body` as text), then closes.
    /// Ignored unless a CONNECT is pending.
    pub fn refuse(&mut self, message: &str, body: &str) {
        if !matches!(self.phase, Phase::Authenticating(_)) {
            return;
        }
        self.queue_error(message, body, None, None);
        self.close_with(CloseReason::Application);
    }

    /// Accepts the SUBSCRIBE of [`Event::Subscribe`] `key`: MESSAGEs may be delivered on it
    /// from now on. Sends nothing: the RECEIPT, if one was asked for, is the application's
    /// to send ([`Session::receipt`]), after what must go out first on the subscription.
    /// Returns false (and does nothing) unless `key` awaits an answer: it was answered
    /// already, the client unsubscribed meanwhile, or the session is not connected.
    pub fn accept_subscription(&mut self, key: SubscriptionKey) -> bool {
        let Phase::Connected(connected) = &mut self.phase else {
            return false;
        };
        connected.subscriptions.accept(key)
    }

    /// Refuses the SUBSCRIBE of [`Event::Subscribe`] `key` (e.g. an unknown room): the
    /// engine forgets it, so its id is free again and it no longer counts against the limit.
    /// No frame is sent; the application says why in its own way. Returns false (and does
    /// nothing) unless `key` awaits an answer: an accepted subscription ends only by
    /// UNSUBSCRIBE or with the session.
    pub fn refuse_subscription(&mut self, key: SubscriptionKey) -> bool {
        let Phase::Connected(connected) = &mut self.phase else {
            return false;
        };
        connected.subscriptions.refuse(key)
    }

    /// Queues a MESSAGE on the accepted subscription `key` at `now`: one hash lookup, however
    /// many subscriptions the session has. For `client` and `client-individual` subscriptions
    /// the message is tracked until acknowledged (1.2: an `ack` header is added). A key that
    /// ended (UNSUBSCRIBE, refused) fails with [`DeliverError::UnknownSubscription`], even
    /// when the client reused its id for a new subscription: that one has another key.
    pub fn deliver(
        &mut self,
        key: SubscriptionKey,
        message: &SharedMessage,
        now: Instant,
    ) -> Result<(), DeliverError> {
        let Phase::Connected(connected) = &mut self.phase else {
            return Err(DeliverError::NotConnected);
        };
        let version = connected.version;
        let (id, ack_id) = connected
            .subscriptions
            .track(
                key,
                message.message_id(),
                self.config.max_unacked_per_subscription,
            )
            .map_err(|error| match error {
                TrackError::UnknownSubscription => DeliverError::UnknownSubscription(key),
                TrackError::TooManyPending => DeliverError::TooManyUnacked(key),
            })?;
        // Only 1.2 has the `ack` header; older clients ACK by message-id.
        let ack_header = ack_id.filter(|_| version == Version::V1_2);
        let mut head = BytesMut::with_capacity(48 + id.len());
        encode_message_head(id, ack_header, version, &mut head);
        self.observe(now);
        self.out.queue(Transmit::Message {
            subscription: key,
            head: head.freeze(),
            tail: message.tail(version).clone(),
        });
        Ok(())
    }

    /// Queues the RECEIPT owed for `receipt` at `now`. Accepted while connected and while
    /// closing (so receipts for frames that came before a DISCONNECT still go out); ignored
    /// otherwise.
    pub fn receipt(&mut self, receipt: ReceiptId, now: Instant) {
        // Nothing follows an ERROR: the session is over for the peer.
        if self.error_sent.is_some() {
            return;
        }
        let version = match self.phase {
            Phase::Connected(Connected { version, .. }) | Phase::Closing(Some(version)) => version,
            _ => return,
        };
        self.observe(now);
        self.out.receipt(receipt, version);
    }

    /// Queues an ERROR (with `receipt-id` when given) at `now` and closes: for failures the
    /// application decides are fatal (e.g. a slow consumer). Ignored once closing.
    pub fn error(&mut self, message: &str, body: &str, receipt: Option<ReceiptId>, now: Instant) {
        if self.is_over() {
            return;
        }
        self.observe(now);
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
        let Phase::Connected(connected) = &mut self.phase else {
            return;
        };
        let Some(receipt) = connected.disconnecting.take() else {
            return;
        };
        if let Some(receipt) = receipt {
            self.out.receipt(receipt, connected.version);
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
        if self.out.events.is_empty() {
            // The next frame is read only now, after the application has acted on the one
            // before (accepted or refused a SUBSCRIBE, say): the same bytes get the same
            // answers however the transport chunked them.
            self.read_frames();
        }
        let event = self.out.events.pop_front();
        if event.is_none() {
            release_if_drained(&mut self.out.events);
        }
        event
    }

    /// The next buffer to write to the transport.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.out.transmits.pop_front();
        if let Phase::Closing(version) = self.phase
            && self.out.transmits.is_empty()
        {
            self.phase = Phase::Closed(version);
        }
        if transmit.is_none() {
            release_if_drained(&mut self.out.transmits);
        }
        transmit
    }

    /// A subscription the client ended with UNSUBSCRIBE since the last call, oldest first.
    /// Every MESSAGE it will ever have was queued before it was ended, so once the transmits
    /// queued so far are written, nothing more of it follows: a transport that gives each
    /// subscription a stream of its own (WebTransport's `per-subscription` mode) finishes
    /// that stream then. Subscriptions that end with the session are not listed (the
    /// transport closes).
    #[must_use]
    pub fn poll_ended_subscription(&mut self) -> Option<SubscriptionKey> {
        if self.out.ended.is_empty() {
            // Keep nothing on an idle session.
            self.out.ended = Vec::new();
            return None;
        }
        Some(self.out.ended.remove(0))
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
        matches!(self.phase, Phase::Closing(_) | Phase::Closed(_))
    }

    /// Pulls frames from the parser while the phase lets the session act on them.
    /// Reads frames until one yields an event for the application (or no whole frame is
    /// left): frames are handed over one at a time, see [`Session::poll_event`].
    fn read_frames(&mut self) {
        while self.out.events.is_empty() {
            match &self.phase {
                Phase::AwaitingConnect { .. } => {}
                // After DISCONNECT a client sends nothing; whatever it did send is not read.
                Phase::Connected(connected) if connected.disconnecting.is_none() => {}
                Phase::Authenticating(authenticating) => {
                    let allowance = self
                        .config
                        .limits
                        .max_frame_bytes
                        .saturating_mul(PIPELINED_FRAMES_BEFORE_CONNECTED);
                    if authenticating.fed > allowance {
                        self.protocol_error(ProtocolError::TooMuchBeforeConnected, None);
                    }
                    return;
                }
                Phase::Connected(_) | Phase::Closing(_) | Phase::Closed(_) => return,
            }
            match self.parser.next_item() {
                Ok(None) => return,
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(frame))) => {
                    // Shares the frame's buffer: no copy per frame.
                    let receipt = frame.headers.get_shared("receipt").map(ReceiptId);
                    if self.frame_budget.try_take(self.out.latest_now) {
                        self.handle_frame(frame, receipt);
                    } else {
                        let per_second = self.config.max_frames_per_second;
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

    /// Dispatches a client frame by phase: CONNECT first, then the connected session's frames.
    fn handle_frame(&mut self, frame: Frame, receipt: Option<ReceiptId>) {
        let result = match (&mut self.phase, frame.command) {
            (
                _,
                command @ (Command::Connected
                | Command::Message
                | Command::Receipt
                | Command::Error),
            ) => Err(ProtocolError::UnexpectedCommand {
                command: command.as_str(),
            }),
            (Phase::AwaitingConnect { deadline }, Command::Connect | Command::Stomp) => {
                let deadline = *deadline;
                self.on_connect(frame, deadline).map(|()| Flow::Continue)
            }
            (Phase::AwaitingConnect { .. }, _) => Err(ProtocolError::NotConnected),
            (Phase::Connected(connected), _) => {
                connected.on_frame(frame, receipt.clone(), &self.config, &mut self.out)
            }
            // Frames are read only while awaiting CONNECT or connected (see `read_frames`).
            (Phase::Authenticating(_) | Phase::Closing(_) | Phase::Closed(_), _) => {
                Ok(Flow::Continue)
            }
        };
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close(reason)) => self.close_with(reason),
            Err(error) => self.protocol_error(error, receipt.as_ref()),
        }
    }

    /// Sends the ERROR a protocol violation calls for, then closes.
    fn protocol_error(&mut self, error: ProtocolError, receipt: Option<&ReceiptId>) {
        let version_header = match &error {
            ProtocolError::UnsupportedVersion { supported } => Some(supported.clone()),
            _ => None,
        };
        self.queue_error(
            &error.to_string(),
            error.explanation(),
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
            frame = frame.header("receipt-id", receipt);
        }
        frame = frame
            .header("content-type", "text/plain")
            .body(Bytes::copy_from_slice(body.as_bytes()));
        // Before negotiation (an ERROR for a bad CONNECT) 1.2's rules apply.
        let version = self.phase.version().unwrap_or(Version::V1_2);
        self.out.frame(&frame, version);
        self.error_sent = Some(message.into());
    }

    /// Ends the session once: emits [`Event::Closed`] and forgets subscriptions and open
    /// transactions (which aborts them). Already closing: nothing.
    fn close_with(&mut self, reason: CloseReason) {
        if self.is_over() {
            return;
        }
        let version = self.phase.version();
        self.phase = if self.out.transmits.is_empty() {
            Phase::Closed(version)
        } else {
            Phase::Closing(version)
        };
        self.out.events.push_back(Event::Closed(reason));
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
