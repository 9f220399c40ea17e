//! Test doubles and a harness driving a real `rtchat_stomp::Session` through a
//! `ChatConnection`, the way the driver does, on the in-memory adapters.
#![allow(dead_code)] // each test file uses a different part of the harness

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_core::{
    Appended, Appender, BackendError, Broker, ChatConfig, ChatConnection, ChatError, ChatMessage,
    ChatService, Clock, ConnectionSink, Delivery, Hub, Identity, MessageId, MessageStore,
    NewMessage, OfferError, PendingSend, Ports, RoomEvent, RoomEventSink, RoomId, RoomStore,
    SendOutcome, Seq, TokenError, Tokens,
};
use rtchat_memory::{InProcessBroker, MemoryMessageStore, MemoryPresence, MemoryRoomStore};
use rtchat_stomp::{
    Command, Frame, HeartBeat, Item, Limits, Session, SessionConfig, Status, Version, parse_frame,
};
use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NOW: &str = "2026-11-22T10:00:00.000Z";

/// Tokens are readable text: `valid|<randId>|<tag>|<aud>` or `expired|<randId>|<tag>|<aud>`.
#[derive(Default)]
pub struct FakeTokens;

impl FakeTokens {
    pub fn valid(identity: &Identity) -> String {
        format!("valid|{}|{}|test", identity.rand_id, identity.name_tag)
    }

    pub fn expired(identity: &Identity) -> String {
        format!("expired|{}|{}|test", identity.rand_id, identity.name_tag)
    }

    /// The `aud` a token was issued for.
    pub fn audience(token: &str) -> &str {
        token.rsplit('|').next().unwrap_or_default()
    }
}

impl Tokens for FakeTokens {
    fn issue(&self, identity: &Identity, audience: &str) -> String {
        format!(
            "valid|{}|{}|{audience}",
            identity.rand_id, identity.name_tag
        )
    }

    fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let parts: Vec<&str> = token.split('|').collect();
        let identity = match parts.as_slice() {
            [_, rand_id, tag, _] => Identity::from_parts((*rand_id).to_owned(), (*tag).to_owned()),
            _ => None,
        }
        .ok_or(TokenError::Invalid)?;
        match parts[0] {
            "valid" => Ok(identity),
            "expired" => Err(TokenError::Expired(identity)),
            _ => Err(TokenError::Invalid),
        }
    }
}

pub struct FixedClock;

impl Clock for FixedClock {
    fn now_rfc3339(&self) -> String {
        NOW.to_owned()
    }
}

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The memory store, with hooks run around the next `after` read (to publish "during" a
/// replay) and a switch that makes every call fail.
pub struct TestStore {
    pub inner: MemoryMessageStore,
    before_after: Mutex<Option<Hook>>,
    after_after: Mutex<Option<Hook>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl TestStore {
    pub fn new(inner: MemoryMessageStore) -> Self {
        TestStore {
            inner,
            before_after: Mutex::new(None),
            after_after: Mutex::new(None),
            failing: Default::default(),
        }
    }

    pub fn around_next_after(&self, before: Hook, after: Hook) {
        *self.before_after.lock().expect("lock") = Some(before);
        *self.after_after.lock().expect("lock") = Some(after);
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(BackendError("store down".to_owned()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl MessageStore for TestStore {
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        self.check()?;
        self.inner.append(room, batch).await
    }
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        self.check()?;
        self.inner.head(room).await
    }
    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.check()?;
        self.inner.after_seq(room, after, limit).await
    }
    async fn epoch(&self) -> Result<rtchat_core::LogEpoch, BackendError> {
        self.inner.epoch().await
    }
    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        self.check()?;
        self.inner.newest(room, limit).await
    }
    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.check()?;
        self.inner.before(room, before, limit).await
    }
    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.check()?;
        let hook = self.before_after.lock().expect("lock").take();
        if let Some(hook) = hook {
            hook().await;
        }
        let read = self.inner.after(room, after, limit).await;
        let hook = self.after_after.lock().expect("lock").take();
        if let Some(hook) = hook {
            hook().await;
        }
        read
    }
}

/// Records every event and whether its message was already stored when it was published;
/// then forwards to the in-process broker.
pub struct RecordingBroker {
    pub inner: InProcessBroker,
    pub store: Arc<TestStore>,
    pub events: Mutex<Vec<(RoomEvent, bool)>>,
    pub failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Broker for RecordingBroker {
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BackendError("broker down".to_owned()));
        }
        let stored = match &event {
            RoomEvent::Message(m) => {
                let room = RoomId::parse(&m.room_id).expect("room");
                self.store
                    .inner
                    .after_seq(&room, m.seq - 1, 1)
                    .await?
                    .first()
                    == Some(m)
            }
            _ => true,
        };
        self.events
            .lock()
            .expect("lock")
            .push((event.clone(), stored));
        self.inner.publish(event).await
    }
}

