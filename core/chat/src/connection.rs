//! One STOMP connection's view of the chat: maps the engine's [`Event`]s to the contract's
//! destinations and answers through the [`Session`].
//!
//! Authentication: CONNECT carries `Authorization: Bearer <token>`. Some STOMP clients cannot
//! set custom CONNECT headers, so the bare token (or `Bearer <token>`) is also accepted in
//! `passcode`, then in `login`; the first of the three that is present is the one checked.
//!
//! Errors the contract sends to `/user/queue/errors` go there only if the client subscribed
//! to it (like Spring's `@SendToUser`), and never end the session. An error answers a frame
//! instead of its RECEIPT: a RECEIPT always means the frame's effect happened. A SEND is
//! never answered silently: when the client has no `/user/queue/errors` subscription, a SEND
//! that failed gets an ERROR frame (which ends the session), with the SEND's `receipt-id`.
//!
//! A session lives as long as its token: CONNECT learns the token's `exp`, and at that
//! deadline ([`ChatConnection::poll_timeout`], [`ChatConnection::handle_timeout`]) the session
//! ends with `ERROR message:EXPIRED_TOKEN`, unless the client sent a fresh token for the same
//! identity to `/pub/token` before: that moves the deadline to the new token's `exp`.
//!
//! Nothing here waits on I/O: every method is synchronous. SENDs are validated and handed to
//! their room's writer (the [`Appender`](crate::ports::Appender)); their outcomes come back
//! through the connection's queue ([`ChatConnection::on_outcome`]) and are answered in the
//! order the SENDs came. What other frames need from the store, presence or broker is a
//! [`Job`], plain data ([`ChatConnection::poll_job`]), that the driver runs while the
//! connection goes on reading and delivering; what it read comes back as a [`JobDone`]
//! ([`ChatConnection::on_job_done`]), from which the connection makes its answers. Live
//! messages for a subscription whose start (replay, first count) is still being read wait in
//! the connection, so they never overtake it.

use crate::destination::{self, SendTarget, SubscribeTarget};
use crate::envelope::Envelope;
use crate::hub::{self, ConnectionId, JSON};
use crate::ip::ip_prefix;
use crate::jobs::{Job, JobDone, Since};
use crate::model::{Identity, MessageKey, NewMessage, RoomId, Seq};
use crate::ports::{ConnectionSink, Delivery, PendingSend, SendOutcome, SessionKey};
use crate::service::{BadRequest, ChatError, ChatService, MAX_TOKEN_BYTES};
use crate::validation;
use bytes::Bytes;
use rtchat_stomp::{
    ConnectRequest, DeliverError, Event, Headers, ReceiptId, Session, SharedMessage,
    SubscriptionKey, TokenBucket,
};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The SUBSCRIBE header asking for a replay of what was missed after a message id.
pub const SINCE_ID_HEADER: &str = "since-id";
/// The SUBSCRIBE header asking for a replay of what was missed after a seq.
pub const SINCE_SEQ_HEADER: &str = "since-seq";
/// The SEND header naming a message for idempotent retries.
pub const MESSAGE_KEY_HEADER: &str = "message-key";
/// The header of an error on `/user/queue/errors` naming the failed frame's `receipt`.
pub const RECEIPT_ID_HEADER: &str = "receipt-id";
/// The SUBSCRIBE header giving the size of the `/pub/history/{room}` reply.
pub const LIMIT_HEADER: &str = "limit";

/// Live messages held at most per subscription while its start is being read; past it the
/// connection counts as a slow consumer.
pub const MAX_HELD_WHILE_STARTING: usize = 1024;

/// Jobs a connection may have waiting before the driver stops reading from its peer.
pub const MAX_QUEUED_JOBS: usize = 16;

/// The chat side of one STOMP connection. The driver calls [`ChatConnection::handle`] for every
/// event the session yields, then [`ChatConnection::submit_sends`]; sleeps until
/// [`ChatConnection::poll_timeout`] (beside the session's own) and then calls
/// [`ChatConnection::handle_timeout`]; runs the jobs
/// [`ChatConnection::poll_job`] gives, one at a time, handing each result to
/// [`ChatConnection::on_job_done`]; calls [`ChatConnection::deliver`] and
/// [`ChatConnection::on_outcome`] for what its queue brings; and calls
/// [`ChatConnection::closed`] when the connection is over (whatever the reason), running the
/// job it gives.
pub struct ChatConnection {
    service: ChatService,
    client: IpAddr,
    sink: Arc<dyn ConnectionSink>,
    id: ConnectionId,
    key: SessionKey,
    /// Set by an accepted CONNECT; SEND and SUBSCRIBE only come after it.
    identity: Option<Identity>,
    /// The `exp` of the session's token (seconds since the Unix epoch): a refresh must bring
    /// a later one.
    token_expires_at: Option<u64>,
    /// When the session's token expires, as the caller's clock counts: the session ends then.
    /// `None` before CONNECT, once it fired, or for an `exp` too far off to count to.
    token_deadline: Option<Instant>,
    /// Subscriptions by the key the session gave them (the hub knows them by the same key):
    /// registered when their SUBSCRIBE is handled, until UNSUBSCRIBE, refusal or the end.
    subscriptions: HashMap<SubscriptionKey, Subscription>,
    /// The `/user/queue/errors` subscription, if any.
    error_queue: Option<SubscriptionKey>,
    sends: TokenBucket,
    subscribes: TokenBucket,
    /// The answers still owed to frames other than SENDs, in the order the frames came, each
    /// with the job it waits for, if any: the front one goes first.
    waiting: VecDeque<Step>,
    /// The driver is running the job of the front step (taken from it; the step stays, so
    /// the connection carries nothing more while a job runs).
    running: bool,
    /// SENDs handed to writers (or refused) and not yet answered, in the order they came.
    in_flight: VecDeque<InFlight>,
    /// Validated SENDs of the current read, handed to the writers by
    /// [`ChatConnection::submit_sends`].
    to_submit: Vec<PendingSend>,
    /// Number of the next SEND.
    next_ticket: u64,
    /// Presence was told about this session, so it must be told when it ends.
    announced: bool,
    /// A DISCONNECT waits for the answers of the frames before it.
    disconnecting: bool,
    closed: bool,
}

