//! The room sweeper over the memory store and presence: which rooms a sweep removes, and that
//! the task sweeps by itself.

use rtchat_chat::{
    Appender, ChatError, ChatMessage, ConnectionSink, Delivery, Hub, Identity, KnownRooms,
    MessageKey, MessageStore, NewMessage, OfferError, PendingSend, Presence, Room, RoomId,
    RoomStore, SendOutcome, SessionKey,
};
use rtchat_driver::{RoomSweeperConfig, RoomWriters, WriterConfig, spawn_room_sweeper, sweep};
use rtchat_memory::{InProcessBroker, MemoryPresence, MemoryStore};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const IDLE_FOR: Duration = Duration::from_millis(100);

fn id(name: &str) -> RoomId {
    RoomId::parse(name).expect("room id")
}

async fn create(store: &MemoryStore, name: &str) {
    store
        .create(Room {
            room_id: id(name),
            name: name.to_owned(),
        })
        .await
        .expect("create");
}

/// A message from one author into `room`, with idempotency key `key`.
fn message(room: &str, key: &str, text: &str) -> NewMessage {
    NewMessage {
        room_id: id(room),
        message: text.to_owned(),
        author: Identity {
            rand_id: "Wren1".to_owned(),
            name_tag: "#ABCDEF".to_owned(),
        },
        created_at: "2026-11-22T10:00:00.000Z".to_owned(),
        ip_address: "127.0".to_owned(),
        key: MessageKey::parse(key).expect("key"),
    }
}

async fn say(store: &MemoryStore, room: &str, key: &str) {
    let message = message(room, key, "hello");
    store
        .append(&id(room), vec![message])
        .await
        .expect("append");
}

/// Every room [`every_kind_of_room`] makes.
const ROOMS: [&str; 6] = [
    "lobby",
    "kept",
    "occupied",
    "abandoned",
    "private-0123456789abcdef",
    "talked",
];

async fn rooms_left(store: &MemoryStore) -> BTreeSet<String> {
    let mut left = BTreeSet::new();
    for name in ROOMS {
        if store.get(&id(name)).await.expect("get").is_some() {
            left.insert(name.to_owned());
        }
    }
    left
}

/// Every kind of room: the lobby, a `--room` room, one somebody is in, one with a recent
/// message, and two abandoned ones (one private).
async fn every_kind_of_room() -> (MemoryStore, MemoryPresence) {
    let store = MemoryStore::new();
    let presence = MemoryPresence::new();
    for name in ROOMS {
        create(&store, name).await;
    }
    say(&store, "abandoned", "k1").await;
    let session = SessionKey(Arc::from("node-1"));
    presence.connected(&session).await.expect("connected");
    presence
        .joined(&id("occupied"), &session)
        .await
        .expect("joined");
    tokio::time::sleep(IDLE_FOR * 2).await;
    say(&store, "talked", "k2").await;
    (store, presence)
}

#[tokio::test]
async fn a_sweep_removes_empty_silent_rooms_but_never_the_lobby_or_kept_ones() {
    let (store, presence) = every_kind_of_room().await;
    let config = RoomSweeperConfig::new(IDLE_FOR, vec![id("kept")]);
    let removed = sweep(&store, &presence, &config).await.expect("sweep");
    let removed: BTreeSet<&str> = removed.iter().map(RoomId::as_str).collect();
    assert_eq!(
        removed,
        BTreeSet::from(["abandoned", "private-0123456789abcdef"])
    );
    assert_eq!(
        rooms_left(&store).await,
        BTreeSet::from(["lobby", "kept", "occupied", "talked"].map(str::to_owned))
    );
    assert_eq!(store.newest(&id("abandoned"), 10).await, Ok(Vec::new()));
    // Once everybody left, the room goes too.
    presence
        .disconnected(&SessionKey(Arc::from("node-1")))
        .await
        .expect("disconnected");
    let removed = sweep(&store, &presence, &config).await.expect("sweep");
    assert_eq!(removed, vec![id("occupied")]);
}