/// The room writers, made explicit: SENDs wait here until the test (or the client harness,
/// after each input) calls [`TestAppender::flush`], which stores them per room in one batch,
/// answers each sender, then publishes, as the driver's writers do.
pub struct TestAppender {
    pub waiting: Mutex<VecDeque<PendingSend>>,
    pub store: Arc<TestStore>,
    pub rooms: Arc<MemoryRoomStore>,
    pub broker: Arc<RecordingBroker>,
    /// While set, `flush` leaves SENDs waiting (a slow store).
    pub held: std::sync::atomic::AtomicBool,
}

impl Appender for TestAppender {
    fn submit(&self, sends: Vec<PendingSend>) {
        self.waiting.lock().expect("lock").extend(sends);
    }
}

impl TestAppender {
    pub async fn flush(&self) {
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        loop {
            let batch: Vec<PendingSend> = {
                let mut waiting = self.waiting.lock().expect("lock");
                let Some(room) = waiting.front().map(|s| s.message.room_id.clone()) else {
                    return;
                };
                let (same, other): (Vec<_>, Vec<_>) =
                    waiting.drain(..).partition(|s| s.message.room_id == room);
                waiting.extend(other);
                same
            };
            let room = batch[0].message.room_id.clone();
            let answer = |error: ChatError| {
                for send in &batch {
                    send.reply.outcome(SendOutcome {
                        ticket: send.ticket,
                        result: Err(error.clone()),
                    });
                }
            };
            match self.rooms.get(&room).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    answer(ChatError::UnknownRoom);
                    continue;
                }
                Err(_) => {
                    answer(ChatError::Unavailable);
                    continue;
                }
            }
            let messages = batch.iter().map(|s| s.message.clone()).collect();
            let stored = match self.store.append(&room, messages).await {
                Ok(stored) => stored,
                Err(_) => {
                    answer(ChatError::NotStored);
                    continue;
                }
            };
            for (send, appended) in batch.iter().zip(&stored) {
                send.reply.outcome(SendOutcome {
                    ticket: send.ticket,
                    result: Ok(appended.message().clone()),
                });
            }
            let events = stored
                .into_iter()
                .map(|a| RoomEvent::Message(a.into_message()))
                .collect();
            let _ = self.broker.publish_all(events).await;
        }
    }
}

pub struct Node {
    pub service: ChatService,
    pub hub: Arc<Hub>,
    pub store: Arc<TestStore>,
    pub broker: Arc<RecordingBroker>,
    pub appender: Arc<TestAppender>,
}

impl Node {
    pub async fn new() -> Node {
        Node::with_config(ChatConfig::default()).await
    }

    pub async fn with_config(config: ChatConfig) -> Node {
        let hub = Arc::new(Hub::new());
        let store = Arc::new(TestStore::new(MemoryMessageStore::new()));
        let broker = Arc::new(RecordingBroker {
            inner: InProcessBroker::new(hub.clone() as Arc<dyn RoomEventSink>),
            store: store.clone(),
            events: Mutex::new(Vec::new()),
            failing: Default::default(),
        });
        let rooms = Arc::new(MemoryRoomStore::new());
        let appender = Arc::new(TestAppender {
            waiting: Mutex::new(VecDeque::new()),
            store: store.clone(),
            rooms: rooms.clone(),
            broker: broker.clone(),
            held: Default::default(),
        });
        let ports = Ports {
            messages: store.clone(),
            rooms,
            presence: Arc::new(MemoryPresence::new()),
            broker: broker.clone(),
            appender: appender.clone(),
            tokens: Arc::new(FakeTokens),
            clock: Arc::new(FixedClock),
        };
        let service = ChatService::new(ports, hub.clone(), config)
            .await
            .expect("service");
        Node {
            service,
            hub,
            store,
            broker,
            appender,
        }
    }

    pub fn client(&self, ip: &str) -> Client {
        self.client_with(ip, SessionConfig::default(), usize::MAX)
    }

    pub fn client_with(&self, ip: &str, mut config: SessionConfig, queue: usize) -> Client {
        config.heart_beat = HeartBeat::OFF;
        let now = Instant::now();
        let sink = Arc::new(QueueSink::new(queue));
        let ip: IpAddr = ip.parse().expect("ip");
        Client {
            session: Session::new(config, now),
            connection: self.service.connection(ip, sink.clone()),
            sink,
            appender: self.appender.clone(),
            now,
        }
    }
}

/// What a connection's queue holds.
pub enum Queued {
    Delivery(Delivery),
    Outcome(SendOutcome),
}

/// The driver's bounded outbound queue, as a plain deque.
pub struct QueueSink {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
}

