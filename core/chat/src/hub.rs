//! The node-local fan-out: which connection subscribed to which destination, and the
//! encode-once delivery of room events to them. Chat messages pass through the node's
//! [`RoomLog`] first, so every room reaches its subscribers in seq order with no hole.

use crate::destination::{self, SubscribeTarget};
use crate::metrics::{LiveCounts, Metrics};
use crate::model::{ChatMessage, LogEpoch, RoomId, Seq};
use crate::ports::{ConnectionSink, Delivery, OfferError, RoomEvent, RoomEventSink};
use crate::room_log::{Repair, RoomLog, RoomLogConfig};
use bytes::Bytes;
use rtchat_stomp::{Headers, SharedMessage, SubscriptionKey};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

/// The MESSAGE header carrying a chat message's seq.
pub const SEQ_HEADER: &str = "seq";
/// The CONNECTED and chat MESSAGE header carrying the store's log epoch.
pub const EPOCH_HEADER: &str = "epoch";

/// A connection on this node, unique for the hub's lifetime (see [`crate::ChatService::connection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The content type of chat messages, presence counts, history replies and errors.
pub(crate) const JSON: &str = "application/json";
/// The content type of the entry count.
const TEXT: &str = "text/plain";

/// The node's subscriptions per destination. The broker adapter calls it as the node's
/// [`RoomEventSink`]; it encodes each event once as a `SharedMessage` and offers it to every
/// local subscriber's sink without waiting.
pub struct Hub {
    subscriptions: RwLock<Subscriptions>,
    /// The order of every room with local subscribers. Fan-out of chat messages happens under
    /// this lock, so two threads handing in messages cannot overtake each other's deliveries.
    log: Mutex<RoomLog>,
    /// Called when the log has a new deadline or store read (the node's repair task waits
    /// on it).
    log_waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Source of `message-id`s for what is not a stored chat message (`p-17`, `e-18`, ...).
    next_message_id: AtomicU64,
    /// The store's log epoch, sent with every chat MESSAGE (set by the service at start).
    epoch: OnceLock<LogEpoch>,
    /// The node's counters (`/metrics`).
    metrics: Arc<Metrics>,
}

/// One subscription of one connection: (`connection`, `subscription`) names it on this node
/// for its whole life, as the key is never reused by the connection's session.
struct Subscriber {
    connection: ConnectionId,
    sink: Arc<dyn ConnectionSink>,
    subscription: SubscriptionKey,
}

#[derive(Default)]
struct Subscriptions {
    by_destination: HashMap<String, Vec<Subscriber>>,
    /// Reverse index, so dropping a connection does not scan every destination.
    by_connection: HashMap<ConnectionId, Vec<(SubscriptionKey, String)>>,
}

impl Hub {
    /// An empty hub with the default [`RoomLogConfig`].
    pub fn new() -> Self {
        Self::with_log_config(RoomLogConfig::default())
    }

