//! Group commit: one writer task per room with waiting SENDs. It takes every SEND that is
//! waiting, stores them in one [`MessageStore::append`] (one transaction, one round trip),
//! answers each sender, then publishes the batch in order. A room's writer exists only while
//! the room has SENDs waiting.

use rtchat_chat::{
    Appended, BackendError, Broker, ChatError, ChatMessage, KnownRooms, MessageStore, Metrics,
    NewMessage, PendingSend, RoomEvent, RoomId, RoomStore, SendOutcome,
};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How the room writers batch and retry.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// SENDs stored in one transaction at most.
    pub max_batch: usize,
    /// Every SEND is answered within this time of its arrival: stored, or an error (a store
    /// that stays down past it gets [`ChatError::NotStored`], and the client may retry with
    /// the same `message-key`).
    pub answer_within: Duration,
    /// First pause before retrying a failed append; doubles up to `max_retry_pause`.
    pub min_retry_pause: Duration,
    /// Longest pause between two attempts.
    pub max_retry_pause: Duration,
    /// Where batch sizes, append and publish latencies are counted (the node's, from
    /// [`rtchat_chat::Hub::metrics`]).
    pub metrics: Arc<Metrics>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 256,
            answer_within: Duration::from_secs(5),
            min_retry_pause: Duration::from_millis(50),
            max_retry_pause: Duration::from_millis(800),
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// The node's room writers: the [`rtchat_chat::Appender`] of a node running on tokio.
/// Cheap to clone. `submit` must be called within a tokio runtime (it spawns a room's writer
/// when the room has none).
#[derive(Clone)]
pub struct RoomWriters {
    inner: Arc<Inner>,
}

struct Inner {
    messages: Arc<dyn MessageStore>,
    rooms: Arc<dyn RoomStore>,
    broker: Arc<dyn Broker>,
    config: WriterConfig,
    /// SENDs waiting per room. A room is in the map exactly while its writer task runs.
    waiting: Mutex<HashMap<RoomId, Vec<PendingSend>>>,
    /// Rooms lately seen to exist, so only a room's first batch in a while costs a room
    /// lookup.
    known_rooms: Arc<KnownRooms>,
}

impl RoomWriters {
    /// Writers storing into `messages`, checking rooms in `rooms`, publishing on `broker`.
    pub fn new(
        messages: Arc<dyn MessageStore>,
        rooms: Arc<dyn RoomStore>,
        broker: Arc<dyn Broker>,
        config: WriterConfig,
    ) -> Self {
        RoomWriters {
            inner: Arc::new(Inner {
                messages,
                rooms,
                broker,
                config,
                waiting: Mutex::new(HashMap::new()),
                known_rooms: Arc::new(KnownRooms::default()),
            }),
        }
    }

    /// The rooms these writers lately saw to exist (the room sweeper forgets those it
    /// removes).
    pub fn known_rooms(&self) -> &Arc<KnownRooms> {
        &self.inner.known_rooms
    }

    /// Rooms whose writer is running (for tests and metrics).
    pub fn active_rooms(&self) -> usize {
        lock(&self.inner.waiting).len()
    }
}

impl fmt::Debug for RoomWriters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomWriters")
            .field("config", &self.inner.config)
            .field("active_rooms", &self.active_rooms())
            .finish_non_exhaustive()
    }
}

impl rtchat_chat::Appender for RoomWriters {
    fn submit(&self, sends: Vec<PendingSend>) {
        let mut start = Vec::new();
        let mut waiting = lock(&self.inner.waiting);
        for send in sends {
            let room = send.message.room_id.clone();
            match waiting.get_mut(&room) {
                Some(queue) => queue.push(send),
                None => {
                    waiting.insert(room.clone(), vec![send]);
                    start.push(room);
                }
            }
        }
        drop(waiting);
        for room in start {
            tokio::spawn(run_writer(self.inner.clone(), room));
        }
    }
}

/// A room's writer: stores batches until nothing is waiting, then ends.
async fn run_writer(inner: Arc<Inner>, room: RoomId) {
    loop {
        let batch = {
            let mut waiting = lock(&inner.waiting);
            let Some(queue) = waiting.get_mut(&room) else {
                return;
            };
            if queue.is_empty() {
                waiting.remove(&room);
                return;
            }
            let take = queue.len().min(inner.config.max_batch.max(1));
            queue.drain(..take).collect::<Vec<_>>()
        };
        flush(&inner, &room, batch).await;
    }
}