impl QueueSink {
    pub fn new(capacity: usize) -> Self {
        QueueSink {
            queue: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub fn pop(&self) -> Option<Queued> {
        self.queue.lock().expect("lock").pop_front()
    }

    /// Deliveries queued (outcomes not counted, as in the driver).
    pub fn len(&self) -> usize {
        let queue = self.queue.lock().expect("lock");
        queue
            .iter()
            .filter(|q| matches!(q, Queued::Delivery(_)))
            .count()
    }
}

impl ConnectionSink for QueueSink {
    fn offer(&self, delivery: Delivery) -> Result<(), OfferError> {
        if self.len() >= self.capacity {
            return Err(OfferError::Full);
        }
        self.queue
            .lock()
            .expect("lock")
            .push_back(Queued::Delivery(delivery));
        Ok(())
    }

    fn outcome(&self, outcome: SendOutcome) {
        self.queue
            .lock()
            .expect("lock")
            .push_back(Queued::Outcome(outcome));
    }
}

/// One client connection, driven the way the driver does it.
pub struct Client {
    pub session: Session,
    pub connection: ChatConnection,
    pub sink: Arc<QueueSink>,
    pub appender: Arc<TestAppender>,
    pub now: Instant,
}

impl Client {
    /// Feeds frame text to the session and answers every event; the room writers then
    /// store what was sent (unless held).
    pub async fn send(&mut self, text: &str) {
        self.session.handle_input(text.as_bytes(), self.now);
        while let Some(event) = self.session.poll_event() {
            self.connection.handle(event, &mut self.session, self.now);
        }
        self.connection.submit_sends();
        self.run_jobs().await;
        self.appender.flush().await;
        if self.session.is_closed() || self.session.state() == rtchat_stomp::State::Closing {
            self.connection.closed().await;
        }
    }

    /// Feeds frame text and handles the events, but runs no job yet (the driver's state while
    /// a job waits on a backend).
    pub fn send_without_jobs(&mut self, text: &str) {
        self.session.handle_input(text.as_bytes(), self.now);
        while let Some(event) = self.session.poll_event() {
            self.connection.handle(event, &mut self.session, self.now);
        }
    }

    /// Runs the connection's jobs one after the other, as the driver does.
    pub async fn run_jobs(&mut self) {
        while let Some(job) = self.connection.poll_job() {
            let done = job.await;
            self.connection.on_job_done(done, &mut self.session);
        }
    }

    /// CONNECT with `headers` (lines like `Authorization:Bearer x`); returns the answer.
    pub async fn connect_with(&mut self, headers: &str) -> Frame {
        self.send(&format!(
            "CONNECT\naccept-version:1.2\nhost:chat\n{headers}\n\0"
        ))
        .await;
        let mut frames = self.frames();
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.remove(0)
    }

    /// CONNECT with a valid token for `identity`; expects CONNECTED.
    pub async fn connect(&mut self, identity: &Identity) {
        let frame = self
            .connect_with(&format!(
                "Authorization:Bearer {}\n",
                FakeTokens::valid(identity)
            ))
            .await;
        assert_eq!(frame.command, Command::Connected, "{frame:?}");
    }

    pub async fn subscribe(&mut self, id: &str, destination: &str, extra: &str) {
        self.send(&format!(
            "SUBSCRIBE\nid:{id}\ndestination:{destination}\n{extra}\n\0"
        ))
        .await;
    }

    pub async fn send_chat(&mut self, room: &str, message: &str, receipt: Option<&str>) {
        let body = serde_json::json!({"roomId": room, "message": message}).to_string();
        let receipt = receipt
            .map(|r| format!("receipt:{r}\n"))
            .unwrap_or_default();
        self.send(&format!(
            "SEND\ndestination:/pub/chat\ncontent-type:application/json\n{receipt}\n{body}\0"
        ))
        .await;
    }

    /// Hands every queued delivery and outcome to the connection; false if a delivery was
    /// refused.
    pub fn pump(&mut self) -> bool {
        let mut all_ok = true;
        while let Some(item) = self.sink.pop() {
            match item {
                Queued::Delivery(delivery) => {
                    all_ok &= self.connection.deliver(delivery, &mut self.session);
                }
                Queued::Outcome(outcome) => self.connection.on_outcome(outcome, &mut self.session),
            }
        }
        all_ok
    }

    /// Pumps, then returns every frame written since the last call.
    pub fn frames(&mut self) -> Vec<Frame> {
        self.pump();
        let version = self.session.version().unwrap_or(Version::V1_2);
        std::iter::from_fn(|| self.session.poll_transmit())
            .filter_map(|transmit| {
                let bytes: Bytes = transmit.into_contiguous();
                match parse_frame(&bytes, version, &Limits::default()) {
                    Ok(Status::Complete((Item::Frame(frame), _))) => Some(frame),
                    Ok(Status::Complete((Item::HeartBeat, _))) => None,
                    other => panic!("transmit {bytes:?} does not parse: {other:?}"),
                }
            })
            .collect()
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

pub fn identity(rand_id: &str, tag: &str) -> Identity {
    Identity {
        rand_id: rand_id.to_owned(),
        name_tag: tag.to_owned(),
    }
}

pub fn alice() -> Identity {
    identity("Wren1", "#AAAAAA")
}

pub fn bob() -> Identity {
    identity("Oak2", "#BBBBBB")
}

/// A MESSAGE frame's body as JSON.
pub fn json(frame: &Frame) -> serde_json::Value {
    serde_json::from_slice(&frame.body).unwrap_or_else(|e| panic!("{frame:?}: {e}"))
}

/// The MESSAGE frames for subscription `id`.
pub fn on_subscription<'a>(frames: &'a [Frame], id: &str) -> Vec<&'a Frame> {
    frames
        .iter()
        .filter(|f| f.command == Command::Message && f.get("subscription") == Some(id))
        .collect()
}
