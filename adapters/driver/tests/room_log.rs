//! The room log end to end on one node: the room writers (group commit), a broker that
//! reorders, duplicates and loses messages, and the repair task. Whatever the broker does,
//! every subscriber gets the room in seq order with no hole and no duplicate.

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_chat::{
    Appended, BackendError, Broker, ChatConfig, ChatMessage, ChatService, Hub, Identity, MessageId,
    MessageStore, NewMessage, Ports, RoomEvent, RoomEventSink, RoomId, Seq, Tokens,
};
use rtchat_driver::{
    ChatUseCases, DriverConfig, MemoryClient, RepairTask, RoomWriters, Shutdown, WriterConfig,
    memory_pair, run_connection, spawn_room_log_repairs,
};
use rtchat_jwt::JwtTokens;
use rtchat_memory::{
    InProcessBroker, MemoryMessageStore, MemoryPresence, MemoryRoomStore, SystemClock,
};
use rtchat_stomp::{Command, Frame, Item, Limits, Parser};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(20);

/// The memory store, with failures on demand and a count of appends.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryMessageStore,
    /// The next this many appends fail.
    fail_appends: AtomicUsize,
    appends: AtomicUsize,
    /// While set, `head` waits (a store that hangs).
    hold_heads: std::sync::atomic::AtomicBool,
    heads_released: tokio::sync::Notify,
}

#[async_trait]
impl MessageStore for FlakyStore {
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_appends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(BackendError::new("store down".to_owned()));
        }
        self.inner.append(room, batch).await
    }
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        loop {
            // Made before the check: `notify_waiters` wakes it even if not yet polled.
            let released = self.heads_released.notified();
            if !self.hold_heads.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
        self.inner.head(room).await
    }
    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        self.inner.newest(room, limit).await
    }
    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.inner.before(room, before, limit).await
    }
    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.inner.after(room, after, limit).await
    }
    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.inner.after_seq(room, after, limit).await
    }
    async fn epoch(&self) -> Result<rtchat_chat::LogEpoch, BackendError> {
        self.inner.epoch().await
    }
}

/// A broker as bad as at-most-once allows: it holds chat messages back and lets them out in
/// a scrambled order, sends some twice and loses some, driven by a fixed-seed generator.
struct ScramblingBroker {
    hub: Arc<Hub>,
    held: Mutex<(VecDeque<RoomEvent>, u64)>,
    lost: AtomicUsize,
}

impl ScramblingBroker {
    fn next(state: &mut u64) -> u64 {
        // xorshift64: deterministic, good enough to scramble.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Lets out everything still held (in a scrambled order).
    fn release_all(&self) {
        let events: Vec<_> = {
            let mut held = self.held.lock().expect("lock");
            held.0.drain(..).collect()
        };
        for event in events.into_iter().rev() {
            self.hub.on_event(event, Instant::now());
        }
    }
}

#[async_trait]
impl Broker for ScramblingBroker {
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError> {
        if !matches!(event, RoomEvent::Message(_)) {
            self.hub.on_event(event, Instant::now());
            return Ok(());
        }
        let out = {
            let mut guard = self.held.lock().expect("lock");
            let (held, state) = &mut *guard;
            let roll = Self::next(state) % 100;
            if roll < 10 {
                self.lost.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            if roll < 15 {
                held.push_back(event.clone());
            }
            held.push_back(event);
            // Let out a random one of those held, keeping up to 4 back.
            let mut out = Vec::new();
            while held.len() > 4 {
                let at = (Self::next(state) as usize) % held.len();
                if let Some(event) = held.remove(at) {
                    out.push(event);
                }
            }
            out
        };
        for event in out {
            self.hub.on_event(event, Instant::now());
        }
        Ok(())
    }

    async fn publish_all(&self, events: Vec<RoomEvent>) -> Result<(), BackendError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }
}

struct Node {
    service: ChatService,
    hub: Arc<Hub>,
    store: Arc<FlakyStore>,
    tokens: Arc<JwtTokens>,
    shutdown: Shutdown,
    _repairs: RepairTask,
}

async fn node(broker: impl FnOnce(Arc<Hub>) -> Arc<dyn Broker>, writer: WriterConfig) -> Node {
    let hub = Arc::new(Hub::new());
    let tokens = Arc::new(JwtTokens::new(
        b"room-log-test-secret",
        "rtchat".to_owned(),
        Duration::from_secs(3600),
    ));
    let store = Arc::new(FlakyStore::default());
    let rooms = Arc::new(MemoryRoomStore::new());
    let broker = broker(hub.clone());
    let ports = Ports {
        messages: store.clone(),
        rooms: rooms.clone(),
        presence: Arc::new(MemoryPresence::new()),
        broker: broker.clone(),
        appender: Arc::new(RoomWriters::new(store.clone(), rooms, broker, writer)),
        tokens: tokens.clone(),
        clock: Arc::new(SystemClock),
    };
    let config = ChatConfig {
        max_sends_per_second: 0,
        ..ChatConfig::default()
    };
    let service = ChatService::new(ports, hub.clone(), config)
        .await
        .expect("service assembles");
    let repairs = spawn_room_log_repairs(&service);
    Node {
        service,
        hub,
        store,
        tokens,
        shutdown: Shutdown::new(),
        _repairs: repairs,
    }
}

/// One client: its end of the transport and a parser of what the server sends.
struct Client {
    end: MemoryClient,
    parser: Parser,
}

impl Client {
    async fn connect(node: &Node, name: &str) -> Client {
        let (transport, end) = memory_pair(1024);
        let service = node.service.clone();
        let signal = node.shutdown.signal();
        tokio::spawn(async move {
            run_connection(
                transport,
                &service,
                LOCALHOST,
                &DriverConfig::default(),
                signal,
            )
            .await;
        });
        let mut client = Client {
            end,
            parser: Parser::new(Limits::default()),
        };
        let identity = Identity {
            rand_id: name.to_owned(),
            name_tag: format!("#{:0>6}", name.len()),
        };
        let token = node.tokens.issue(&identity, "127.0.0.1");
        client
            .send(&format!(
                "CONNECT\naccept-version:1.2\nhost:rtchat\nAuthorization:Bearer {token}\n\n\0"
            ))
            .await;
        let connected = client.frame().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client
    }