/// Stores one batch, answers its senders, publishes what was stored.
async fn flush(inner: &Inner, room: &RoomId, batch: Vec<PendingSend>) {
    let Some(oldest) = batch.iter().map(|send| send.received).min() else {
        return;
    };
    let deadline = oldest + inner.config.answer_within;
    match room_exists(inner, room, deadline).await {
        Ok(true) => {}
        Ok(false) => return answer_all(&batch, &ChatError::UnknownRoom),
        Err(error) => {
            tracing::warn!(%room, %error, "room lookup failed; SENDs not stored");
            return answer_all(&batch, &ChatError::Unavailable);
        }
    }
    let messages = batch.iter().map(|send| send.message.clone()).collect();
    let metrics = &inner.config.metrics;
    let started = tokio::time::Instant::now();
    let appended = retry_until(inner, deadline, "append", || {
        append_unless_removed(inner, room, Vec::clone(&messages))
    })
    .await
    .and_then(|appended| appended);
    metrics.appended(batch.len(), started.elapsed().as_secs_f64());
    let stored: Vec<ChatMessage> = match appended {
        Ok(appended) if appended.len() == batch.len() => appended
            .into_iter()
            .map(|appended| {
                metrics.send_stored(matches!(appended, Appended::Duplicate(_)));
                appended.into_message()
            })
            .collect(),
        Ok(appended) => {
            tracing::error!(%room, sent = batch.len(), answered = appended.len(), "store answered a batch with the wrong number of results");
            return answer_all(&batch, &ChatError::NotStored);
        }
        Err(AppendFailure::RoomRemoved) => return answer_all(&batch, &ChatError::UnknownRoom),
        Err(AppendFailure::Store(error)) => {
            tracing::warn!(%room, %error, sends = batch.len(), "could not store a batch in time");
            return answer_all(&batch, &ChatError::NotStored);
        }
    };
    // Senders first, so a sender's RECEIPT comes before its own message on every broker.
    for (send, message) in batch.iter().zip(&stored) {
        send.reply.outcome(SendOutcome {
            ticket: send.ticket,
            result: Ok(message.clone()),
        });
    }
    // Published again on failure (a broker connection that broke says so on its first use
    // after coming back), within the same bound: a hole at the tail of a room is only seen
    // when a later message or a broker reset reveals it.
    let events: Vec<RoomEvent> = stored.into_iter().map(RoomEvent::Message).collect();
    let publish_by = tokio::time::Instant::now().into_std() + inner.config.answer_within;
    let started = tokio::time::Instant::now();
    let published = retry_until(inner, publish_by, "publish", || {
        inner.broker.publish_all(Vec::clone(&events))
    })
    .await;
    metrics.published(started.elapsed().as_secs_f64());
    if let Err(error) = published {
        // Stored is what counts: every node's room log reads the hole from the store once
        // it sees a later message or its broker link is reset.
        tracing::warn!(%room, %error, "publishing a stored batch failed");
    }
}

/// Whether `room` exists, from the cache or the room store (retried until `deadline`).
async fn room_exists(
    inner: &Inner,
    room: &RoomId,
    deadline: Instant,
) -> Result<bool, BackendError> {
    if inner.known_rooms.knows(room, now()) {
        return Ok(true);
    }
    let found = retry_until(inner, deadline, "room lookup", || inner.rooms.get(room)).await?;
    if found.is_some() {
        inner.known_rooms.remember(room, now());
    }
    Ok(found.is_some())
}

/// Now, on tokio's clock (paused in tests).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Why a batch was not stored.
#[derive(Debug)]
enum AppendFailure {
    /// The room no longer exists (the sweeper removed it after this node had seen it).
    RoomRemoved,
    /// The store failed.
    Store(BackendError),
}

impl fmt::Display for AppendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendFailure::RoomRemoved => f.write_str("the room was removed"),
            AppendFailure::Store(error) => error.fmt(f),
        }
    }
}

/// Appends `messages`; when the store refuses, asks whether the room still exists, so a
/// room removed since it was seen is answered `UNKNOWN_ROOM` at once rather than retried
/// until the deadline and answered `NOT_STORED`.
async fn append_unless_removed(
    inner: &Inner,
    room: &RoomId,
    messages: Vec<NewMessage>,
) -> Result<Result<Vec<Appended>, AppendFailure>, AppendFailure> {
    match inner.messages.append(room, messages).await {
        Ok(appended) => Ok(Ok(appended)),
        Err(error) => match inner.rooms.get(room).await {
            Ok(None) => {
                inner.known_rooms.forget(std::slice::from_ref(room));
                Ok(Err(AppendFailure::RoomRemoved))
            }
            Ok(Some(_)) | Err(_) => Err(AppendFailure::Store(error)),
        },
    }
}

/// Runs `attempt` until it succeeds or the next pause would end past `deadline`.
async fn retry_until<T, E, F, Fut>(
    inner: &Inner,
    deadline: Instant,
    what: &str,
    mut attempt: F,
) -> Result<T, E>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut pause = inner.config.min_retry_pause;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let now = tokio::time::Instant::now().into_std();
                if now + pause >= deadline {
                    return Err(error);
                }
                tracing::debug!(%error, retry_in = ?pause, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(inner.config.max_retry_pause);
            }
        }
    }
}

fn answer_all(batch: &[PendingSend], error: &ChatError) {
    for send in batch {
        send.reply.outcome(SendOutcome {
            ticket: send.ticket,
            result: Err(error.clone()),
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update here is a single map operation: a poisoned lock still holds good data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
