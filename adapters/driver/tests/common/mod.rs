//! Test doubles for the use case and job tests: the in-memory adapters, with a store and a
//! broker that fail on demand and a broker that records what was published.
#![allow(dead_code)] // each test file uses a different part

use async_trait::async_trait;
use rtchat_chat::{
    Appended, BackendError, Broker, ChatConfig, ChatMessage, ChatService, Clock, Hub, Identity,
    LogEpoch, MessageId, MessageStore, NewMessage, Ports, RoomEvent, RoomEventSink, RoomId, Seq,
    TokenError, Tokens, VerifiedToken,
};
use rtchat_driver::{ChatUseCases, RoomWriters, WriterConfig};
use rtchat_memory::{InProcessBroker, MemoryMessageStore, MemoryPresence, MemoryRoomStore};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const NOW: &str = "2026-11-22T10:00:00.000Z";
/// [`NOW`] in seconds since the Unix epoch.
pub const NOW_UNIX: u64 = 1_795_341_600;

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
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

/// The use cases never look at tokens.
pub struct NoTokens;

impl Tokens for NoTokens {
    fn issue(&self, _: &Identity, _: &str) -> String {
        String::new()
    }

    fn verify_token(&self, _: &str) -> Result<VerifiedToken, TokenError> {
        Err(TokenError::Invalid)
    }
}

pub struct FixedClock;

impl Clock for FixedClock {
    fn now_rfc3339(&self) -> String {
        NOW.to_owned()
    }

    fn now_system_time(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW_UNIX)
    }
}

/// The memory store, with a switch that makes every call but `epoch` fail.
pub struct TestStore {
    pub inner: MemoryMessageStore,
    pub failing: AtomicBool,
}

impl TestStore {
    fn check(&self) -> Result<(), BackendError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(BackendError::new("store down".to_owned()))
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
    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
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
        self.inner.after(room, after, limit).await
    }
}

/// Records every event and whether its message was already stored when it was published;
/// then forwards to the in-process broker.
pub struct RecordingBroker {
    pub inner: InProcessBroker,
    pub store: Arc<TestStore>,
    pub events: Mutex<Vec<(RoomEvent, bool)>>,
    pub failing: AtomicBool,
}

#[async_trait]
impl Broker for RecordingBroker {
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BackendError::new("broker down".to_owned()));
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

    async fn publish_all(&self, events: Vec<RoomEvent>) -> Result<(), BackendError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }
}

pub struct Node {
    pub service: ChatService,
    pub store: Arc<TestStore>,
    pub broker: Arc<RecordingBroker>,
    pub presence: Arc<MemoryPresence>,
}

impl Node {
    pub async fn new() -> Node {
        Node::with_config(ChatConfig::default()).await
    }

    pub async fn with_config(config: ChatConfig) -> Node {
        let hub = Arc::new(Hub::new());
        let store = Arc::new(TestStore {
            inner: MemoryMessageStore::new(),
            failing: AtomicBool::new(false),
        });
        let broker = Arc::new(RecordingBroker {
            inner: InProcessBroker::new(hub.clone() as Arc<dyn RoomEventSink>),
            store: store.clone(),
            events: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
        });
        let rooms = Arc::new(MemoryRoomStore::new());
        let presence = Arc::new(MemoryPresence::new());
        let ports = Ports {
            messages: store.clone(),
            rooms: rooms.clone(),
            presence: presence.clone(),
            broker: broker.clone(),
            appender: Arc::new(RoomWriters::new(
                store.clone(),
                rooms,
                broker.clone(),
                WriterConfig::default(),
            )),
            tokens: Arc::new(NoTokens),
            clock: Arc::new(FixedClock),
        };
        let service = ChatService::new(ports, hub, config).await.expect("service");
        Node {
            service,
            store,
            broker,
            presence,
        }
    }
}

impl RecordingBroker {
    /// The events published so far, forgotten.
    pub fn take(&self) -> Vec<RoomEvent> {
        let mut events = self.events.lock().expect("lock");
        events.drain(..).map(|(event, _)| event).collect()
    }
}