/// A frame's answer waiting for its turn.
struct Step {
    /// What must be read or announced first; `None` when the answer only keeps its place.
    job: Option<Job>,
    then: Then,
}

/// How a [`Step`] is answered once its job (if any) is done.
enum Then {
    /// Nothing to answer (announcements).
    Nothing,
    /// The RECEIPT owed once the job's work was done (e.g. after leaving a room).
    Receipt(Option<ReceiptId>),
    /// A SUBSCRIBE: what goes out first on it, or why it was refused. The session accepts
    /// or refuses it when this is answered.
    Subscribed {
        key: SubscriptionKey,
        receipt: Option<ReceiptId>,
        start: Start,
    },
}

/// What a SUBSCRIBE's start is made of.
enum Start {
    /// A room channel: the replay, from a [`JobDone::ChannelStarted`].
    Channel,
    /// `/sub/channel/entry`: the connection count, from a [`JobDone::Count`].
    Entry,
    /// `/sub/presence/{room}`: the room's count, from a [`JobDone::Count`].
    Presence(RoomId),
    /// `/pub/history/{room}`: one reply, from a [`JobDone::History`].
    History(RoomId),
    /// Nothing to read (`/user/queue/errors`): accepted at once.
    Nothing,
    /// Refused before anything was read.
    Refused(ChatError),
}

/// A subscription's start, ready to go out.
#[derive(Default)]
struct Ready {
    /// For room channels: the store's head when it started; live messages up to it are
    /// dropped (the client has them, or did not ask for them).
    has_up_to: Option<Seq>,
    /// MESSAGEs that go out on it before anything live: a replay, a count, a history reply.
    messages: Vec<SharedMessage>,
}

/// A SEND (or a COMMIT of SENDs) waiting for its answer.
struct InFlight {
    /// The SEND's number; 0 for a COMMIT, which has no outcome of its own.
    ticket: u64,
    receipt: Option<ReceiptId>,
    /// Set when the outcome came; answered once every earlier entry is answered.
    result: Option<Answer>,
}

/// How an [`InFlight`] entry is answered.
enum Answer {
    /// The RECEIPT, if one was asked for.
    Done,
    /// The error (to the error queue, or as an ERROR frame).
    Failed(ChatError),
}

/// What the connection remembers of one subscription (its key is the map's).
struct Subscription {
    target: SubscribeTarget,
    /// For room channels: the store's head when the subscription started. The client has
    /// everything up to it that it asked for (the replay, or nothing before it); live
    /// messages up to it are dropped, and the hub delivers the rest in seq order.
    has_up_to: Option<Seq>,
    /// While the subscription's start is being read: the live messages that came meanwhile.
    starting: Option<Vec<Delivery>>,
}

/// The body of a SEND to `/pub/chat`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatSend {
    room_id: String,
    message: String,
}

impl ChatConnection {
    pub(crate) fn new(
        service: ChatService,
        client: IpAddr,
        sink: Arc<dyn ConnectionSink>,
        id: ConnectionId,
        key: SessionKey,
    ) -> Self {
        let sends = TokenBucket::new(service.config().max_sends_per_second);
        let subscribes = TokenBucket::new(service.config().max_subscribes_per_second);
        ChatConnection {
            service,
            client,
            sink,
            id,
            key,
            identity: None,
            token_expires_at: None,
            token_deadline: None,
            subscriptions: HashMap::new(),
            error_queue: None,
            sends,
            subscribes,
            waiting: VecDeque::new(),
            running: false,
            in_flight: VecDeque::new(),
            to_submit: Vec::new(),
            next_ticket: 1,
            announced: false,
            disconnecting: false,
            closed: false,
        }
    }

    /// Completes a waiting DISCONNECT once every frame before it is answered: its RECEIPT
    /// then means they all took effect.
    fn finish_disconnect(&mut self, session: &mut Session) {
        if self.disconnecting && !self.has_sends_in_flight() && !self.has_jobs() {
            self.disconnecting = false;
            session.disconnect();
        }
    }

    /// Hands the SENDs of the events handled since the last call to their rooms' writers.
    /// The driver calls it once it has handled every event of a read, so the SENDs of one
    /// read are stored together. SENDs wait while jobs of earlier frames are pending: a
    /// SUBSCRIBE then a SEND must see the subscription start before the message is stored
    /// (else the subscription would start after it); they go when the last job is done.
    pub fn submit_sends(&mut self) {
        if self.has_jobs() {
            return;
        }
        self.hand_over_sends();
    }