#[tokio::test]
async fn the_sweeper_sweeps_by_itself() {
    let (store, presence) = every_kind_of_room().await;
    // The node had seen the rooms it is about to remove: it must forget them.
    let known = Arc::new(KnownRooms::default());
    let now = tokio::time::Instant::now().into_std();
    known.remember(&id("abandoned"), now);
    known.remember(&id("kept"), now);
    let _sweeper = spawn_room_sweeper(
        Arc::new(store.clone()),
        Arc::new(presence),
        RoomSweeperConfig::new(IDLE_FOR, vec![id("kept")]),
        vec![known.clone()],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rooms_left(&store).await.contains("abandoned") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper never removed the abandoned room"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rooms_left(&store).await.contains("lobby"));
    assert!(rooms_left(&store).await.contains("kept"));
    assert!(rooms_left(&store).await.contains("occupied"));
    let now = tokio::time::Instant::now().into_std();
    assert!(
        !known.knows(&id("abandoned"), now),
        "a removed room stays known"
    );
    assert!(known.knows(&id("kept"), now));
}

/// Collects the outcomes of SENDs handed to the writers.
#[derive(Default)]
struct Outcomes(std::sync::Mutex<Vec<SendOutcome>>);

impl ConnectionSink for Outcomes {
    fn offer(&self, _delivery: Delivery) -> Result<(), OfferError> {
        Ok(())
    }

    fn outcome(&self, outcome: SendOutcome) {
        self.0.lock().expect("outcomes lock").push(outcome);
    }
}

/// Hands one SEND for `room` to `writers` and waits for its outcome.
async fn send_through(
    writers: &RoomWriters,
    room: &str,
    key: &str,
) -> Result<ChatMessage, ChatError> {
    let outcomes = Arc::new(Outcomes::default());
    writers.submit(vec![PendingSend {
        message: message(room, key, "still here?"),
        reply: outcomes.clone(),
        ticket: 7,
        received: tokio::time::Instant::now().into_std(),
    }]);
    loop {
        if let Some(outcome) = outcomes.0.lock().expect("outcomes lock").pop() {
            assert_eq!(outcome.ticket, 7);
            return outcome.result;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_room_removed_by_another_node_is_unknown_to_writers_that_had_seen_it() {
    let (store, _presence) = every_kind_of_room().await;
    let shared = Arc::new(store.clone());
    let writers = RoomWriters::new(
        shared.clone(),
        shared.clone(),
        Arc::new(InProcessBroker::new(Arc::new(Hub::new()))),
        WriterConfig::default(),
    );
    let stored = send_through(&writers, "abandoned", "s1").await;
    assert!(stored.is_ok(), "{stored:?}");
    let now = tokio::time::Instant::now().into_std();
    assert!(writers.known_rooms().knows(&id("abandoned"), now));
    // Another node's sweeper removes it (the message just sent makes it active again, so
    // wait out the TTL first); this node's writers still hold their sighting.
    tokio::time::sleep(IDLE_FOR * 2).await;
    let removed = store
        .remove_idle(&[id("abandoned")], IDLE_FOR)
        .await
        .expect("remove");
    assert_eq!(removed, vec![id("abandoned")]);
    let now = tokio::time::Instant::now().into_std();
    assert!(writers.known_rooms().knows(&id("abandoned"), now));
    let started = tokio::time::Instant::now();
    assert_eq!(
        send_through(&writers, "abandoned", "s2").await,
        Err(ChatError::UnknownRoom)
    );
    // Answered at once, not after retrying the append until the answer deadline.
    assert!(started.elapsed() < WriterConfig::default().answer_within / 2);
    let now = tokio::time::Instant::now().into_std();
    assert!(!writers.known_rooms().knows(&id("abandoned"), now));
    assert_eq!(store.newest(&id("abandoned"), 10).await, Ok(Vec::new()));
}