    /// An empty hub whose room log waits and repairs as `config` says.
    pub fn with_log_config(config: RoomLogConfig) -> Self {
        Hub {
            subscriptions: RwLock::new(Subscriptions::default()),
            log: Mutex::new(RoomLog::new(config)),
            log_waker: OnceLock::new(),
            next_message_id: AtomicU64::new(1),
            epoch: OnceLock::new(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The node's counters: the driver, the writers and the adapters add to them.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The node's metrics as OpenMetrics text (`GET /metrics`).
    pub fn encode_metrics(&self) -> String {
        let live = LiveCounts {
            subscriptions: self.subscription_count() as u64,
            repaired: self.repaired(),
        };
        self.metrics.encode(live)
    }

    /// Subscriptions registered on this node.
    pub fn subscription_count(&self) -> usize {
        self.read().by_connection.values().map(Vec::len).sum()
    }

    /// Registers the node's repair task: `wake` is called whenever the room log has a new
    /// deadline or a store read to make (see [`Hub::handle_log_timeout`]). Only the first
    /// call counts.
    pub fn set_log_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.log_waker.set(wake);
    }

    /// The store's log epoch, sent with every chat MESSAGE from now on. Only the first call
    /// counts (the service sets it when it starts).
    pub fn set_epoch(&self, epoch: LogEpoch) {
        let _ = self.epoch.set(epoch);
    }

    /// When [`Hub::handle_log_timeout`] should be called next.
    pub fn poll_log_timeout(&self) -> Option<Instant> {
        self.lock_log().poll_timeout()
    }

    /// Runs the room log's due timers; returns the store reads it needs. Answer each with
    /// [`Hub::on_repaired`].
    pub fn handle_log_timeout(&self, now: Instant) -> Vec<Repair> {
        let mut log = self.lock_log();
        log.handle_timeout(now);
        std::iter::from_fn(|| log.poll_repair()).collect()
    }

    /// The store's answer to `repair` (`None`: the read failed); fans out what it releases.
    pub fn on_repaired(&self, repair: &Repair, read: Option<Vec<ChatMessage>>, now: Instant) {
        let mut log = self.lock_log();
        log.on_repaired(repair, read, now);
        self.fan_out_released(&mut log);
        drop(log);
        self.wake_log();
    }

    /// A subscriber of `room` read the store's head `head` (see [`RoomLog::observe_head`]).
    pub fn observe_head(&self, room: &RoomId, head: Seq, now: Instant) {
        let mut log = self.lock_log();
        log.observe_head(room, head, now);
        self.fan_out_released(&mut log);
        drop(log);
        self.wake_log();
    }

    /// Messages read from the store to fill holes since the start.
    pub fn repaired(&self) -> u64 {
        self.lock_log().repaired()
    }

    /// Registers subscription `subscription` of `connection` on `destination`: from the moment
    /// this returns, every event for `destination` is offered to `sink`, tagged with
    /// `subscription` (the key the connection's session gave it, never reused: a delivery for
    /// a subscription that ended finds nothing, even if a later one took its id).
    pub fn subscribe(
        &self,
        destination: &str,
        connection: ConnectionId,
        sink: Arc<dyn ConnectionSink>,
        subscription: SubscriptionKey,
    ) {
        // Registered with the log locked (the order is always log, then subscriptions), so a
        // room is never untracked while a subscriber of it is being added.
        let mut log = self.lock_log();
        if let Ok(SubscribeTarget::Channel(room)) = SubscribeTarget::parse(destination) {
            log.track(&room);
        }
        let mut subs = self.write();
        subs.by_connection
            .entry(connection)
            .or_default()
            .push((subscription, destination.to_owned()));
        subs.by_destination
            .entry(destination.to_owned())
            .or_default()
            .push(Subscriber {
                connection,
                sink,
                subscription,
            });
    }

    /// Removes subscription `subscription` of `connection`; false if it was not registered.
    pub fn unsubscribe(&self, connection: ConnectionId, subscription: SubscriptionKey) -> bool {
        let mut subs = self.write();
        let Some(owned) = subs.by_connection.get_mut(&connection) else {
            return false;
        };
        let Some(at) = owned.iter().position(|(key, _)| *key == subscription) else {
            return false;
        };
        let (_, destination) = owned.swap_remove(at);
        if owned.is_empty() {
            subs.by_connection.remove(&connection);
        }
        let emptied = subs.remove_subscriber(&destination, |s| {
            s.connection == connection && s.subscription == subscription
        });
        drop(subs);
        if emptied {
            self.untrack(&destination);
        }
        true
    }

    /// Removes every subscription of `connection`. Idempotent.
    pub fn remove_connection(&self, connection: ConnectionId) {
        let mut subs = self.write();
        let Some(owned) = subs.by_connection.remove(&connection) else {
            return;
        };
        let mut emptied = Vec::new();
        for (_, destination) in owned {
            if subs.remove_subscriber(&destination, |s| s.connection == connection) {
                emptied.push(destination);
            }
        }
        drop(subs);
        for destination in emptied {
            self.untrack(&destination);
        }
    }

    /// The last subscriber of `destination` left: a room channel stops being ordered here.
    fn untrack(&self, destination: &str) {
        if let Ok(SubscribeTarget::Channel(room)) = SubscribeTarget::parse(destination) {
            let mut log = self.lock_log();
            // A subscriber may have come back between the two locks.
            if self.subscriber_count(destination) == 0 {
                log.untrack(&room);
            }
        }
    }

    /// How many local subscriptions `destination` has (for metrics and tests).
    pub fn subscriber_count(&self, destination: &str) -> usize {
        self.read()
            .by_destination
            .get(destination)
            .map_or(0, Vec::len)
    }

    /// How many connections have at least one subscription here.
    pub fn connection_count(&self) -> usize {
        self.read().by_connection.len()
    }

    /// A `message-id` unique on this hub for a message that is not a stored chat message.
    pub(crate) fn next_message_id(&self, prefix: &str) -> String {
        let n = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{n}")
    }

    /// The MESSAGE for `/sub/channel/{room}`: the message as JSON, its id as `message-id`, its
    /// seq as `seq` and the store's `epoch`, so a replayed message and a live one are
    /// byte-for-byte the same.
    pub(crate) fn encode_chat(&self, message: &ChatMessage) -> SharedMessage {
        let destination = match RoomId::parse(&message.room_id) {
            Some(room) => destination::channel(&room),
            None => String::new(),
        };
        let mut headers: Headers = [(SEQ_HEADER, message.seq.to_string())]
            .into_iter()
            .collect();
        self.add_epoch(&mut headers);
        SharedMessage::new(
            &destination,
            &message.id.to_string(),
            Some(JSON),
            &headers,
            to_json(message),
        )
    }

    /// Adds the store's log epoch to a MESSAGE's `headers`: every MESSAGE carries it.
    pub(crate) fn add_epoch(&self, headers: &mut Headers) {
        if let Some(epoch) = self.epoch.get() {
            headers.push(EPOCH_HEADER, epoch.as_str());
        }
    }

    /// Headers with only the log epoch.
    pub(crate) fn epoch_headers(&self) -> Headers {
        let mut headers = Headers::new();
        self.add_epoch(&mut headers);
        headers
    }

    /// The MESSAGE for `/sub/presence/{room}`: `{"roomId","count"}`.
    pub(crate) fn presence_message(&self, room: &RoomId, count: u64) -> SharedMessage {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct PresenceBody<'a> {
            room_id: &'a RoomId,
            count: u64,
        }
        let body = to_json(&PresenceBody {
            room_id: room,
            count,
        });
        SharedMessage::new(
            &destination::presence(room),
            &self.next_message_id("p"),
            Some(JSON),
            &self.epoch_headers(),
            body,
        )
    }

    /// The MESSAGE for `/sub/channel/entry`: the count as text.
    pub(crate) fn entry_message(&self, count: u64) -> SharedMessage {
        SharedMessage::new(
            destination::ENTRY,
            &self.next_message_id("e"),
            Some(TEXT),
            &self.epoch_headers(),
            Bytes::from(count.to_string()),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Subscriptions> {
        // Nothing panics while holding the lock, and every update leaves the maps consistent,
        // so a poisoned lock still holds good data.
        self.subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Subscriptions> {
        self.subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, RoomLog> {
        // Every log update leaves it consistent, so a poisoned lock still holds good data.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_log(&self) {
        if let Some(wake) = self.log_waker.get() {
            wake();
        }
    }

    /// Fans out, in order, what the log released (called with the log locked).
    fn fan_out_released(&self, log: &mut RoomLog) {
        while let Some(message) = log.poll_deliver() {
            let Some(room) = RoomId::parse(&message.room_id) else {
                continue;
            };
            let seq = message.seq;
            self.fan_out(
                &destination::channel(&room),
                Some(seq),
                self.encode_chat(&message),
            );
        }
    }

    /// Offers `message` to every local subscriber of `destination`; connections whose queue
    /// is full or gone are dropped from the hub afterwards (the driver closes a full one as a
    /// slow consumer). Offers never wait, so iterating under the read lock is short.
    fn fan_out(&self, destination: &str, seq: Option<Seq>, message: SharedMessage) {
        let mut dropped = Vec::new();
        {
            let subs = self.read();
            let Some(list) = subs.by_destination.get(destination) else {
                return;
            };
            for subscriber in list {
                let delivery = Delivery {
                    subscription: subscriber.subscription,
                    seq,
                    message: message.clone(),
                };
                match subscriber.sink.offer(delivery) {
                    Ok(()) => {}
                    Err(OfferError::Full | OfferError::Closed) => {
                        dropped.push(subscriber.connection)
                    }
                }
            }
        }
        for connection in dropped {
            self.remove_connection_later(connection);
        }
    }

    /// Like [`Hub::remove_connection`], but safe while the log is locked: removing the
    /// subscriptions must not untrack rooms here (that takes the log lock again), so rooms
    /// emptied this way stay tracked until their next subscriber change.
    fn remove_connection_later(&self, connection: ConnectionId) {
        let mut subs = self.write();
        let Some(owned) = subs.by_connection.remove(&connection) else {
            return;
        };
        for (_, destination) in owned {
            subs.remove_subscriber(&destination, |s| s.connection == connection);
        }
    }
}

impl Subscriptions {
    /// Removes the matching subscribers of `destination`; true when none is left.
    fn remove_subscriber(
        &mut self,
        destination: &str,
        matches: impl Fn(&Subscriber) -> bool,
    ) -> bool {
        let Some(list) = self.by_destination.get_mut(destination) else {
            return false;
        };
        list.retain(|s| !matches(s));
        if list.is_empty() {
            self.by_destination.remove(destination);
            return true;
        }
        false
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subs = self.read();
        f.debug_struct("Hub")
            .field("destinations", &subs.by_destination.len())
            .field("connections", &subs.by_connection.len())
            .finish()
    }
}

impl RoomEventSink for Hub {
    /// Chat messages go through the room log (held, reordered, repaired) and are fanned out
    /// in seq order; counts are fanned out as they come. Each is encoded once.
    fn on_event(&self, event: RoomEvent, now: Instant) {
        match event {
            RoomEvent::Message(message) => {
                let mut log = self.lock_log();
                log.on_message(message, now);
                self.fan_out_released(&mut log);
                let timers = log.take_timers_changed();
                drop(log);
                if timers {
                    self.wake_log();
                }
            }
            RoomEvent::Presence { room_id, count } => {
                let message = self.presence_message(&room_id, count);
                self.fan_out(&destination::presence(&room_id), None, message);
            }
            RoomEvent::Entry { count } => {
                self.fan_out(destination::ENTRY, None, self.entry_message(count));
            }
        }
    }

    fn on_reset(&self, now: Instant) {
        self.metrics.broker_reset();
        self.lock_log().on_reset(now);
        self.wake_log();
    }
}

/// JSON of a value made of strings and numbers only, which cannot fail to serialize.
pub(crate) fn to_json(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps what it is offered, up to `capacity`.
    struct Recorder {
        deliveries: Mutex<Vec<Delivery>>,
        capacity: usize,
    }

    impl Recorder {
        fn new(capacity: usize) -> Arc<Self> {
            Arc::new(Recorder {
                deliveries: Mutex::new(Vec::new()),
                capacity,
            })
        }

        fn taken(&self) -> Vec<Delivery> {
            std::mem::take(&mut *self.deliveries.lock().expect("lock"))
        }
    }

    impl ConnectionSink for Recorder {
        fn offer(&self, delivery: Delivery) -> Result<(), OfferError> {
            let mut deliveries = self.deliveries.lock().expect("lock");
            if deliveries.len() >= self.capacity {
                return Err(OfferError::Full);
            }
            deliveries.push(delivery);
            Ok(())
        }

        fn outcome(&self, _: crate::ports::SendOutcome) {}
    }

    fn message(seq: Seq, room: &str) -> ChatMessage {
        ChatMessage {
            id: seq + 100,
            seq,
            room_id: room.to_owned(),
            message: "hi".to_owned(),
            rand_id: "Wren1".to_owned(),
            name_tag: "#ABCDEF".to_owned(),
            created_at: "2026-11-22T10:00:00.000Z".to_owned(),
            ip_address: "10.0".to_owned(),
        }
    }

    fn lobby() -> RoomId {
        RoomId::parse("lobby").expect("room id")
    }

    #[test]
    fn events_reach_only_the_subscribers_of_their_destination() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new(10), Recorder::new(10));
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(1),
            a.clone(),
            SubscriptionKey(1),
        );
        hub.subscribe(
            "/sub/channel/other",
            ConnectionId(2),
            b.clone(),
            SubscriptionKey(2),
        );

        hub.observe_head(&lobby(), 6, Instant::now());
        hub.on_event(RoomEvent::Message(message(7, "lobby")), Instant::now());

        let got = a.taken();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].subscription, SubscriptionKey(1));
        assert_eq!(got[0].seq, Some(7));
        assert_eq!(got[0].message.message_id(), "107");
        assert!(b.taken().is_empty());
    }

