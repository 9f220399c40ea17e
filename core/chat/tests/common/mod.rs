//! A synchronous harness: a real `rtchat_stomp::Session` driven through a `ChatConnection`
//! the way the driver does, with the connection's jobs answered by a small in-memory model of
//! the store, presence and broker ([`Backend`]). No async runtime: the core does no I/O, so
//! the ports it holds for the driver are never called here ([`NoIo`]).
#![allow(dead_code)] // each test file uses a different part of the harness

use async_trait::async_trait;
use bytes::Bytes;
use rtchat_chat::{
    Appended, Appender, BackendError, Broker, ChannelStart, ChatConfig, ChatConnection, ChatError,
    ChatMessage, ChatService, Clock, ConnectionSink, CreateRoomError, Delivery, Hub, Identity, Job,
    JobDone, LogEpoch, MessageId, MessageKey, MessageStore, NewMessage, OfferError, PendingSend,
    Ports, Presence, Room, RoomEvent, RoomEventSink, RoomId, RoomStore, SendOutcome, Seq,
    SessionKey, TokenError, Tokens, VerifiedToken, replay_window,
};
use rtchat_stomp::{
    Command, Frame, HeartBeat, Item, Limits, Session, SessionConfig, Status, Version, parse_frame,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const NOW: &str = "2026-11-22T10:00:00.000Z";
/// [`NOW`] in seconds since the Unix epoch: the wall clock of [`FixedClock`].
pub const NOW_UNIX: u64 = 1_795_341_600;
/// The `exp` of a token made without one: 30 days after [`NOW`].
pub const DEFAULT_EXP: u64 = NOW_UNIX + 30 * 24 * 3600;

/// Tokens are readable text: `valid|<randId>|<tag>|<aud>` or `expired|<randId>|<tag>|<aud>`,
/// optionally followed by `|<exp>` (seconds since the Unix epoch; [`DEFAULT_EXP`] without).
#[derive(Default)]
pub struct FakeTokens;

impl FakeTokens {
    pub fn valid(identity: &Identity) -> String {
        format!("valid|{}|{}|test", identity.rand_id, identity.name_tag)
    }

    /// A valid token for `identity` whose `exp` is `seconds` after [`NOW`].
    pub fn valid_for(identity: &Identity, seconds: u64) -> String {
        format!(
            "valid|{}|{}|test|{}",
            identity.rand_id,
            identity.name_tag,
            NOW_UNIX + seconds
        )
    }

    pub fn expired(identity: &Identity) -> String {
        format!("expired|{}|{}|test", identity.rand_id, identity.name_tag)
    }

    /// The `aud` a token was issued for.
    pub fn audience(token: &str) -> &str {
        token.split('|').nth(3).unwrap_or_default()
    }
}

impl Tokens for FakeTokens {
    fn issue(&self, identity: &Identity, audience: &str) -> String {
        format!(
            "valid|{}|{}|{audience}",
            identity.rand_id, identity.name_tag
        )
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let parts: Vec<&str> = token.split('|').collect();
        let (identity, expires_at) = match parts.as_slice() {
            [_, rand_id, tag, _] => (
                Identity::from_parts((*rand_id).to_owned(), (*tag).to_owned()),
                Some(DEFAULT_EXP),
            ),
            [_, rand_id, tag, _, exp] => (
                Identity::from_parts((*rand_id).to_owned(), (*tag).to_owned()),
                exp.parse().ok(),
            ),
            _ => (None, None),
        };
        let (Some(identity), Some(expires_at)) = (identity, expires_at) else {
            return Err(TokenError::Invalid);
        };
        match parts[0] {
            "valid" => Ok(VerifiedToken {
                identity,
                expires_at,
            }),
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

    fn now_system_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
    }
}

/// The ports that wait on I/O. The service holds them for the driver; the core never calls
/// them, and nothing here could wait for them.
pub struct NoIo;

const NO_IO: &str = "the core does no I/O: its jobs are answered by the harness";

#[async_trait]
impl MessageStore for NoIo {
    async fn append(&self, _: &RoomId, _: Vec<NewMessage>) -> Result<Vec<Appended>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn head(&self, _: &RoomId) -> Result<Seq, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn newest(&self, _: &RoomId, _: usize) -> Result<Vec<ChatMessage>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn before(
        &self,
        _: &RoomId,
        _: MessageId,
        _: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn after(
        &self,
        _: &RoomId,
        _: MessageId,
        _: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn after_seq(
        &self,
        _: &RoomId,
        _: Seq,
        _: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
        unreachable!("{NO_IO}")
    }
}

#[async_trait]
impl RoomStore for NoIo {
    async fn create(&self, _: Room) -> Result<Room, CreateRoomError> {
        unreachable!("{NO_IO}")
    }
    async fn get(&self, _: &RoomId) -> Result<Option<Room>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn list(&self) -> Result<Vec<Room>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn count(&self) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn idle(&self, _: Duration, _: usize) -> Result<Vec<RoomId>, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn remove_idle(&self, _: &[RoomId], _: Duration) -> Result<Vec<RoomId>, BackendError> {
        unreachable!("{NO_IO}")
    }
}

#[async_trait]
impl Presence for NoIo {
    async fn connected(&self, _: &SessionKey) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn disconnected(
        &self,
        _: &SessionKey,
    ) -> Result<(u64, Vec<(RoomId, u64)>), BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn joined(&self, _: &RoomId, _: &SessionKey) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn left(&self, _: &RoomId, _: &SessionKey) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn room_count(&self, _: &RoomId) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn total(&self) -> Result<u64, BackendError> {
        unreachable!("{NO_IO}")
    }
}

#[async_trait]
impl Broker for NoIo {
    async fn publish(&self, _: RoomEvent) -> Result<(), BackendError> {
        unreachable!("{NO_IO}")
    }
    async fn publish_all(&self, _: Vec<RoomEvent>) -> Result<(), BackendError> {
        unreachable!("{NO_IO}")
    }
}

/// Run "during" a read of the model (to publish while a replay is being read).
pub type Hook = Box<dyn FnOnce() + Send>;

/// What the model holds.
#[derive(Default)]
struct State {
    rooms: HashMap<RoomId, Room>,
    /// Each room's log, in seq order (seq `n` at index `n - 1`).
    logs: HashMap<RoomId, Vec<ChatMessage>>,
    last_id: MessageId,
    /// Stored messages by room, author tag and key (a retry stores nothing new).
    keys: HashMap<(RoomId, String, String), ChatMessage>,
    connected: BTreeSet<SessionKey>,
    in_rooms: HashMap<RoomId, BTreeSet<SessionKey>>,
    /// Every store read and write fails.
    store_failing: bool,
    /// Run before and after the next read of the first message after a `since-id`.
    around_next_after: Option<(Hook, Hook)>,
}

/// The store, presence and broker of one node, in memory and synchronous: what the driver's
/// job runner and room writers do against the real ports, done at once. The broker is the
/// node's hub itself, so a publish is fanned out before it returns.
#[derive(Clone)]
pub struct Backend {
    state: Arc<Mutex<State>>,
    hub: Arc<Hub>,
}

impl Backend {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    /// Makes every store read and write fail (or work again).
    pub fn fail_store(&self, failing: bool) {
        self.state().store_failing = failing;
    }

    /// Runs `before` and `after` around the next read of the first message after a
    /// `since-id` (which comes once the head was read).
    pub fn around_next_after(&self, before: Hook, after: Hook) {
        self.state().around_next_after = Some((before, after));
    }

    pub fn create_room(&self, room: Room) {
        self.state().rooms.insert(room.room_id.clone(), room);
    }

    /// Every message stored in `room`, oldest first.
    pub fn stored(&self, room: &str) -> Vec<ChatMessage> {
        let room = RoomId::parse(room).expect("room id");
        self.state().logs.get(&room).cloned().unwrap_or_default()
    }

    fn check_store(&self) -> Result<(), ChatError> {
        if self.state().store_failing {
            Err(ChatError::Unavailable)
        } else {
            Ok(())
        }
    }

    fn ensure_room(&self, room: &RoomId) -> Result<(), ChatError> {
        if self.state().rooms.contains_key(room) {
            Ok(())
        } else {
            Err(ChatError::UnknownRoom)
        }
    }

    /// Stores `batch` in order, as `MessageStore::append` does (a known key returns the
    /// original); `Err` when the store is failing.
    pub fn append(&self, room: &RoomId, batch: Vec<NewMessage>) -> Result<Vec<Appended>, ()> {
        let mut state = self.state();
        if state.store_failing {
            return Err(());
        }
        let mut appended = Vec::new();
        for message in batch {
            let key = (
                room.clone(),
                message.author.name_tag.clone(),
                message.key.as_str().to_owned(),
            );
            if let Some(original) = state.keys.get(&key) {
                appended.push(Appended::Duplicate(original.clone()));
                continue;
            }
            state.last_id += 1;
            let id = state.last_id;
            let log = state.logs.entry(room.clone()).or_default();
            let stored = ChatMessage::stored(id, log.len() as Seq + 1, message);
            log.push(stored.clone());
            state.keys.insert(key, stored.clone());
            appended.push(Appended::Stored(stored));
        }
        Ok(appended)
    }

    fn head(&self, room: &RoomId) -> Result<Seq, ChatError> {
        self.check_store()?;
        Ok(self
            .state()
            .logs
            .get(room)
            .map_or(0, |log| log.len() as Seq))
    }

    fn read(
        &self,
        room: &RoomId,
        keep: impl Fn(&ChatMessage) -> bool,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        self.check_store()?;
        let state = self.state();
        let log = state.logs.get(room).map(Vec::as_slice).unwrap_or_default();
        Ok(log
            .iter()
            .filter(|m| keep(m))
            .take(limit)
            .cloned()
            .collect())
    }

    fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, ChatError> {
        let mut all = self.read(room, |_| true, usize::MAX)?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    /// Fans `event` out on the node, as the in-process broker does.
    pub fn publish(&self, event: RoomEvent) {
        self.hub.on_event(event, Instant::now());
    }

    fn room_count(&self, room: &RoomId) -> u64 {
        self.state()
            .in_rooms
            .get(room)
            .map_or(0, |s| s.len() as u64)
    }

    fn publish_counts(&self, room: Option<&RoomId>) {
        if let Some(room) = room {
            let count = self.room_count(room);
            self.publish(RoomEvent::Presence {
                room_id: room.clone(),
                count,
            });
        }
        let count = self.state().connected.len() as u64;
        self.publish(RoomEvent::Entry { count });
    }

    /// Runs `job` as the driver does against the real ports.
    pub fn answer(&self, job: Job) -> JobDone {
        match job {
            Job::StartChannel {
                session,
                room,
                since,
                join,
                max_replay,
            } => JobDone::ChannelStarted(
                self.start_channel(&session, &room, since, join, max_replay),
            ),
            Job::CountConnections => JobDone::Count(Ok(self.state().connected.len() as u64)),
            Job::CountRoom { room } => {
                JobDone::Count(self.ensure_room(&room).map(|()| self.room_count(&room)))
            }
            Job::History { room, limit } => JobDone::History(
                self.ensure_room(&room)
                    .and_then(|()| self.newest(&room, limit)),
            ),
            Job::AnnounceConnected { session } => {
                self.state().connected.insert(session);
                self.publish_counts(None);
                JobDone::Done
            }
            Job::LeaveRoom { session, room } => {
                if let Some(sessions) = self.state().in_rooms.get_mut(&room) {
                    sessions.remove(&session);
                }
                self.publish_counts(Some(&room));
                JobDone::Done
            }
            Job::Disconnected { session } => {
                let left: Vec<RoomId> = {
                    let mut state = self.state();
                    state.connected.remove(&session);
                    state
                        .in_rooms
                        .iter_mut()
                        .filter_map(|(room, sessions)| {
                            sessions.remove(&session).then(|| room.clone())
                        })
                        .collect()
                };
                for room in left {
                    let count = self.room_count(&room);
                    self.publish(RoomEvent::Presence {
                        room_id: room,
                        count,
                    });
                }
                self.publish_counts(None);
                JobDone::Done
            }
        }
    }

    fn start_channel(
        &self,
        session: &SessionKey,
        room: &RoomId,
        since: Option<rtchat_chat::Since>,
        join: bool,
        max_replay: usize,
    ) -> Result<ChannelStart, ChatError> {
        self.ensure_room(room)?;
        let head = self.head(room)?;
        self.hub.observe_head(room, head, Instant::now());
        let mut missed = Vec::new();
        if let Some(since) = since {
            let first = match since.needs_first_after_id() {
                Some(id) => {
                    let hooks = self.state().around_next_after.take();
                    let (before, after) = match hooks {
                        Some((before, after)) => (Some(before), Some(after)),
                        None => (None, None),
                    };
                    if let Some(before) = before {
                        before();
                    }
                    let read = self.read(room, |m| m.id > id, 1);
                    if let Some(after) = after {
                        after();
                    }
                    read?
                }
                None => Vec::new(),
            };
            let after = since.replay_after(first.first(), head);
            if let Some((from, limit)) = replay_window(after, head, max_replay) {
                missed = self.read(room, |m| m.seq > from, limit)?;
            }
        }
        if join {
            self.state()
                .in_rooms
                .entry(room.clone())
                .or_default()
                .insert(session.clone());
            self.publish_counts(Some(room));
        } else {
            self.publish_counts(None);
        }
        Ok(ChannelStart { head, missed })
    }
}

/// The room writers, made explicit: SENDs wait here until the test (or the client harness,
/// after each input) calls [`TestAppender::flush`], which stores them per room in one batch,
/// answers each sender, then publishes, as the driver's writers do.
pub struct TestAppender {
    pub waiting: Mutex<VecDeque<PendingSend>>,
    pub backend: Backend,
    /// While set, `flush` leaves SENDs waiting (a slow store).
    pub held: AtomicBool,
}

impl Appender for TestAppender {
    fn submit(&self, sends: Vec<PendingSend>) {
        self.waiting.lock().expect("lock").extend(sends);
    }
}

impl TestAppender {
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    pub fn flush(&self) {
        if self.held.load(Ordering::SeqCst) {
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
            if self.backend.ensure_room(&room).is_err() {
                answer(ChatError::UnknownRoom);
                continue;
            }
            let messages = batch.iter().map(|s| s.message.clone()).collect();
            let Ok(stored) = self.backend.append(&room, messages) else {
                answer(ChatError::NotStored);
                continue;
            };
            for (send, appended) in batch.iter().zip(&stored) {
                send.reply.outcome(SendOutcome {
                    ticket: send.ticket,
                    result: Ok(appended.message().clone()),
                });
            }
            for appended in stored {
                self.backend
                    .publish(RoomEvent::Message(appended.into_message()));
            }
        }
    }
}

#[derive(Clone)]
pub struct Node {
    pub service: ChatService,
    pub hub: Arc<Hub>,
    pub backend: Backend,
    pub appender: Arc<TestAppender>,
    pub epoch: LogEpoch,
    posts: Arc<AtomicU64>,
}

impl Node {
    pub fn new() -> Node {
        Node::with_config(ChatConfig::default())
    }

    pub fn with_config(config: ChatConfig) -> Node {
        let hub = Arc::new(Hub::new());
        let backend = Backend {
            state: Arc::default(),
            hub: hub.clone(),
        };
        let appender = Arc::new(TestAppender {
            waiting: Mutex::new(VecDeque::new()),
            backend: backend.clone(),
            held: AtomicBool::new(false),
        });
        let no_io = Arc::new(NoIo);
        let ports = Ports {
            messages: no_io.clone(),
            rooms: no_io.clone(),
            presence: no_io.clone(),
            broker: no_io,
            appender: appender.clone(),
            tokens: Arc::new(FakeTokens),
            clock: Arc::new(FixedClock),
        };
        let epoch = LogEpoch::from_bits(0x5eed);
        let service = ChatService::assemble(ports, hub.clone(), config, epoch.clone());
        let node = Node {
            service,
            hub,
            backend,
            appender,
            epoch,
            posts: Arc::default(),
        };
        node.create_room("lobby", "Lobby");
        node
    }

    pub fn create_room(&self, id: &str, name: &str) -> RoomId {
        let room_id = RoomId::parse(id).expect("room id");
        self.backend.create_room(Room {
            room_id: room_id.clone(),
            name: name.to_owned(),
        });
        room_id
    }

    /// The private room of the two name tags.
    pub fn private_room(&self, a: &str, b: &str) -> RoomId {
        let room_id = self
            .service
            .config()
            .private_room_key
            .room_id(a, b)
            .expect("private room id");
        self.create_room(room_id.as_str(), "Private room")
    }

    /// Stores then publishes one message, as a post from outside a connection does.
    pub fn post(&self, author: &Identity, room: &str, text: &str) -> ChatMessage {
        let room_id = RoomId::parse(room).expect("room id");
        let n = self.posts.fetch_add(1, Ordering::SeqCst);
        let message = NewMessage {
            room_id: room_id.clone(),
            message: text.to_owned(),
            author: author.clone(),
            created_at: NOW.to_owned(),
            ip_address: "10.0".to_owned(),
            key: MessageKey::server_made(&format!("post-{n}")),
        };
        let stored = self
            .backend
            .append(&room_id, vec![message])
            .expect("stored")
            .remove(0)
            .into_message();
        self.backend.publish(RoomEvent::Message(stored.clone()));
        stored
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
            backend: self.backend.clone(),
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
    pub backend: Backend,
    pub now: Instant,
}

impl Client {
    /// Feeds frame text to the session and answers every event, runs the connection's jobs;
    /// the room writers then store what was sent (unless held).
    pub fn send(&mut self, text: &str) {
        self.send_without_jobs(text);
        self.connection.submit_sends();
        self.run_jobs();
        self.appender.flush();
        if self.session.is_closed() || self.session.state() == rtchat_stomp::State::Closing {
            self.close();
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
    pub fn run_jobs(&mut self) {
        while let Some(job) = self.connection.poll_job() {
            let done = self.backend.answer(job);
            self.connection
                .on_job_done(done, &mut self.session, self.now);
        }
    }

    /// The end of the connection, as the driver does it: the job `closed` gives is run.
    pub fn close(&mut self) {
        if let Some(job) = self.connection.closed() {
            assert_eq!(self.backend.answer(job), JobDone::Done);
        }
    }

    /// CONNECT with `headers` (lines like `Authorization:Bearer x`); returns the answer.
    pub fn connect_with(&mut self, headers: &str) -> Frame {
        self.send(&format!(
            "CONNECT\naccept-version:1.2\nhost:chat\n{headers}\n\0"
        ));
        let mut frames = self.frames();
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.remove(0)
    }

    /// CONNECT with a valid token for `identity`; expects CONNECTED.
    pub fn connect(&mut self, identity: &Identity) {
        let frame = self.connect_with(&format!(
            "Authorization:Bearer {}\n",
            FakeTokens::valid(identity)
        ));
        assert_eq!(frame.command, Command::Connected, "{frame:?}");
    }

    pub fn subscribe(&mut self, id: &str, destination: &str, extra: &str) {
        self.send(&format!(
            "SUBSCRIBE\nid:{id}\ndestination:{destination}\n{extra}\n\0"
        ));
    }

    pub fn send_chat(&mut self, room: &str, message: &str, receipt: Option<&str>) {
        let body = serde_json::json!({"roomId": room, "message": message}).to_string();
        let receipt = receipt
            .map(|r| format!("receipt:{r}\n"))
            .unwrap_or_default();
        self.send(&format!(
            "SEND\ndestination:/pub/chat\ncontent-type:application/json\n{receipt}\n{body}\0"
        ));
    }

    /// SENDs `token` (the body, as is) to `/pub/token`, to refresh the session.
    pub fn send_token(&mut self, token: &str, receipt: Option<&str>) {
        let receipt = receipt
            .map(|r| format!("receipt:{r}\n"))
            .unwrap_or_default();
        self.send(&format!(
            "SEND\ndestination:/pub/token\ncontent-type:text/plain\n{receipt}\n{token}\0"
        ));
    }

    /// What the driver does when its sleep until the deadlines ends: the connection's timeout
    /// (the token's expiry), then the session's. Returns what `handle_timeout` returned.
    pub fn timeout(&mut self) -> bool {
        let expired = self.connection.handle_timeout(self.now, &mut self.session);
        self.session.handle_timeout(self.now);
        if self.session.is_closed() || self.session.state() == rtchat_stomp::State::Closing {
            self.close();
        }
        expired
    }

    /// Hands every queued delivery and outcome to the connection; false if a delivery was
    /// refused.
    pub fn pump(&mut self) -> bool {
        let mut all_ok = true;
        while let Some(item) = self.sink.pop() {
            match item {
                Queued::Delivery(delivery) => {
                    all_ok &= self
                        .connection
                        .deliver(delivery, &mut self.session, self.now);
                }
                Queued::Outcome(outcome) => {
                    self.connection
                        .on_outcome(outcome, &mut self.session, self.now)
                }
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
