//! The node-local fan-out: which connection subscribed to which destination, and the
//! encode-once delivery of room events to them.

use crate::destination;
use crate::model::{ChatMessage, MessageId, RoomId};
use crate::ports::{ConnectionSink, Delivery, OfferError, RoomEvent, RoomEventSink};
use bytes::Bytes;
use rtchat_stomp::{Headers, SharedMessage};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

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
    /// Source of `message-id`s for what is not a stored chat message (`p-17`, `e-18`, ...).
    next_message_id: AtomicU64,
}

/// One subscription of one connection.
struct Subscriber {
    connection: ConnectionId,
    sink: Arc<dyn ConnectionSink>,
    subscription: Arc<str>,
}

#[derive(Default)]
struct Subscriptions {
    by_destination: HashMap<String, Vec<Subscriber>>,
    /// Reverse index, so dropping a connection does not scan every destination.
    by_connection: HashMap<ConnectionId, Vec<(Arc<str>, String)>>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub {
            subscriptions: RwLock::new(Subscriptions::default()),
            next_message_id: AtomicU64::new(1),
        }
    }

    /// Registers subscription `subscription` of `connection` on `destination`: from the moment
    /// this returns, every event for `destination` is offered to `sink`, tagged with the same
    /// `subscription` `Arc` (the connection compares pointers to tell a live subscription from
    /// an earlier one that reused its id).
    pub fn subscribe(
        &self,
        destination: &str,
        connection: ConnectionId,
        sink: Arc<dyn ConnectionSink>,
        subscription: Arc<str>,
    ) {
        let mut subs = self.write();
        subs.by_connection
            .entry(connection)
            .or_default()
            .push((subscription.clone(), destination.to_owned()));
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
    pub fn unsubscribe(&self, connection: ConnectionId, subscription: &str) -> bool {
        let mut subs = self.write();
        let Some(owned) = subs.by_connection.get_mut(&connection) else {
            return false;
        };
        let Some(at) = owned.iter().position(|(id, _)| &**id == subscription) else {
            return false;
        };
        let (_, destination) = owned.swap_remove(at);
        if owned.is_empty() {
            subs.by_connection.remove(&connection);
        }
        subs.remove_subscriber(&destination, |s| {
            s.connection == connection && &*s.subscription == subscription
        });
        true
    }

    /// Removes every subscription of `connection`. Idempotent.
    pub fn remove_connection(&self, connection: ConnectionId) {
        let mut subs = self.write();
        let Some(owned) = subs.by_connection.remove(&connection) else {
            return;
        };
        for (_, destination) in owned {
            subs.remove_subscriber(&destination, |s| s.connection == connection);
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

    /// The encoded form of `event`: its destination, the chat message id if any, and the
    /// MESSAGE tail every subscriber shares.
    pub(crate) fn encode(&self, event: &RoomEvent) -> (String, Option<MessageId>, SharedMessage) {
        match event {
            RoomEvent::Message(message) => match RoomId::parse(&message.room_id) {
                Some(room) => (
                    destination::channel(&room),
                    Some(message.id),
                    encode_chat_message(message),
                ),
                // A store never hands out a message for a malformed room id; if a foreign
                // node did, nobody can be subscribed to it either.
                None => (
                    String::new(),
                    Some(message.id),
                    encode_chat_message(message),
                ),
            },
            RoomEvent::Presence { room_id, count } => {
                let message = self.presence_message(room_id, *count);
                (destination::presence(room_id), None, message)
            }
            RoomEvent::Entry { count } => (
                destination::ENTRY.to_owned(),
                None,
                self.entry_message(*count),
            ),
        }
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
            &Headers::new(),
            body,
        )
    }

    /// The MESSAGE for `/sub/channel/entry`: the count as text.
    pub(crate) fn entry_message(&self, count: u64) -> SharedMessage {
        SharedMessage::new(
            destination::ENTRY,
            &self.next_message_id("e"),
            Some(TEXT),
            &Headers::new(),
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
}

impl Subscriptions {
    fn remove_subscriber(&mut self, destination: &str, matches: impl Fn(&Subscriber) -> bool) {
        if let Some(list) = self.by_destination.get_mut(destination) {
            list.retain(|s| !matches(s));
            if list.is_empty() {
                self.by_destination.remove(destination);
            }
        }
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
    /// Encodes `event` once and offers it to every local subscriber of its destination.
    /// Offers never wait (the sink's contract), so iterating under the read lock is short;
    /// connections whose queue is full or gone are dropped from the hub afterwards (the
    /// driver closes a full one as a slow consumer).
    fn on_event(&self, event: RoomEvent) {
        let (destination, message_id, message) = self.encode(&event);
        let mut dropped = Vec::new();
        {
            let subs = self.read();
            let Some(list) = subs.by_destination.get(&destination) else {
                return;
            };
            for subscriber in list {
                let delivery = Delivery {
                    subscription: subscriber.subscription.clone(),
                    message_id,
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
            self.remove_connection(connection);
        }
    }
}

/// The MESSAGE for `/sub/channel/{room}`: the message as JSON, its id as `message-id`, so a
/// replayed message and a live one are byte-for-byte the same.
pub(crate) fn encode_chat_message(message: &ChatMessage) -> SharedMessage {
    let destination = match RoomId::parse(&message.room_id) {
        Some(room) => destination::channel(&room),
        None => String::new(),
    };
    SharedMessage::new(
        &destination,
        &message.id.to_string(),
        Some(JSON),
        &Headers::new(),
        to_json(message),
    )
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
    }

    fn message(id: MessageId, room: &str) -> ChatMessage {
        ChatMessage {
            id,
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
            Arc::from("s1"),
        );
        hub.subscribe(
            "/sub/channel/other",
            ConnectionId(2),
            b.clone(),
            Arc::from("s2"),
        );

        hub.on_event(RoomEvent::Message(message(7, "lobby")));

        let got = a.taken();
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].subscription, "s1");
        assert_eq!(got[0].message_id, Some(7));
        assert_eq!(got[0].message.message_id(), "7");
        assert!(b.taken().is_empty());
    }

    #[test]
    fn one_encoding_is_shared_by_every_subscriber() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new(10), Recorder::new(10));
        hub.subscribe(
            "/sub/presence/lobby",
            ConnectionId(1),
            a.clone(),
            Arc::from("x"),
        );
        hub.subscribe(
            "/sub/presence/lobby",
            ConnectionId(2),
            b.clone(),
            Arc::from("y"),
        );
        hub.on_event(RoomEvent::Presence {
            room_id: lobby(),
            count: 2,
        });
        let (a, b) = (a.taken(), b.taken());
        assert_eq!(a[0].message, b[0].message);
        assert!(a[0].message.message_id().starts_with("p-"));
        assert_eq!(a[0].message_id, None);
    }

    #[test]
    fn unsubscribe_and_remove_connection() {
        let hub = Hub::new();
        let sink = Recorder::new(10);
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(1),
            sink.clone(),
            Arc::from("a"),
        );
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(1),
            sink.clone(),
            Arc::from("b"),
        );
        hub.subscribe(
            "/sub/channel/lobby",
            ConnectionId(2),
            sink.clone(),
            Arc::from("c"),
        );
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 2);

        assert!(hub.unsubscribe(ConnectionId(1), "b"));
        assert!(!hub.unsubscribe(ConnectionId(1), "b"));
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 1);

        hub.remove_connection(ConnectionId(1));
        hub.remove_connection(ConnectionId(1));
        assert_eq!(hub.subscriber_count(destination::ENTRY), 0);
        assert_eq!(hub.subscriber_count("/sub/channel/lobby"), 1);
        assert_eq!(hub.connection_count(), 1);
    }

    #[test]
    fn a_full_sink_is_dropped_and_others_still_receive() {
        let hub = Hub::new();
        let (slow, fast) = (Recorder::new(1), Recorder::new(10));
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(1),
            slow.clone(),
            Arc::from("s"),
        );
        hub.subscribe(
            destination::ENTRY,
            ConnectionId(2),
            fast.clone(),
            Arc::from("f"),
        );
        for count in 1..=3 {
            hub.on_event(RoomEvent::Entry { count });
        }
        assert_eq!(slow.taken().len(), 1);
        assert_eq!(fast.taken().len(), 3);
        assert_eq!(hub.subscriber_count(destination::ENTRY), 1);
    }

    #[test]
    fn an_event_nobody_subscribed_to_is_a_no_op() {
        Hub::new().on_event(RoomEvent::Entry { count: 1 });
    }
}
