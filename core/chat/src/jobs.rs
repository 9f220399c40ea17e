//! The I/O a connection's events need (store reads, presence, broker publishes), as jobs the
//! driver runs off the connection's path: while a job waits on a backend, the connection goes
//! on reading, delivering and heart-beating. A connection's jobs run one after the other, so
//! their answers (replays, RECEIPTs, errors) go out in the order the frames came; each result
//! comes back to [`crate::ChatConnection::on_job_done`].

use crate::destination;
use crate::hub::{self, JSON};
use crate::model::{Identity, MessageId, RoomId, Seq};
use crate::ports::{BackendError, RoomEvent, SessionKey};
use crate::service::{ChatError, ChatService};
use rtchat_stomp::{ReceiptId, SharedMessage};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// One job of a connection: a future the driver polls to completion, then hands its
/// [`JobDone`] back to the connection.
pub struct Job(Pin<Box<dyn Future<Output = JobDone> + Send>>);

impl Job {
    pub(crate) fn new(work: impl Future<Output = JobDone> + Send + 'static) -> Job {
        Job(Box::pin(work))
    }

    /// A job with nothing to wait for: its answer only keeps its place in line.
    pub(crate) fn ready(done: JobDone) -> Job {
        Job::new(std::future::ready(done))
    }
}

impl Future for Job {
    type Output = JobDone;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobDone> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Job")
    }
}

/// What a finished [`Job`] hands back to its connection.
#[derive(Debug)]
pub struct JobDone(pub(crate) Done);

#[derive(Debug)]
pub(crate) enum Done {
    /// Nothing to answer (announcements).
    Nothing,
    /// The RECEIPT owed once the job's work was done (e.g. after leaving a room).
    Receipt(Option<ReceiptId>),
    /// A SUBSCRIBE's work: what goes out first on the subscription, or why it was refused.
    Subscribed {
        id: String,
        /// The hub handle of the subscription this was for (`None` if it was never registered).
        handle: Option<Arc<str>>,
        receipt: Option<ReceiptId>,
        result: Result<Ready, ChatError>,
    },
}

/// A subscription's start.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// For room channels: the store's head when it started; live messages up to it are
    /// dropped (the client has them, or did not ask for them).
    pub(crate) has_up_to: Option<Seq>,
    /// MESSAGEs that go out on it before anything live: a replay, a count, a history reply.
    pub(crate) messages: Vec<SharedMessage>,
}

/// Where a SUBSCRIBE to a room channel asks its replay to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// `since-id`: after this message id.
    Id(MessageId),
    /// `since-seq`: after this seq.
    Seq(Seq),
}

fn unavailable(_: BackendError) -> ChatError {
    ChatError::Unavailable
}

/// A room channel subscription: the room exists, the store's head (where the subscription
/// starts), the replay after `since` up to the head, then presence is told.
pub(crate) async fn start_channel(
    service: ChatService,
    key: SessionKey,
    room: RoomId,
    since: Option<Since>,
    already_in_room: bool,
    now: Instant,
) -> Result<Ready, ChatError> {
    service.ensure_room(&room).await?;
    let store = &service.ports().messages;
    let head = store.head(&room).await.map_err(unavailable)?;
    service.hub().observe_head(&room, head, now);
    let mut ready = Ready {
        has_up_to: Some(head),
        messages: Vec::new(),
    };
    if let Some(since) = since {
        ready.messages = replay(&service, &room, since, head).await?;
    }
    if already_in_room {
        // Presence counts sessions: a second subscription to the same room changes no room
        // count, but the contract still sends the connection count on every subscribe.
        publish_entry(&service).await;
    } else {
        let count = service.ports().presence.joined(&room, &key).await;
        announce_presence(&service, &room, count).await;
    }
    Ok(ready)
}

