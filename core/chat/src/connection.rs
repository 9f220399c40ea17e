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
//! SENDs do not hold the connection: each one is validated, handed to its room's writer
//! (the [`Appender`](crate::ports::Appender)), and the connection goes on reading and
//! delivering. Outcomes come back through the connection's queue
//! ([`ChatConnection::on_outcome`]) and are answered in the order the SENDs came.

use crate::destination::{self, SendTarget, SubscribeTarget};
use crate::envelope::Envelope;
use crate::hub::{self, ConnectionId, JSON};
use crate::ip::ip_prefix;
use crate::model::{Identity, MessageId, MessageKey, NewMessage, RoomId, Seq};
use crate::ports::{
    BackendError, ConnectionSink, Delivery, PendingSend, RoomEvent, SendOutcome, SessionKey,
};
use crate::service::{ChatError, ChatService};
use crate::validation;
use bytes::Bytes;
use rtchat_stomp::{
    ConnectRequest, DeliverError, Event, Headers, ReceiptId, Session, SharedMessage, TokenBucket,
};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

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

/// The chat side of one STOMP connection. The driver calls [`ChatConnection::handle`] for every
/// event the session yields, [`ChatConnection::deliver`] for every [`Delivery`] the hub queued,
/// and [`ChatConnection::closed`] once, when the connection is over (whatever the reason).
pub struct ChatConnection {
    service: ChatService,
    client: IpAddr,
    sink: Arc<dyn ConnectionSink>,
    id: ConnectionId,
    key: SessionKey,
    /// Set by an accepted CONNECT; SEND and SUBSCRIBE only come after it.
    identity: Option<Identity>,
    /// Active subscriptions by STOMP id.
    subscriptions: HashMap<String, Subscription>,
    /// The id of the `/user/queue/errors` subscription, if any.
    error_queue: Option<String>,
    sends: TokenBucket,
    subscribes: TokenBucket,
    /// SENDs handed to writers (or refused) and not yet answered, in the order they came.
    in_flight: VecDeque<InFlight>,
    /// Validated SENDs of the current read, handed to the writers by
    /// [`ChatConnection::submit_sends`].
    to_submit: Vec<PendingSend>,
    /// Number of the next SEND.
    next_ticket: u64,
    /// Presence was told about this session, so it must be told when it ends.
    announced: bool,
    closed: bool,
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

/// What the connection remembers of one subscription.
struct Subscription {
    /// The same `Arc` the hub tags deliveries with: a delivery whose `Arc` is another one was
    /// queued for an earlier subscription that had the same id, and is dropped.
    handle: Arc<str>,
    target: SubscribeTarget,
    /// For room channels: the store's head when the subscription started. The client has
    /// everything up to it that it asked for (the replay, or nothing before it); live
    /// messages up to it are dropped, and the hub delivers the rest in seq order.
    has_up_to: Option<Seq>,
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
            subscriptions: HashMap::new(),
            error_queue: None,
            sends,
            subscribes,
            in_flight: VecDeque::new(),
            to_submit: Vec::new(),
            next_ticket: 1,
            announced: false,
            closed: false,
        }
    }

    /// Hands the SENDs of the events handled since the last call to their rooms' writers.
    /// The driver calls it once it has handled every event of a read, so the SENDs of one
    /// read are stored together.
    pub fn submit_sends(&mut self) {
        if !self.to_submit.is_empty() {
            let sends = std::mem::take(&mut self.to_submit);
            self.service.ports().appender.submit(sends);
        }
    }

    /// Whether the driver should read more from the peer: false while the connection has
    /// as many SENDs in flight as it may (its peer then waits, and memory stays bounded).
    pub fn wants_input(&self) -> bool {
        self.in_flight.len() < self.service.config().max_sends_in_flight.max(1)
    }

    /// The outcome of one of this connection's SENDs: answered (RECEIPT, or the error) as
    /// soon as every earlier SEND is answered.
    pub fn on_outcome(&mut self, outcome: SendOutcome, session: &mut Session) {
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
        self.answer_sends(session);
    }

    /// Answers the SENDs at the front whose outcome is known.
    fn answer_sends(&mut self, session: &mut Session) {
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
                Answer::Done => send_receipt(session, receipt),
                Answer::Failed(error) => self.send_failed(session, &error, receipt),
            }
        }
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

    /// Answers one session event (CONNECT authentication, SEND routing, SUBSCRIBE, ...).
    pub async fn handle(&mut self, event: Event, session: &mut Session, now: Instant) {
        if self.closed {
            return;
        }
        match event {
            Event::Connect(request) => self.on_connect(&request, session, now).await,
            Event::Send {
                destination,
                headers,
                body,
                receipt,
            } => {
                self.on_send(&destination, &headers, &body, receipt, now);
                self.answer_sends(session);
            }
            Event::Subscribe {
                id,
                destination,
                headers,
                receipt,
                ..
            } => {
                let outcome = if self.subscribes.try_take(now) {
                    self.on_subscribe(&id, &destination, &headers, session, now)
                        .await
                } else {
                    Err(ChatError::RateLimited)
                };
                match outcome {
                    Ok(()) => send_receipt(session, receipt),
                    Err(error) => {
                        // A refused SUBSCRIBE leaves nothing behind: the id is free again.
                        self.on_unsubscribe(&id).await;
                        session.refuse_subscription(&id);
                        self.send_error(session, &error);
                    }
                }
            }
            Event::Unsubscribe { id, receipt, .. } => {
                self.on_unsubscribe(&id).await;
                send_receipt(session, receipt);
            }
            // Acks only matter to the engine's bookkeeping.
            Event::Ack { receipt, .. } | Event::Nack { receipt, .. } => {
                send_receipt(session, receipt)
            }
            // A COMMIT's SENDs were handled as the events before this one; its RECEIPT
            // means they took effect, so it waits for their answers.
            Event::Commit { receipt, .. } => {
                self.in_flight.push_back(InFlight {
                    ticket: 0,
                    receipt,
                    result: Some(Answer::Done),
                });
                self.answer_sends(session);
            }
            Event::Closed(_) => self.closed().await,
            // Events added to the engine later have no meaning in the chat yet.
            _ => {}
        }
    }

    /// Puts one queued delivery on the wire (dropping duplicates after a `since-id` replay).
    /// Returns false when the session refused it as a slow consumer; the driver then closes.
    pub fn deliver(&mut self, delivery: Delivery, session: &mut Session) -> bool {
        let Some(subscription) = self.subscriptions.get(&*delivery.subscription) else {
            // Unsubscribed while the delivery was queued.
            return true;
        };
        if !Arc::ptr_eq(&subscription.handle, &delivery.subscription) {
            return true;
        }
        if let (Some(seq), Some(up_to)) = (delivery.seq, subscription.has_up_to)
            && seq <= up_to
        {
            return true;
        }
        put_on_wire(session, &delivery.subscription, &delivery.message)
    }

    /// The connection ended: leave rooms, update counts. Idempotent.
    pub async fn closed(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.service.hub().remove_connection(self.id);
        self.subscriptions.clear();
        self.error_queue = None;
        if !self.announced {
            return;
        }
        let presence = &self.service.ports().presence;
        if let Ok((total, rooms)) = presence.disconnected(&self.key).await {
            for (room_id, count) in rooms {
                self.service
                    .publish(RoomEvent::Presence { room_id, count })
                    .await;
            }
            self.service
                .publish(RoomEvent::Entry { count: total })
                .await;
        }
    }

    // ---- CONNECT ----

    async fn on_connect(&mut self, request: &ConnectRequest, session: &mut Session, now: Instant) {
        let Some(token) = bearer_token(request) else {
            session.refuse(
                "missing token",
                "CONNECT must carry 'Authorization: Bearer <token>'; GET /init issues one",
            );
            return;
        };
        match self.service.authenticate(token) {
            Ok(identity) => {
                session.accept(&self.key.0, now);
                self.identity = Some(identity);
                self.announced = true;
                // If presence is down the chat still works; only the counts are stale.
                if let Ok(total) = self.service.ports().presence.connected(&self.key).await {
                    self.service
                        .publish(RoomEvent::Entry { count: total })
                        .await;
                }
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
        }
        if !self.sends.try_take(now) {
            return Err(ChatError::RateLimited);
        }
        let send: ChatSend = serde_json::from_slice(body).map_err(|_| {
            ChatError::BadRequest(
                "body must be JSON {\"roomId\": string, \"message\": string}".to_owned(),
            )
        })?;
        let room_id = RoomId::parse(&send.room_id).ok_or(ChatError::InvalidRoomId)?;
        let text =
            validation::message_text(&send.message, self.service.config().max_message_chars)?;
        let key = match headers.get(MESSAGE_KEY_HEADER) {
            Some(key) => MessageKey::parse(key.trim()).ok_or_else(|| {
                ChatError::BadRequest(
                    "header 'message-key' must be 1 to 64 of [A-Za-z0-9_.:-]".to_owned(),
                )
            })?,
            // Unique across nodes and restarts: the session key is.
            None => MessageKey::server_made(&format!("{}-{ticket}", self.key.0)),
        };
        // The engine yields SEND only on an accepted session, so this is always set.
        let author = self.identity.as_ref().ok_or(ChatError::InvalidToken)?;
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

    // ---- SUBSCRIBE / UNSUBSCRIBE ----

    async fn on_subscribe(
        &mut self,
        id: &str,
        destination: &str,
        headers: &Headers,
        session: &mut Session,
        now: Instant,
    ) -> Result<(), ChatError> {
        let target = SubscribeTarget::parse(destination)?;
        match &target {
            SubscribeTarget::Channel(room) => {
                self.service.ensure_room(room).await?;
                let since = Since::parse(headers)?;
                // Presence counts sessions: a second subscription to the same room changes
                // no room count, so its presence subscribers are not told.
                let already_in_room = self.in_room(room);
                // Registered before the store is read: whatever the hub fans out from now on
                // is queued for us, and whatever was stored before the read is in the replay
                // (or before what the client asked for). Queued messages up to the head read
                // are dropped by `has_up_to`; there is no gap and no duplicate.
                let handle = self.register(id, &destination::channel(room), target.clone());
                let head = self
                    .service
                    .ports()
                    .messages
                    .head(room)
                    .await
                    .map_err(|_| ChatError::Unavailable)?;
                if let Some(subscription) = self.subscriptions.get_mut(id) {
                    subscription.has_up_to = Some(head);
                }
                self.service.hub().observe_head(room, head, now);
                if let Some(since) = since {
                    self.replay(&handle, room, since, head, session).await?;
                }
                if already_in_room {
                    // The contract still sends the connection count on every subscribe.
                    self.publish_entry().await;
                } else {
                    self.join(room).await;
                }
            }
            SubscribeTarget::Entry => {
                self.register(id, destination::ENTRY, target.clone());
                let total = self
                    .service
                    .ports()
                    .presence
                    .total()
                    .await
                    .map_err(|_| ChatError::Unavailable)?;
                put_on_wire(session, id, &self.service.hub().entry_message(total));
            }
            SubscribeTarget::Presence(room) => {
                self.service.ensure_room(room).await?;
                self.register(id, &destination::presence(room), target.clone());
                let count = self
                    .service
                    .ports()
                    .presence
                    .room_count(room)
                    .await
                    .map_err(|_| ChatError::Unavailable)?;
                put_on_wire(
                    session,
                    id,
                    &self.service.hub().presence_message(room, count),
                );
            }
            SubscribeTarget::ErrorQueue => {
                self.remember(id, target.clone());
                self.error_queue = Some(id.to_owned());
            }
            SubscribeTarget::History(room) => {
                self.history_reply(id, room, headers, session).await?;
                self.remember(id, target.clone());
            }
        }
        Ok(())
    }

    async fn on_unsubscribe(&mut self, id: &str) {
        let Some(subscription) = self.subscriptions.remove(id) else {
            return;
        };
        match subscription.target {
            SubscribeTarget::ErrorQueue => self.error_queue = None,
            SubscribeTarget::History(_) => {}
            SubscribeTarget::Entry | SubscribeTarget::Presence(_) => {
                self.service.hub().unsubscribe(self.id, id);
            }
            SubscribeTarget::Channel(room) => {
                self.service.hub().unsubscribe(self.id, id);
                // Presence counts sessions, not subscriptions: a second subscription to the
                // same room keeps this session in it.
                if !self.in_room(&room) {
                    self.leave(&room).await;
                }
            }
        }
    }

    /// Whether one of this connection's subscriptions is to `room`'s channel.
    fn in_room(&self, room: &RoomId) -> bool {
        self.subscriptions
            .values()
            .any(|s| matches!(&s.target, SubscribeTarget::Channel(r) if r == room))
    }

    /// Registers in the hub and remembers the subscription; returns the hub's handle.
    fn register(&mut self, id: &str, destination: &str, target: SubscribeTarget) -> Arc<str> {
        let handle = self.remember(id, target);
        self.service
            .hub()
            .subscribe(destination, self.id, self.sink.clone(), handle.clone());
        handle
    }

    fn remember(&mut self, id: &str, target: SubscribeTarget) -> Arc<str> {
        let handle: Arc<str> = Arc::from(id);
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                handle: handle.clone(),
                target,
                has_up_to: None,
            },
        );
        handle
    }

    /// Sends what was stored after `since` and up to `head`, oldest first, straight to the
    /// session; live deliveries meanwhile wait in the sink's queue (the driver cannot call
    /// `deliver` while `handle` runs) and those up to `head` are dropped when they come.
    ///
    /// At most `max_replay` messages: when more were missed, the newest `max_replay` are
    /// sent, so the client's one hole is at the far end (its first seq says where; it pages
    /// older ones in over `GET /message/lastMessageId`), never between the replay and live
    /// messages.
    async fn replay(
        &mut self,
        handle: &Arc<str>,
        room: &RoomId,
        since: Since,
        head: Seq,
        session: &mut Session,
    ) -> Result<(), ChatError> {
        let max = self.service.config().max_replay.max(1);
        let store = &self.service.ports().messages;
        let unavailable = |_: BackendError| ChatError::Unavailable;
        let after_seq = match since {
            Since::Seq(seq) => seq,
            Since::Id(id) => {
                // The first message after the id tells where in the log the client is.
                match store.after(room, id, 1).await.map_err(unavailable)?.first() {
                    Some(first) => first.seq.saturating_sub(1),
                    None => head,
                }
            }
        };
        let from = after_seq.max(head.saturating_sub(max as Seq));
        if from >= head {
            return Ok(());
        }
        let missed = store
            .after_seq(room, from, (head - from) as usize)
            .await
            .map_err(unavailable)?;
        for message in missed.iter().filter(|m| m.seq <= head) {
            if !put_on_wire(session, handle, &hub::encode_chat_message(message)) {
                break;
            }
        }
        Ok(())
    }

    /// The subscribe-time reply of `/pub/history/{room}`: one MESSAGE with the newest
    /// messages, newest first.
    async fn history_reply(
        &self,
        id: &str,
        room: &RoomId,
        headers: &Headers,
        session: &mut Session,
    ) -> Result<(), ChatError> {
        let config = self.service.config();
        let limit = parse_number_header(headers, LIMIT_HEADER)?
            .map_or(config.history_reply_default, |limit| {
                usize::try_from(limit).unwrap_or(usize::MAX)
            })
            .clamp(1, config.max_history_limit.max(1));
        let messages = self.service.history(room.as_str(), limit, None).await?;
        let reply = SharedMessage::new(
            &destination::history(room),
            &self.service.hub().next_message_id("h"),
            Some(JSON),
            &Headers::new(),
            hub::to_json(&messages),
        );
        put_on_wire(session, id, &reply);
        Ok(())
    }

    async fn join(&self, room: &RoomId) {
        let count = self.service.ports().presence.joined(room, &self.key).await;
        self.announce_presence(room, count).await;
    }

    async fn leave(&self, room: &RoomId) {
        let count = self.service.ports().presence.left(room, &self.key).await;
        self.announce_presence(room, count).await;
    }

    /// Tells the room's presence subscribers its new count (when presence answered), and
    /// everyone on `/sub/channel/entry` the connection count.
    async fn announce_presence(&self, room: &RoomId, count: Result<u64, BackendError>) {
        if let Ok(count) = count {
            self.service
                .publish(RoomEvent::Presence {
                    room_id: room.clone(),
                    count,
                })
                .await;
        }
        self.publish_entry().await;
    }

    /// The contract sends the connection count on every channel subscribe and leave.
    async fn publish_entry(&self) {
        if let Ok(count) = self.service.ports().presence.total().await {
            self.service.publish(RoomEvent::Entry { count }).await;
        }
    }

    // ---- errors ----

    /// Sends `error` in the envelope to `/user/queue/errors`, if the client subscribed to it;
    /// otherwise it is dropped, and the session goes on either way.
    fn send_error(&self, session: &mut Session, error: &ChatError) {
        self.to_error_queue(session, error, None);
    }

    /// A SEND that failed: the error goes to `/user/queue/errors` with the SEND's
    /// `receipt-id` when the client subscribed to it; otherwise as an ERROR frame (with the
    /// `receipt-id`), which ends the session: a SEND is never left unanswered.
    fn send_failed(&self, session: &mut Session, error: &ChatError, receipt: Option<ReceiptId>) {
        if !self.to_error_queue(session, error, receipt.as_ref()) {
            session.error(error.code(), &error.to_string(), receipt);
        }
    }

    /// Puts `error` on the client's `/user/queue/errors` subscription; false when it has none.
    fn to_error_queue(
        &self,
        session: &mut Session,
        error: &ChatError,
        receipt: Option<&ReceiptId>,
    ) -> bool {
        let Some(queue) = &self.error_queue else {
            return false;
        };
        let mut headers = Headers::new();
        if let Some(receipt) = receipt {
            headers.push(RECEIPT_ID_HEADER, receipt.0.as_str());
        }
        let message = SharedMessage::new(
            destination::ERROR_QUEUE,
            &self.service.hub().next_message_id("err"),
            Some(JSON),
            &headers,
            hub::to_json(&Envelope::<()>::failure(error)),
        );
        put_on_wire(session, queue, &message);
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
fn put_on_wire(session: &mut Session, subscription: &str, message: &SharedMessage) -> bool {
    match session.deliver(subscription, message) {
        Ok(()) => true,
        Err(DeliverError::TooManyUnacked(_)) => {
            session.error(
                "slow consumer",
                "too many unacknowledged messages; the connection is closed so the room does not wait",
                None,
            );
            false
        }
        // Raced with an UNSUBSCRIBE or the end of the session: nothing to send to.
        Err(_) => true,
    }
}

fn send_receipt(session: &mut Session, receipt: Option<ReceiptId>) {
    if let Some(receipt) = receipt {
        session.receipt(receipt);
    }
}

/// Where a SUBSCRIBE to a room channel asks its replay to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    /// `since-id`: after this message id.
    Id(MessageId),
    /// `since-seq`: after this seq (takes precedence when both are given).
    Seq(Seq),
}

impl Since {
    fn parse(headers: &Headers) -> Result<Option<Since>, ChatError> {
        if let Some(seq) = parse_number_header(headers, SINCE_SEQ_HEADER)? {
            return Ok(Some(Since::Seq(seq)));
        }
        Ok(parse_number_header(headers, SINCE_ID_HEADER)?.map(Since::Id))
    }
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
                .map_err(|_| ChatError::BadRequest(format!("header '{name}' must be a number")))
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
