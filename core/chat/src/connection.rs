//! One STOMP connection's view of the chat: maps the engine's [`Event`]s to the contract's
//! destinations and answers through the [`Session`].
//!
//! Authentication: CONNECT carries `Authorization: Bearer <token>`. Some STOMP clients cannot
//! set custom CONNECT headers, so the bare token (or `Bearer <token>`) is also accepted in
//! `passcode`, then in `login`; the first of the three that is present is the one checked.
//!
//! Errors the contract sends to `/user/queue/errors` go there only if the client subscribed
//! to it (like Spring's `@SendToUser`), and never end the session. An error answers a frame
//! instead of its RECEIPT: a RECEIPT always means the frame's effect happened.

use crate::destination::{self, SendTarget, SubscribeTarget};
use crate::envelope::Envelope;
use crate::hub::{self, ConnectionId, JSON};
use crate::model::{ChatMessage, Identity, MessageId, RoomId};
use crate::ports::{BackendError, ConnectionSink, Delivery, RoomEvent, SessionKey};
use crate::service::{ChatError, ChatService};
use bytes::Bytes;
use rtchat_stomp::{
    ConnectRequest, DeliverError, Event, Headers, ReceiptId, Session, SharedMessage, TokenBucket,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The SUBSCRIBE header asking for a replay of what was missed after a message id.
pub const SINCE_ID_HEADER: &str = "since-id";
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
    /// Presence was told about this session, so it must be told when it ends.
    announced: bool,
    closed: bool,
}

/// What the connection remembers of one subscription.
struct Subscription {
    /// The same `Arc` the hub tags deliveries with: a delivery whose `Arc` is another one was
    /// queued for an earlier subscription that had the same id, and is dropped.
    handle: Arc<str>,
    target: SubscribeTarget,
    /// After a `since-id` replay: the highest id the client already has. Live messages up to
    /// it were in the replay (or before `since-id`) and are dropped, so none arrives twice.
    /// Only the replay sets it: across nodes, live messages may arrive slightly out of id
    /// order, and a general "drop anything older than the last" rule would lose those.
    replayed_up_to: Option<MessageId>,
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
            announced: false,
            closed: false,
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
                body,
                receipt,
                ..
            } => {
                self.on_send(&destination, &body, receipt, session, now)
                    .await
            }
            Event::Subscribe {
                id,
                destination,
                headers,
                receipt,
                ..
            } => {
                let outcome = if self.subscribes.try_take(now) {
                    self.on_subscribe(&id, &destination, &headers, session)
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
            // Acks only matter to the engine's bookkeeping; a held COMMIT's frames were
            // handled as the events before this one.
            Event::Ack { receipt, .. }
            | Event::Nack { receipt, .. }
            | Event::Commit { receipt, .. } => send_receipt(session, receipt),
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
        if let (Some(id), Some(up_to)) = (delivery.message_id, subscription.replayed_up_to)
            && id <= up_to
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

    async fn on_send(
        &mut self,
        destination: &str,
        body: &Bytes,
        receipt: Option<ReceiptId>,
        session: &mut Session,
        now: Instant,
    ) {
        match self.post(destination, body, now).await {
            // The RECEIPT goes only now that the message is stored.
            Ok(_) => send_receipt(session, receipt),
            Err(error) => self.send_error(session, &error),
        }
    }

    async fn post(
        &mut self,
        destination: &str,
        body: &Bytes,
        now: Instant,
    ) -> Result<ChatMessage, ChatError> {
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
        // The engine yields SEND only on an accepted session, so this is always set.
        let author = self.identity.as_ref().ok_or(ChatError::InvalidToken)?;
        // Name and tag come from the token, never from the body.
        self.service
            .post_message(author, self.client, &send.room_id, &send.message)
            .await
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE ----

    async fn on_subscribe(
        &mut self,
        id: &str,
        destination: &str,
        headers: &Headers,
        session: &mut Session,
    ) -> Result<(), ChatError> {
        let target = SubscribeTarget::parse(destination)?;
        match &target {
            SubscribeTarget::Channel(room) => {
                self.service.ensure_room(room).await?;
                let since = parse_number_header(headers, SINCE_ID_HEADER)?;
                // Presence counts sessions: a second subscription to the same room changes
                // no room count, so its presence subscribers are not told.
                let already_in_room = self.in_room(room);
                // Registered before the replay reads the store: whatever is published from
                // now on is queued for us, and whatever was stored before the read is in the
                // replay. The overlap is dropped by `replayed_up_to`; there is no gap.
                let handle = self.register(id, &destination::channel(room), target.clone());
                if let Some(since) = since {
                    self.replay(&handle, room, since, session).await?;
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
                replayed_up_to: None,
            },
        );
        handle
    }

    /// Sends what was stored after `since`, oldest first, straight to the session; live
    /// deliveries meanwhile wait in the sink's queue (the driver cannot call `deliver` while
    /// `handle` runs) and are de-duplicated against the replay when they come.
    ///
    /// At most `max_replay` messages: when more were missed, the newest `max_replay` are sent,
    /// so the client is left with one gap at the far end (which it pages in over
    /// `GET /message/lastMessageId`) rather than one between the replay and live messages.
    async fn replay(
        &mut self,
        handle: &Arc<str>,
        room: &RoomId,
        since: MessageId,
        session: &mut Session,
    ) -> Result<(), ChatError> {
        let max = self.service.config().max_replay;
        let store = &self.service.ports().messages;
        let mut missed = store
            .after(room, since, max.saturating_add(1))
            .await
            .map_err(|_| ChatError::Unavailable)?;
        if missed.len() > max {
            missed = store
                .newest(room, max)
                .await
                .map_err(|_| ChatError::Unavailable)?;
            missed.reverse();
            missed.retain(|message| message.id > since);
        }
        let up_to = missed.last().map_or(since, |last| last.id.max(since));
        if let Some(subscription) = self.subscriptions.get_mut(&**handle) {
            subscription.replayed_up_to = Some(up_to);
        }
        for message in &missed {
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
        let Some(queue) = &self.error_queue else {
            return;
        };
        let message = SharedMessage::new(
            destination::ERROR_QUEUE,
            &self.service.hub().next_message_id("err"),
            Some(JSON),
            &Headers::new(),
            hub::to_json(&Envelope::<()>::failure(error)),
        );
        put_on_wire(session, queue, &message);
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
