//! Runs a connection's [`Job`]s against the node's ports: the store reads, presence updates
//! and broker announcements a frame needs, step by step, waiting on each backend. The
//! connection decides what to send from the [`JobDone`] this hands back.

use crate::use_cases;
use rtchat_chat::{
    BackendError, ChannelStart, ChatError, ChatService, Job, JobDone, RoomEvent, RoomId, Seq,
    SessionKey, Since, replay_window,
};

/// Runs `job` to completion. A connection's jobs are run one at a time, in the order
/// [`rtchat_chat::ChatConnection::poll_job`] gives them; the result goes to
/// [`rtchat_chat::ChatConnection::on_job_done`] (except [`Job::Disconnected`]'s, which is for
/// nobody: the connection is over).
pub async fn run_job(service: &ChatService, job: Job) -> JobDone {
    match job {
        Job::StartChannel {
            session,
            room,
            since,
            join,
            max_replay,
        } => JobDone::ChannelStarted(
            start_channel(service, &session, &room, since, join, max_replay).await,
        ),
        Job::CountConnections => {
            JobDone::Count(service.ports().presence.total().await.map_err(unavailable))
        }
        Job::CountRoom { room } => JobDone::Count(count_room(service, &room).await),
        Job::History { room, limit } => JobDone::History(newest(service, &room, limit).await),
        Job::AnnounceConnected { session } => {
            // If presence is down the chat still works; only the counts are stale.
            match service.ports().presence.connected(&session).await {
                Ok(total) => {
                    use_cases::publish(service, RoomEvent::Entry { count: total }).await;
                }
                Err(error) => presence_failed(&error, "counting a new session in"),
            }
            JobDone::Done
        }
        Job::LeaveRoom { session, room } => {
            let count = service.ports().presence.left(&room, &session).await;
            announce_presence(service, &room, count).await;
            JobDone::Done
        }
        Job::Disconnected { session } => {
            match service.ports().presence.disconnected(&session).await {
                Ok((total, rooms)) => {
                    for (room_id, count) in rooms {
                        use_cases::publish(service, RoomEvent::Presence { room_id, count }).await;
                    }
                    use_cases::publish(service, RoomEvent::Entry { count: total }).await;
                }
                Err(error) => presence_failed(&error, "taking a closed session out of"),
            }
            JobDone::Done
        }
    }
}

/// [`Job::StartChannel`]: the room exists, the store's head (told to the hub at once), the
/// replay after `since` up to the head, then presence.
async fn start_channel(
    service: &ChatService,
    session: &SessionKey,
    room: &RoomId,
    since: Option<Since>,
    join: bool,
    max_replay: usize,
) -> Result<ChannelStart, ChatError> {
    use_cases::ensure_room(service, room).await?;
    let store = &service.ports().messages;
    let head = store.head(room).await.map_err(unavailable)?;
    // At once: the first head read of a room is where the hub starts delivering it.
    service
        .hub()
        .observe_head(room, head, crate::connection::now());
    let missed = match since {
        Some(since) => replay(service, room, since, head, max_replay).await?,
        None => Vec::new(),
    };
    if join {
        let count = service.ports().presence.joined(room, session).await;
        announce_presence(service, room, count).await;
    } else {
        // Presence counts sessions: a second subscription to the same room changes no room
        // count, but the contract still sends the connection count on every subscribe.
        publish_entry(service).await;
    }
    Ok(ChannelStart { head, missed })
}

/// What was stored after `since` up to `head`, within the replay window.
async fn replay(
    service: &ChatService,
    room: &RoomId,
    since: Since,
    head: Seq,
    max_replay: usize,
) -> Result<Vec<rtchat_chat::ChatMessage>, ChatError> {
    let store = &service.ports().messages;
    let first_after_id = match since.needs_first_after_id() {
        Some(id) => store.after(room, id, 1).await.map_err(unavailable)?,
        None => Vec::new(),
    };
    let after = since.replay_after(first_after_id.first(), head);
    match replay_window(after, head, max_replay) {
        Some((from, limit)) => store
            .after_seq(room, from, limit)
            .await
            .map_err(unavailable),
        None => Ok(Vec::new()),
    }
}

/// [`Job::CountRoom`].
async fn count_room(service: &ChatService, room: &RoomId) -> Result<u64, ChatError> {
    use_cases::ensure_room(service, room).await?;
    service
        .ports()
        .presence
        .room_count(room)
        .await
        .map_err(unavailable)
}

/// [`Job::History`].
async fn newest(
    service: &ChatService,
    room: &RoomId,
    limit: usize,
) -> Result<Vec<rtchat_chat::ChatMessage>, ChatError> {
    use_cases::ensure_room(service, room).await?;
    service
        .ports()
        .messages
        .newest(room, limit)
        .await
        .map_err(unavailable)
}

/// Tells the room's presence subscribers its new count (when presence answered), and
/// everyone on `/sub/channel/entry` the connection count.
async fn announce_presence(service: &ChatService, room: &RoomId, count: Result<u64, BackendError>) {
    match count {
        Ok(count) => {
            let event = RoomEvent::Presence {
                room_id: room.clone(),
                count,
            };
            use_cases::publish(service, event).await;
        }
        Err(error) => presence_failed(&error, "counting a room's sessions in"),
    }
    publish_entry(service).await;
}

/// The contract sends the connection count on every channel subscribe and leave.
async fn publish_entry(service: &ChatService) {
    match service.ports().presence.total().await {
        Ok(count) => use_cases::publish(service, RoomEvent::Entry { count }).await,
        Err(error) => presence_failed(&error, "counting sessions in"),
    }
}

/// Presence is best effort (the chat works without it; only the counts go stale), but a
/// failure is worth a line in the log.
fn presence_failed(error: &BackendError, doing: &str) {
    tracing::warn!(%error, "{doing} presence failed; counts may be stale");
}

/// The client is told the backend is unavailable; the cause goes to the log only.
fn unavailable(error: BackendError) -> ChatError {
    tracing::warn!(%error, "a subscription's start could not be read");
    ChatError::Unavailable
}