/// What was stored after `since` and up to `head`, oldest first, at most `max_replay`: when
/// more were missed, the newest, so the client's one hole is at the far end (its first seq
/// says where; it pages older ones in over HTTP), never between the replay and live messages.
async fn replay(
    service: &ChatService,
    room: &RoomId,
    since: Since,
    head: Seq,
) -> Result<Vec<SharedMessage>, ChatError> {
    let max = service.config().max_replay.max(1);
    let store = &service.ports().messages;
    let after_seq = match since {
        Since::Seq(seq) => seq,
        // The first message after the id tells where in the log the client is.
        Since::Id(id) => match store.after(room, id, 1).await.map_err(unavailable)?.first() {
            Some(first) => first.seq.saturating_sub(1),
            None => head,
        },
    };
    let from = after_seq.max(head.saturating_sub(max as Seq));
    if from >= head {
        return Ok(Vec::new());
    }
    let missed = store
        .after_seq(room, from, (head - from) as usize)
        .await
        .map_err(unavailable)?;
    Ok(missed
        .iter()
        .filter(|message| message.seq <= head)
        .map(|message| service.hub().encode_chat(message))
        .collect())
}

/// `/sub/channel/entry`: the connection count at once.
pub(crate) async fn start_entry(service: ChatService) -> Result<Ready, ChatError> {
    let total = service
        .ports()
        .presence
        .total()
        .await
        .map_err(unavailable)?;
    Ok(Ready {
        has_up_to: None,
        messages: vec![service.hub().entry_message(total)],
    })
}

/// `/sub/presence/{room}`: the room's count at once.
pub(crate) async fn start_presence(service: ChatService, room: RoomId) -> Result<Ready, ChatError> {
    service.ensure_room(&room).await?;
    let count = service
        .ports()
        .presence
        .room_count(&room)
        .await
        .map_err(unavailable)?;
    Ok(Ready {
        has_up_to: None,
        messages: vec![service.hub().presence_message(&room, count)],
    })
}

/// `/pub/history/{room}`: one MESSAGE with the newest `limit` messages, newest first.
pub(crate) async fn history_reply(
    service: ChatService,
    caller: Identity,
    room: RoomId,
    limit: usize,
) -> Result<Ready, ChatError> {
    let messages = service.history(&caller, room.as_str(), limit, None).await?;
    let reply = SharedMessage::new(
        &destination::history(&room),
        &service.hub().next_message_id("h"),
        Some(JSON),
        &service.hub().epoch_headers(),
        hub::to_json(&messages),
    );
    Ok(Ready {
        has_up_to: None,
        messages: vec![reply],
    })
}

/// CONNECT accepted: the session counts as connected, and everyone is told the new total.
pub(crate) async fn announce_connected(service: ChatService, key: SessionKey) -> JobDone {
    // If presence is down the chat still works; only the counts are stale.
    if let Ok(total) = service.ports().presence.connected(&key).await {
        service.publish(RoomEvent::Entry { count: total }).await;
    }
    JobDone(Done::Nothing)
}

/// The session's last subscription to `room` ended: it leaves the room.
pub(crate) async fn leave_room(
    service: ChatService,
    key: SessionKey,
    room: RoomId,
    receipt: Option<ReceiptId>,
) -> JobDone {
    let count = service.ports().presence.left(&room, &key).await;
    announce_presence(&service, &room, count).await;
    JobDone(Done::Receipt(receipt))
}

/// The session ended: it leaves every room, and the counts are told.
pub(crate) async fn disconnected(service: ChatService, key: SessionKey) -> JobDone {
    let presence = &service.ports().presence;
    if let Ok((total, rooms)) = presence.disconnected(&key).await {
        for (room_id, count) in rooms {
            service
                .publish(RoomEvent::Presence { room_id, count })
                .await;
        }
        service.publish(RoomEvent::Entry { count: total }).await;
    }
    JobDone(Done::Nothing)
}

/// Tells the room's presence subscribers its new count (when presence answered), and
/// everyone on `/sub/channel/entry` the connection count.
async fn announce_presence(service: &ChatService, room: &RoomId, count: Result<u64, BackendError>) {
    if let Ok(count) = count {
        service
            .publish(RoomEvent::Presence {
                room_id: room.clone(),
                count,
            })
            .await;
    }
    publish_entry(service).await;
}

/// The contract sends the connection count on every channel subscribe and leave.
async fn publish_entry(service: &ChatService) {
    if let Ok(count) = service.ports().presence.total().await {
        service.publish(RoomEvent::Entry { count }).await;
    }
}