    /// Whether a job is being run or an answer waits its turn.
    fn has_jobs(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn hand_over_sends(&mut self) {
        if !self.to_submit.is_empty() {
            let sends = std::mem::take(&mut self.to_submit);
            self.service.ports().appender.submit(sends);
        }
    }

    /// Whether the driver should read more from the peer: false while the connection has
    /// as many SENDs in flight, or jobs waiting, as it may (its peer then waits, and memory
    /// stays bounded).
    pub fn wants_input(&self) -> bool {
        self.in_flight.len() < self.service.config().max_sends_in_flight.max(1)
            // The step whose job runs does not count: up to this many wait behind it.
            && self.waiting.len().saturating_sub(usize::from(self.running)) < MAX_QUEUED_JOBS
    }

    /// Whether the connection is ready for the session's next event. False while a job is
    /// queued or under way: the frames after it wait, so their answers (or the engine's
    /// ERROR for one of them) follow the job's, and the same bytes get the same answers
    /// however they were chunked and however long the job took.
    pub fn wants_events(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether SENDs of this connection wait for their answers (the driver drains them before
    /// a shutdown closes the connection).
    pub fn has_sends_in_flight(&self) -> bool {
        self.in_flight.iter().any(|waiting| waiting.ticket != 0) || !self.to_submit.is_empty()
    }

    /// Whether the connection is over for the chat (what it leaves behind is the job
    /// [`ChatConnection::closed`] gives).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next job to run, in the order the frames came; `None` while one is being run. Run
    /// one at a time, and hand each result to [`ChatConnection::on_job_done`] before asking
    /// for the next.
    pub fn poll_job(&mut self) -> Option<Job> {
        if self.closed || self.running {
            return None;
        }
        // Answers that need no job were given as soon as their turn came, so the front step,
        // if any, has one.
        let job = self.waiting.front_mut()?.job.take()?;
        self.running = true;
        Some(job)
    }

    /// The result of the job [`ChatConnection::poll_job`] gave last. Returns false when the
    /// session refused what it had to send as a slow consumer; the driver then closes.
    pub fn on_job_done(&mut self, done: JobDone, session: &mut Session, now: Instant) -> bool {
        // Not running: the connection closed meanwhile, and nothing waits for it any more.
        if !std::mem::take(&mut self.running) {
            return true;
        }
        let Some(step) = self.waiting.pop_front() else {
            return true;
        };
        let delivered =
            self.answer(step.then, Some(done), session, now) && self.answer_ready(session, now);
        // SENDs that waited for this job (and every job before them) may go now.
        self.submit_sends();
        self.finish_disconnect(session);
        delivered
    }

    /// Queues a frame's answer behind those before it; it goes at once if its turn has come
    /// and it needs no job.
    fn push(&mut self, job: Option<Job>, then: Then, session: &mut Session, now: Instant) {
        self.waiting.push_back(Step { job, then });
        // A slow consumer already has its ERROR; the driver sees the session close.
        self.answer_ready(session, now);
    }

    /// Answers the steps at the front that need no job, while no job is being run. Returns
    /// false when the session refused a message as a slow consumer.
    fn answer_ready(&mut self, session: &mut Session, now: Instant) -> bool {
        while !self.running && self.waiting.front().is_some_and(|s| s.job.is_none()) {
            let Some(step) = self.waiting.pop_front() else {
                break;
            };
            if !self.answer(step.then, None, session, now) {
                return false;
            }
        }
        if self.waiting.is_empty() {
            // An idle connection keeps no queue (four empty steps are some 570 bytes); a busy
            // one pays one allocation per batch of frames.
            self.waiting = VecDeque::new();
        }
        true
    }

    /// Answers one step with what its job (if any) found.
    fn answer(
        &mut self,
        then: Then,
        done: Option<JobDone>,
        session: &mut Session,
        now: Instant,
    ) -> bool {
        match then {
            Then::Nothing => true,
            Then::Receipt(receipt) => {
                send_receipt(session, receipt, now);
                true
            }
            Then::Subscribed {
                key,
                receipt,
                start,
            } => {
                let result = self.ready(start, done);
                self.on_subscribed(key, receipt, result, session, now)
            }
        }
    }

    /// What goes out first on a subscription, made from what its job read.
    fn ready(&self, start: Start, done: Option<JobDone>) -> Result<Ready, ChatError> {
        let hub = self.service.hub();
        match (start, done) {
            (Start::Refused(error), _) => Err(error),
            (Start::Nothing, _) => Ok(Ready::default()),
            (Start::Channel, Some(JobDone::ChannelStarted(started))) => {
                let started = started?;
                Ok(Ready {
                    has_up_to: Some(started.head),
                    messages: started
                        .missed
                        .iter()
                        .filter(|message| message.seq <= started.head)
                        .map(|message| hub.encode_chat(message))
                        .collect(),
                })
            }
            (Start::Entry, Some(JobDone::Count(total))) => Ok(Ready {
                has_up_to: None,
                messages: vec![hub.entry_message(total?)],
            }),
            (Start::Presence(room), Some(JobDone::Count(count))) => Ok(Ready {
                has_up_to: None,
                messages: vec![hub.presence_message(&room, count?)],
            }),
            (Start::History(room), Some(JobDone::History(messages))) => Ok(Ready {
                has_up_to: None,
                messages: vec![SharedMessage::new(
                    &destination::history(&room),
                    &hub.next_message_id("h"),
                    Some(JSON),
                    &hub.epoch_headers(),
                    hub::to_json(&messages?),
                )],
            }),
            // A result of another kind than the job's (a driver bug): the client is told the
            // subscription could not start, as for a backend failure.
            (_, done) => {
                debug_assert!(false, "job result {done:?} does not answer its job");
                tracing::error!(?done, "a job result does not answer its job");
                Err(ChatError::Unavailable)
            }
        }
    }

    /// A SUBSCRIBE's start was read: the session accepts it, and its start goes out, then
    /// what came live meanwhile, then the RECEIPT; or the session refuses it and it leaves
    /// nothing behind.
    fn on_subscribed(
        &mut self,
        key: SubscriptionKey,
        receipt: Option<ReceiptId>,
        result: Result<Ready, ChatError>,
        session: &mut Session,
        now: Instant,
    ) -> bool {
        let ready = match result {
            Ok(ready) => ready,
            Err(error) => {
                // A refused SUBSCRIBE leaves nothing behind: the id is free again. (One
                // refused before it was registered was refused to the session when it came.)
                if self.forget(key).is_some() {
                    session.refuse_subscription(key);
                }
                self.send_error(session, &error, now);
                return true;
            }
        };
        let Some(subscription) = self.subscriptions.get_mut(&key) else {
            // Unsubscribed while its start was read: nothing to send on it.
            send_receipt(session, receipt, now);
            return true;
        };
        // False when the session already forgot it (an UNSUBSCRIBE this connection has not
        // handled yet, or the end): what follows then finds no subscription and is dropped.
        session.accept_subscription(key);
        subscription.has_up_to = ready.has_up_to;
        let held = subscription.starting.take().unwrap_or_default();
        for message in &ready.messages {
            if !put_on_wire(session, key, message, now) {
                return false;
            }
        }
        for delivery in held {
            if !self.deliver(delivery, session, now) {
                return false;
            }
        }
        send_receipt(session, receipt, now);
        true
    }

    /// The outcome of one of this connection's SENDs: answered (RECEIPT, or the error) as
    /// soon as every earlier SEND is answered.
    pub fn on_outcome(&mut self, outcome: SendOutcome, session: &mut Session, now: Instant) {
        if let Some(waiting) = self
            .in_flight
            .iter_mut()
            .find(|waiting| waiting.ticket == outcome.ticket && waiting.ticket != 0)
        {
            waiting.result = Some(match outcome.result {
                Ok(_) => Answer::Done,
                Err(error) => Answer::Failed(error),
            });
        }
        self.answer_sends(session, now);
    }

    /// Answers the SENDs at the front whose outcome is known.
    fn answer_sends(&mut self, session: &mut Session, now: Instant) {
        while self.in_flight.front().is_some_and(|w| w.result.is_some()) {
            let Some(InFlight {
                receipt,
                result: Some(result),
                ..
            }) = self.in_flight.pop_front()
            else {
                break;
            };
            match result {
                // The RECEIPT goes only now that the message is stored.
                Answer::Done => send_receipt(session, receipt, now),
                Answer::Failed(error) => {
                    self.service.hub().metrics().send_refused(&error);
                    self.send_failed(session, &error, receipt, now);
                }
            }
        }
        self.finish_disconnect(session);
    }

    /// This connection's id in the node's [`crate::Hub`].
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// This session's key, unique across nodes (also the `session` header of CONNECTED).
    pub fn session_key(&self) -> &SessionKey {
        &self.key
    }

    /// Who is connected, once CONNECT was accepted.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The peer's address.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// Answers one session event (CONNECT authentication, SEND routing, SUBSCRIBE, ...). What
    /// needs the store, presence or the broker is queued as a job (see
    /// [`ChatConnection::poll_job`]); answers behind it wait for it.
    pub fn handle(&mut self, event: Event, session: &mut Session, now: Instant) {
        if self.closed {
            return;
        }
        // A frame read after the deadline (the driver had not woken for it yet) meets the
        // expired session, whatever the driver's timing.
        if !matches!(event, Event::Closed(_)) && self.handle_timeout(now, session) {
            return;
        }
        match event {
            Event::Connect(request) => self.on_connect(&request, session, now),
            Event::Send {
                destination,
                headers,
                body,
                receipt,
            } => {
                self.on_send(&destination, &headers, &body, receipt, now);
                self.answer_sends(session, now);
            }
            Event::Subscribe {
                key,
                destination,
                headers,
                receipt,
                ..
            } => self.on_subscribe(key, &destination, &headers, receipt, session, now),
            Event::Unsubscribe { key, receipt, .. } => {
                self.on_unsubscribe(key, receipt, session, now)
            }
            // Acks only matter to the engine's bookkeeping.
            Event::Ack { receipt, .. } | Event::Nack { receipt, .. } => {
                send_receipt(session, receipt, now)
            }
            // A COMMIT's SENDs were handled as the events before this one; its RECEIPT
            // means they took effect, so it waits for their answers.
            Event::Commit { receipt, .. } => {
                self.in_flight.push_back(InFlight {
                    ticket: 0,
                    receipt,
                    result: Some(Answer::Done),
                });
                self.answer_sends(session, now);
            }
            Event::Disconnect { .. } => {
                self.disconnecting = true;
                self.finish_disconnect(session);
            }
            Event::Closed(_) => self.close(),
        }
    }

    /// When [`ChatConnection::handle_timeout`] must be called next: when the session's token
    /// expires. `None` before CONNECT and once the connection is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.token_deadline
    }

    /// Ends the session if its token expired by `now`: `ERROR message:EXPIRED_TOKEN`, which
    /// closes it. Returns true when it did; false (nothing done) before the deadline.
    pub fn handle_timeout(&mut self, now: Instant, session: &mut Session) -> bool {
        if self.closed || self.token_deadline.is_none_or(|deadline| now < deadline) {
            return false;
        }
        self.token_deadline = None;
        session.error(
            ChatError::ExpiredToken.code(),
            "the session's token expired; GET /init with it for a new one, then reconnect \
             (to keep a session open, SEND a fresh token from GET /init?refresh=true to \
             /pub/token before it expires)",
            None,
            now,
        );
        true
    }

    /// The session's token now expires at `expires_at` (seconds since the Unix epoch): the
    /// deadline is that far from `now` as the service's wall clock tells.
    fn set_token_expiry(&mut self, expires_at: u64, now: Instant) {
        self.token_expires_at = Some(expires_at);
        let left = UNIX_EPOCH
            .checked_add(Duration::from_secs(expires_at))
            .map(|expiry| {
                let wall_now = self.service.ports().clock.now_system_time();
                expiry.duration_since(wall_now).unwrap_or(Duration::ZERO)
            });
        // An `exp` beyond what the clocks can count to never comes.
        self.token_deadline = left.and_then(|left| now.checked_add(left));
    }

    /// Puts one queued delivery on the wire (dropping duplicates after a `since-id` replay).
    /// Returns false when the session refused it as a slow consumer; the driver then closes.
    pub fn deliver(&mut self, delivery: Delivery, session: &mut Session, now: Instant) -> bool {
        // One lookup per delivery: this is the fan-out's hot path.
        let Some(subscription) = self.subscriptions.get_mut(&delivery.subscription) else {
            // Unsubscribed (or refused) while the delivery was queued: keys are never reused,
            // so a later subscription with the same id is not this one.
            return true;
        };
        if let Some(starting) = subscription.starting.as_mut() {
            if starting.len() >= MAX_HELD_WHILE_STARTING {
                slow_consumer(session, now);
                return false;
            }
            starting.push(delivery);
            return true;
        }
        if let (Some(seq), Some(up_to)) = (delivery.seq, subscription.has_up_to)
            && seq <= up_to
        {
            return true;
        }
        put_on_wire(session, delivery.subscription, &delivery.message, now)
    }

    /// The connection ended: its subscriptions are gone at once, and the answers still
    /// waiting are dropped (nobody is left to read them). Idempotent.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.service.hub().remove_connection(self.id);
        self.subscriptions.clear();
        self.error_queue = None;
        // SENDs that came before the end are still stored (nobody is left to answer).
        self.hand_over_sends();
        self.waiting.clear();
        self.running = false;
    }

    /// The connection is over (whatever the reason): the job that takes the session out of
    /// the counts ([`Job::Disconnected`]), if it was counted in. The driver calls it after the
    /// connection's loop and runs the job; its result is for nobody. Idempotent: later calls
    /// give `None`.
    pub fn closed(&mut self) -> Option<Job> {
        self.close();
        std::mem::take(&mut self.announced).then(|| Job::Disconnected {
            session: self.key.clone(),
        })
    }

    // ---- CONNECT ----

    fn on_connect(&mut self, request: &ConnectRequest, session: &mut Session, now: Instant) {
        let Some(token) = bearer_token(request) else {
            session.refuse(
                "missing token",
                "CONNECT must carry 'Authorization: Bearer <token>'; GET /init issues one",
            );
            return;
        };
        match self.service.verify_token(token) {
            Ok(verified) => {
                let epoch: Headers = [(hub::EPOCH_HEADER, self.service.epoch().as_str())]
                    .into_iter()
                    .collect();
                session.accept_with(&self.key.0, &epoch, now);
                self.identity = Some(verified.identity);
                self.set_token_expiry(verified.expires_at, now);
                self.announced = true;
                let announce = Job::AnnounceConnected {
                    session: self.key.clone(),
                };
                self.push(Some(announce), Then::Nothing, session, now);
            }
            Err(ChatError::ExpiredToken) => session.refuse(
                "expired token",
                "the token has expired; GET /init with it for a new one, then reconnect",
            ),
            Err(_) => session.refuse(
                "invalid token",
                "the token is malformed or not signed by this server",
            ),
        }
    }

    // ---- SEND ----

    /// Validates a SEND and hands it to its room's writer, or records why it was refused;
    /// either way it is answered in turn by [`ChatConnection::answer_sends`].
    fn on_send(
        &mut self,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
        receipt: Option<ReceiptId>,
        now: Instant,
    ) {
        if let Ok(SendTarget::Token) = SendTarget::parse(destination) {
            // Answered in turn with the SENDs before it; it has no outcome to wait for.
            let result = match self.refresh(body, now) {
                Ok(()) => Answer::Done,
                Err(error) => Answer::Failed(error),
            };
            self.in_flight.push_back(InFlight {
                ticket: 0,
                receipt,
                result: Some(result),
            });
            return;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let result = match self.prepare(destination, headers, body, ticket, now) {
            Ok(message) => {
                self.to_submit.push(PendingSend {
                    message,
                    reply: self.sink.clone(),
                    ticket,
                    received: now,
                });
                None
            }
            Err(error) => Some(Answer::Failed(error)),
        };
        self.in_flight.push_back(InFlight {
            ticket,
            receipt,
            result,
        });
    }

    /// The message a SEND asks to store, or why it cannot be.
    fn prepare(
        &mut self,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
        ticket: u64,
        now: Instant,
    ) -> Result<NewMessage, ChatError> {
        match SendTarget::parse(destination)? {
            SendTarget::Chat => {}
            // Taken by `on_send` before it gets here.
            SendTarget::Token => return Err(ChatError::UnknownDestination(destination.to_owned())),
        }
        if !self.sends.try_take(now) {
            return Err(ChatError::RateLimited);
        }
        let send: ChatSend = serde_json::from_slice(body)
            .map_err(|_| ChatError::BadRequest(BadRequest::SendBody))?;
        let room_id = RoomId::parse(&send.room_id).ok_or(ChatError::InvalidRoomId)?;
        // The engine yields SEND only on an accepted session, so this is always set.
        let author = self.identity.as_ref().ok_or(ChatError::InvalidToken)?;
        self.service.check_entry(&room_id, author)?;
        let text =
            validation::message_text(&send.message, self.service.config().max_message_chars)?;
        let key = match headers.get(MESSAGE_KEY_HEADER) {
            Some(key) => MessageKey::parse(key.trim())
                .ok_or(ChatError::BadRequest(BadRequest::MessageKey))?,
            // Unique across nodes and restarts: the session key is.
            None => MessageKey::server_made(&format!("{}-{ticket}", self.key.0)),
        };
        // Name and tag come from the token, never from the body.
        Ok(NewMessage {
            room_id,
            message: text.to_owned(),
            author: author.clone(),
            created_at: self.service.ports().clock.now_rfc3339(),
            ip_address: ip_prefix(self.client),
            key,
        })
    }

    /// A SEND to `/pub/token`: the body is a fresh token for the session's identity (plain
    /// text). Accepted when it verifies, carries the same identity (name tag and name:
    /// [`ChatError::OtherIdentity`], `FORBIDDEN`, otherwise) and expires later than the session's token
    /// ([`ChatError::StaleToken`] otherwise); the session then lasts until its `exp`.
    fn refresh(&mut self, body: &Bytes, now: Instant) -> Result<(), ChatError> {
        // Costs a signature check: it counts as a SEND.
        if !self.sends.try_take(now) {
            return Err(ChatError::RateLimited);
        }
        let body = body.trim_ascii();
        // Checked before anything is decoded.
        if body.len() > MAX_TOKEN_BYTES {
            return Err(ChatError::InvalidToken);
        }
        let token = std::str::from_utf8(body).map_err(|_| ChatError::InvalidToken)?;
        let verified = self.service.verify_token(token)?;
        // The engine yields SEND only on an accepted session, so this is always set.
        let current = self.identity.as_ref().ok_or(ChatError::InvalidToken)?;
        if verified.identity != *current {
            return Err(ChatError::OtherIdentity);
        }
        if self
            .token_expires_at
            .is_some_and(|expires_at| verified.expires_at <= expires_at)
        {
            return Err(ChatError::StaleToken);
        }
        self.set_token_expiry(verified.expires_at, now);
        Ok(())
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE ----

    /// Decides a SUBSCRIBE as far as it can at once. A refused one (rate limit, bad
    /// destination, a room the client may not enter) leaves the session at once, so the
    /// frames after it meet the same state however the transport chunked them; its error
    /// keeps its place in line. Otherwise the subscription is registered at once (so nothing
    /// published from now on is missed) and the job that reads its start is queued; the
    /// session accepts it (or refuses it, if the read failed) when that answer's turn comes.
    fn on_subscribe(
        &mut self,
        key: SubscriptionKey,
        destination: &str,
        headers: &Headers,
        receipt: Option<ReceiptId>,
        session: &mut Session,
        now: Instant,
    ) {
        let (job, start) = if self.subscribes.try_take(now) {
            self.start(key, destination, headers)
                .unwrap_or_else(|error| (None, Start::Refused(error)))
        } else {
            (None, Start::Refused(ChatError::RateLimited))
        };
        match start {
            Start::Refused(_) => {
                session.refuse_subscription(key);
            }
            // Nothing to read first: live at once (errors of the frames after it go there).
            Start::Nothing => {
                session.accept_subscription(key);
            }
            _ => {}
        }
        let then = Then::Subscribed {
            key,
            receipt,
            start,
        };
        self.push(job, then, session, now);
    }

    /// Checks a SUBSCRIBE, registers it, and gives the job that reads its start (if it
    /// needs one) and what its start is made of.
    fn start(
        &mut self,
        key: SubscriptionKey,
        destination: &str,
        headers: &Headers,
    ) -> Result<(Option<Job>, Start), ChatError> {
        let target = SubscribeTarget::parse(destination)?;
        // The engine yields SUBSCRIBE only on an accepted session, so this is always set.
        let who = self.identity.as_ref().ok_or(ChatError::InvalidToken)?;
        if let SubscribeTarget::Channel(room)
        | SubscribeTarget::Presence(room)
        | SubscribeTarget::History(room) = &target
        {
            self.service.check_entry(room, who)?;
        }
        Ok(match &target {
            SubscribeTarget::Channel(room) => {
                let since = Since::parse(headers)?;
                let job = Job::StartChannel {
                    session: self.key.clone(),
                    room: room.clone(),
                    since,
                    join: !self.in_room(room),
                    max_replay: self.service.config().max_replay,
                };
                self.register(key, &destination::channel(room), target.clone());
                (Some(job), Start::Channel)
            }
            SubscribeTarget::Entry => {
                self.register(key, destination::ENTRY, target.clone());
                (Some(Job::CountConnections), Start::Entry)
            }
            SubscribeTarget::Presence(room) => {
                self.register(key, &destination::presence(room), target.clone());
                let job = Job::CountRoom { room: room.clone() };
                (Some(job), Start::Presence(room.clone()))
            }
            SubscribeTarget::ErrorQueue => {
                self.remember(key, target.clone());
                self.error_queue = Some(key);
                (None, Start::Nothing)
            }
            SubscribeTarget::History(room) => {
                let config = self.service.config();
                let limit = parse_number_header(headers, LIMIT_HEADER)?
                    .map_or(config.history_reply_default, |limit| {
                        usize::try_from(limit).unwrap_or(usize::MAX)
                    })
                    .clamp(1, config.max_history_limit.max(1));
                self.remember(key, target.clone());
                let job = Job::History {
                    room: room.clone(),
                    limit,
                };
                (Some(job), Start::History(room.clone()))
            }
        })
    }

    fn on_unsubscribe(
        &mut self,
        key: SubscriptionKey,
        receipt: Option<ReceiptId>,
        session: &mut Session,
        now: Instant,
    ) {
        let job = match self.forget(key) {
            // Presence counts sessions, not subscriptions: a second subscription to the
            // same room keeps this session in it.
            Some(SubscribeTarget::Channel(room)) if !self.in_room(&room) => Some(Job::LeaveRoom {
                session: self.key.clone(),
                room,
            }),
            _ => None,
        };
        self.push(job, Then::Receipt(receipt), session, now);
    }

    /// Removes subscription `key` from the connection and the hub; its target, if it existed.
    fn forget(&mut self, key: SubscriptionKey) -> Option<SubscribeTarget> {
        let subscription = self.subscriptions.remove(&key)?;
        match &subscription.target {
            SubscribeTarget::ErrorQueue => {
                if self.error_queue == Some(key) {
                    self.error_queue = None;
                }
            }
            SubscribeTarget::History(_) => {}
            SubscribeTarget::Entry | SubscribeTarget::Presence(_) | SubscribeTarget::Channel(_) => {
                self.service.hub().unsubscribe(self.id, key);
            }
        }
        Some(subscription.target)
    }

    /// Whether one of this connection's subscriptions is to `room`'s channel.
    fn in_room(&self, room: &RoomId) -> bool {
        self.subscriptions
            .values()
            .any(|s| matches!(&s.target, SubscribeTarget::Channel(r) if r == room))
    }

    /// Registers subscription `key` in the hub and remembers it.
    fn register(&mut self, key: SubscriptionKey, destination: &str, target: SubscribeTarget) {
        self.remember(key, target);
        self.service
            .hub()
            .subscribe(destination, self.id, self.sink.clone(), key);
    }

    /// Remembers a subscription whose start is still to be read.
    fn remember(&mut self, key: SubscriptionKey, target: SubscribeTarget) {
        self.subscriptions.insert(
            key,
            Subscription {
                target,
                has_up_to: None,
                starting: Some(Vec::new()),
            },
        );
    }

    // ---- errors ----

    /// Sends `error` in the envelope to `/user/queue/errors`, if the client subscribed to it;
    /// otherwise it is dropped, and the session goes on either way.
    fn send_error(&self, session: &mut Session, error: &ChatError, now: Instant) {
        if !self.to_error_queue(session, error, None, now) {
            tracing::debug!(
                connection = self.id.0,
                code = error.code(),
                "error not sent: no /user/queue/errors subscription"
            );
        }
    }

    /// A SEND that failed: the error goes to `/user/queue/errors` with the SEND's
    /// `receipt-id` when the client subscribed to it; otherwise as an ERROR frame (with the
    /// `receipt-id`), which ends the session: a SEND is never left unanswered.
    fn send_failed(
        &self,
        session: &mut Session,
        error: &ChatError,
        receipt: Option<ReceiptId>,
        now: Instant,
    ) {
        if !self.to_error_queue(session, error, receipt.as_ref(), now) {
            session.error(error.code(), &error.to_string(), receipt, now);
        }
    }

    /// Puts `error` on the client's `/user/queue/errors` subscription; false when it has none.
    fn to_error_queue(
        &self,
        session: &mut Session,
        error: &ChatError,
        receipt: Option<&ReceiptId>,
        now: Instant,
    ) -> bool {
        let Some(queue) = self.error_queue else {
            return false;
        };
        let mut headers = Headers::new();
        if let Some(receipt) = receipt {
            headers.push(RECEIPT_ID_HEADER, receipt.as_str());
        }
        self.service.hub().add_epoch(&mut headers);
        let message = SharedMessage::new(
            destination::ERROR_QUEUE,
            &self.service.hub().next_message_id("err"),
            Some(JSON),
            &headers,
            hub::to_json(&Envelope::<()>::failure(error)),
        );
        put_on_wire(session, queue, &message, now);
        true
    }
}

impl std::fmt::Debug for ChatConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatConnection")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("identity", &self.identity)
            .field("subscriptions", &self.subscriptions.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Queues `message` on `subscription`; false (after sending an ERROR, which closes the
/// session) when the client holds too many unacknowledged messages: a slow consumer.
fn put_on_wire(
    session: &mut Session,
    subscription: SubscriptionKey,
    message: &SharedMessage,
    now: Instant,
) -> bool {
    match session.deliver(subscription, message, now) {
        Ok(()) => true,
        Err(DeliverError::TooManyUnacked(_)) => {
            slow_consumer(session, now);
            false
        }
        // Raced with an UNSUBSCRIBE the connection has not handled yet, or the end of the
        // session: nothing to send to.
        Err(_) => true,
    }
}

fn send_receipt(session: &mut Session, receipt: Option<ReceiptId>, now: Instant) {
    if let Some(receipt) = receipt {
        session.receipt(receipt, now);
    }
}

impl Since {
    /// `since-seq` (which wins when both are given) or `since-id`, if either is present.
    fn parse(headers: &Headers) -> Result<Option<Since>, ChatError> {
        if let Some(seq) = parse_number_header(headers, SINCE_SEQ_HEADER)? {
            return Ok(Some(Since::Seq(seq)));
        }
        Ok(parse_number_header(headers, SINCE_ID_HEADER)?.map(Since::Id))
    }
}

/// The session refuses more: ERROR `slow consumer`, and the connection closes.
fn slow_consumer(session: &mut Session, now: Instant) {
    session.error(
        "slow consumer",
        "too many unacknowledged messages; the connection is closed so the room does not wait",
        None,
        now,
    );
}

/// The token of a CONNECT: `Authorization` (`Bearer <token>` or bare), else `passcode`, else
/// `login`. `None` when none is present or the value is empty or `null`.
fn bearer_token(request: &ConnectRequest) -> Option<&str> {
    let authorization = request
        .headers
        .get("Authorization")
        .or_else(|| request.headers.get("authorization"));
    let value = authorization
        .or(request.passcode.as_deref())
        .or(request.login.as_deref())?;
    let value = value.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        None if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    (!token.is_empty() && token != "null").then_some(token)
}

/// A header that must be a non-negative integer when present.
fn parse_number_header(headers: &Headers, name: &str) -> Result<Option<u64>, ChatError> {
    headers
        .get(name)
        .map(|value| {
            value
                .trim()
                .parse()
                .map_err(|_| ChatError::BadRequest(BadRequest::NotANumber(name.to_owned())))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtchat_stomp::Version;

    fn request(
        headers: &[(&str, &str)],
        login: Option<&str>,
        passcode: Option<&str>,
    ) -> ConnectRequest {
        ConnectRequest {
            version: Version::V1_2,
            host: None,
            login: login.map(str::to_owned),
            passcode: passcode.map(str::to_owned),
            headers: headers.iter().copied().collect(),
        }
    }

    #[test]
    fn token_comes_from_authorization_first() {
        let r = request(
            &[("Authorization", "Bearer abc")],
            Some("guest"),
            Some("pw"),
        );
        assert_eq!(bearer_token(&r), Some("abc"));
        let r = request(&[("authorization", "bearer  abc ")], None, None);
        assert_eq!(bearer_token(&r), Some("abc"));
        let r = request(&[("Authorization", "abc")], None, None);
        assert_eq!(bearer_token(&r), Some("abc"));
    }

    #[test]
    fn token_falls_back_to_passcode_then_login() {
        assert_eq!(bearer_token(&request(&[], Some("l"), Some("p"))), Some("p"));
        assert_eq!(
            bearer_token(&request(&[], Some("Bearer l"), None)),
            Some("l")
        );
    }

    #[test]
    fn missing_empty_or_null_token_is_none() {
        assert_eq!(bearer_token(&request(&[], None, None)), None);
        assert_eq!(
            bearer_token(&request(&[("Authorization", "Bearer ")], None, None)),
            None
        );
        assert_eq!(
            bearer_token(&request(&[("Authorization", "Bearer null")], None, None)),
            None
        );
        assert_eq!(
            bearer_token(&request(&[("Authorization", "")], None, None)),
            None
        );
    }

    #[test]
    fn number_headers() {
        let headers: Headers = [("since-id", " 42 "), ("limit", "x")].into_iter().collect();
        assert_eq!(parse_number_header(&headers, "since-id"), Ok(Some(42)));
        assert_eq!(parse_number_header(&headers, "absent"), Ok(None));
        assert!(matches!(
            parse_number_header(&headers, "limit"),
            Err(ChatError::BadRequest(_))
        ));
    }
}