    #[test]
    fn chat_messages_reach_subscribers_in_seq_order() {
        let hub = Hub::new();
        let sink = Recorder::new(10);
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(1),
            sink.clone(),
            SubscriptionKey(3),
        );
        let now = Instant::now();
        hub.observe_head(&lobby(), 0, now);
        for seq in [2, 3, 1] {
            hub.on_event(RoomEvent::Message(message(seq, "lobby")), now);
        }
        let seqs: Vec<_> = sink.taken().iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn a_room_without_local_subscribers_is_not_ordered_or_kept() {
        let hub = Hub::new();
        let sink = Recorder::new(10);
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(1),
            sink.clone(),
            SubscriptionKey(3),
        );
        hub.observe_head(&lobby(), 0, Instant::now());
        assert!(hub.unsubscribe(ConnectionId(1), SubscriptionKey(3)));
        assert!(!hub.lock_log().is_tracked(&lobby()));
        hub.on_event(RoomEvent::Message(message(5, "lobby")), Instant::now());
        assert_eq!(hub.poll_log_timeout(), None);
    }

    #[test]
    fn one_encoding_is_shared_by_every_subscriber() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new(10), Recorder::new(10));
        hub.subscribe(
            "/sub/presence/lobby",
            ConnectionId(1),
            a.clone(),
            SubscriptionKey(4),
        );
        hub.subscribe(
            "/sub/presence/lobby",
            ConnectionId(2),
            b.clone(),
            SubscriptionKey(5),
        );
        hub.on_event(
            RoomEvent::Presence {
                room_id: lobby(),
                count: 2,
            },
            Instant::now(),
        );
        let (a, b) = (a.taken(), b.taken());
        assert_eq!(a[0].message, b[0].message);
        assert!(a[0].message.message_id().starts_with("p-"));
        assert_eq!(a[0].seq, None);
    }

    #[test]
    fn unsubscribe_and_remove_connection() {
        let hub = Hub::new();
        let sink = Recorder::new(10);
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(1),
            sink.clone(),
            SubscriptionKey(6),
        );
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(1),
            sink.clone(),
            SubscriptionKey(7),
        );
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(2),
            sink.clone(),
            SubscriptionKey(8),
        );
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 2);

        assert!(hub.unsubscribe(ConnectionId(1), SubscriptionKey(7)));
        assert!(!hub.unsubscribe(ConnectionId(1), SubscriptionKey(7)));
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 1);

        hub.remove_connection(ConnectionId(1));
        hub.remove_connection(ConnectionId(1));
        assert_eq!(hub.subscriber_count(destination::ENTRY), 0);
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 1);
        assert_eq!(hub.connection_count(), 1);
    }

    #[test]
    fn a_key_names_a_subscription_only_together_with_its_connection() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new(10), Recorder::new(10));
        // Each session numbers its subscriptions from 1: the same key on two connections.
        let key = SubscriptionKey(1);
        hub.subscribe(destination::ENTRY, ConnectionId(1), a.clone(), key);
        hub.subscribe(destination::ENTRY, ConnectionId(2), b.clone(), key);
        assert!(hub.unsubscribe(ConnectionId(1), key));
        assert!(!hub.unsubscribe(ConnectionId(3), key));
        hub.on_event(RoomEvent::Entry { count: 1 }, Instant::now());
        assert!(a.taken().is_empty());
        let got = b.taken();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].subscription, key);
    }

    #[test]
    fn a_full_sink_is_dropped_and_others_still_receive() {
        let hub = Hub::new();
        let (slow, fast) = (Recorder::new(1), Recorder::new(10));
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(1),
            slow.clone(),
            SubscriptionKey(3),
        );
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(2),
            fast.clone(),
            SubscriptionKey(9),
        );
        for count in 1..=3 {
            hub.on_event(RoomEvent::Entry { count }, Instant::now());
        }
        assert_eq!(slow.taken().len(), 1);
        assert_eq!(fast.taken().len(), 3);
        assert_eq!(hub.subscriber_count(destination::ENTRY), 1);
    }

    #[test]
    fn an_event_nobody_subscribed_to_is_a_no_op() {
        Hub::new().on_event(RoomEvent::Entry { count: 1 }, Instant::now());
    }
}