    async fn send(&mut self, text: &str) {
        assert!(self.end.send(text.to_owned()).await, "server is reading");
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(item) = self.parser.next_item().expect("valid STOMP") {
                match item {
                    Item::Frame(frame) => return frame,
                    Item::HeartBeat => continue,
                }
            }
            let bytes: Bytes = tokio::time::timeout(WAIT, self.end.recv())
                .await
                .expect("the server answers in time")
                .expect("the server did not close");
            self.parser.feed(&bytes);
        }
    }

    async fn subscribe(&mut self, extra: &str) {
        self.send(&format!(
            "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\n{extra}receipt:sub\n\n\0"
        ))
        .await;
        let receipt = self.frame().await;
        assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    }

    /// The seqs of the next `count` chat messages.
    async fn seqs(&mut self, count: usize) -> Vec<Seq> {
        let mut seqs = Vec::with_capacity(count);
        while seqs.len() < count {
            let frame = self.frame().await;
            if frame.command == Command::Message {
                let seq = frame.get("seq").expect("seq header");
                seqs.push(seq.parse().expect("seq is a number"));
            }
        }
        seqs
    }
}

fn chat_send(text: &str, receipt: &str) -> String {
    format!(
        "SEND\ndestination:/pub/chat\nreceipt:{receipt}\n\n{{\"roomId\":\"lobby\",\"message\":\"{text}\"}}\0"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_through_a_scrambling_broker_reach_everyone_in_order() {
    let broker = Arc::new(Mutex::new(None::<Arc<ScramblingBroker>>));
    let node = node(
        |hub| {
            let scrambler = Arc::new(ScramblingBroker {
                hub,
                held: Mutex::new((VecDeque::new(), 0x9E37_79B9_7F4A_7C15)),
                lost: AtomicUsize::new(0),
            });
            *broker.lock().expect("lock") = Some(scrambler.clone());
            scrambler
        },
        WriterConfig::default(),
    )
    .await;
    let scrambler = broker.lock().expect("lock").clone().expect("broker built");

    let mut watchers = Vec::new();
    for n in 0..2 {
        let mut watcher = Client::connect(&node, &format!("watcher{n}")).await;
        watcher.subscribe("").await;
        watchers.push(watcher);
    }
    const PUBLISHERS: usize = 3;
    const EACH: usize = 200;
    let mut publishers = Vec::new();
    for n in 0..PUBLISHERS {
        let mut publisher = Client::connect(&node, &format!("publisher{n}")).await;
        publishers.push(tokio::spawn(async move {
            for m in 0..EACH {
                publisher
                    .send(&chat_send(&format!("{n}-{m}"), &format!("r{m}")))
                    .await;
            }
            // Every SEND answered, in the order sent.
            for m in 0..EACH {
                let receipt = publisher.frame().await;
                assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
                assert_eq!(receipt.get("receipt-id"), Some(format!("r{m}").as_str()));
            }
        }));
    }
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    // The broker lets out what it still holds, then "reconnects": what it lost is read from
    // the store, as after a Redis outage.
    scrambler.release_all();
    node.hub.on_reset(Instant::now());

    let total = (PUBLISHERS * EACH) as Seq;
    for watcher in &mut watchers {
        let seqs = watcher.seqs(total as usize).await;
        let expected: Vec<Seq> = (1..=total).collect();
        assert_eq!(seqs, expected, "in order, no hole, no duplicate");
    }
    assert!(
        scrambler.lost.load(Ordering::SeqCst) > 0,
        "the broker did lose some"
    );
    assert!(node.hub.repaired() > 0, "holes were read from the store");
    assert!(
        node.store.appends.load(Ordering::SeqCst) < PUBLISHERS * EACH,
        "SENDs were stored in batches"
    );
}

#[tokio::test]
async fn a_store_that_comes_back_in_time_loses_nothing_and_a_dead_one_is_answered() {
    let writer = WriterConfig {
        answer_within: Duration::from_millis(600),
        min_retry_pause: Duration::from_millis(20),
        max_retry_pause: Duration::from_millis(100),
        ..WriterConfig::default()
    };
    let node = node(|hub| Arc::new(InProcessBroker::new(hub)), writer).await;
    let mut watcher = Client::connect(&node, "watcher").await;
    watcher.subscribe("").await;
    let mut alice = Client::connect(&node, "alice").await;
    alice
        .send("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\n\n\0")
        .await;

    // Two failures, then the store answers: the SEND is stored once and receipted.
    node.store.fail_appends.store(2, Ordering::SeqCst);
    alice.send(&chat_send("kept", "r1")).await;
    let receipt = alice.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(watcher.seqs(1).await, [1]);

    // A store down for longer than the bound: an error naming the SEND, not a RECEIPT.
    node.store.fail_appends.store(usize::MAX, Ordering::SeqCst);
    let sent = tokio::time::Instant::now();
    alice.send(&chat_send("lost", "r2")).await;
    let error = alice.frame().await;
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "answered within the bound"
    );
    assert_eq!(error.command, Command::Message, "{error:?}");
    assert_eq!(error.get("destination"), Some("/user/queue/errors"));
    assert_eq!(error.get("receipt-id"), Some("r2"));
    let body: serde_json::Value = serde_json::from_slice(&error.body).expect("json");
    assert_eq!(body["type"], "NOT_STORED");

    // The store is back; a retry is stored with the next seq: the log has no hole.
    node.store.fail_appends.store(0, Ordering::SeqCst);
    alice.send(&chat_send("retried", "r3")).await;
    assert_eq!(alice.frame().await.get("receipt-id"), Some("r3"));
    assert_eq!(watcher.seqs(1).await, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_subscribe_waits_on_the_store_still_delivers() {
    let node = node(
        |hub| Arc::new(InProcessBroker::new(hub)),
        WriterConfig::default(),
    )
    .await;
    node.service
        .create_room("Garden", Some("garden"))
        .await
        .expect("room");
    let mut watcher = Client::connect(&node, "watcher").await;
    watcher.subscribe("").await;
    node.store.hold_heads.store(true, Ordering::SeqCst);
    watcher
        .send("SUBSCRIBE\nid:g\ndestination:/sub/channel/garden\nreceipt:garden\n\n\0")
        .await;
    // The store hangs on the garden's head; the watcher's connection still works.
    let mut alice = Client::connect(&node, "alice").await;
    alice.send(&chat_send("while it waits", "a1")).await;
    assert_eq!(alice.frame().await.get("receipt-id"), Some("a1"));
    assert_eq!(watcher.seqs(1).await, [1], "delivered while a job waits");
    // Its own SEND waits behind its SUBSCRIBE (frames take effect in order), without
    // holding anything else up.
    watcher.send(&chat_send("me too", "w1")).await;
    let early = tokio::time::timeout(Duration::from_millis(300), watcher.frame()).await;
    assert!(
        early.is_err(),
        "nothing is answered before the SUBSCRIBE: {early:?}"
    );
    node.store.hold_heads.store(false, Ordering::SeqCst);
    node.store.heads_released.notify_waiters();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let frame = watcher.frame().await;
        match frame.command {
            Command::Receipt => {
                answers.push(frame.get("receipt-id").unwrap_or_default().to_owned())
            }
            Command::Message => assert_eq!(frame.get("seq"), Some("2")),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answers, ["garden", "w1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_sends_in_flight_are_stored_and_receipted_before_the_goodbye() {
    let writer = WriterConfig {
        min_retry_pause: Duration::from_millis(50),
        max_retry_pause: Duration::from_millis(100),
        ..WriterConfig::default()
    };
    let node = node(|hub| Arc::new(InProcessBroker::new(hub)), writer).await;
    let mut alice = Client::connect(&node, "alice").await;
    // The store fails a few times first: the SEND is still in flight when shutdown comes.
    node.store.fail_appends.store(3, Ordering::SeqCst);
    alice.send(&chat_send("last words", "r1")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.shutdown.trigger();
    let receipt = alice.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.get("receipt-id"), Some("r1"));
    let goodbye = alice.frame().await;
    assert_eq!(goodbye.command, Command::Error, "{goodbye:?}");
    assert_eq!(goodbye.get("message"), Some("server shutting down"));
    tokio::time::timeout(Duration::from_secs(5), node.shutdown.wait_idle())
        .await
        .expect("the connection ends");
    assert_eq!(
        node.store
            .head(&RoomId::parse("lobby").expect("room"))
            .await
            .expect("head"),
        1,
        "stored once"
    );
}
