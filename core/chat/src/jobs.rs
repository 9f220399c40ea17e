//! The I/O a connection's frames need from the store, presence and broker, as plain data: a
//! [`Job`] says what to read or announce, a [`JobDone`] brings back what was read. The driver
//! runs each job against the ports (off the connection's path: while a job waits on a backend,
//! the connection goes on reading, delivering and heart-beating) and hands its result to
//! [`crate::ChatConnection::on_job_done`]; what to send from it (which messages, counts,
//! RECEIPTs, errors) is decided by the connection. A connection gives one job at a time, in
//! the order its frames came, so its answers go out in that order.

use crate::model::{ChatMessage, MessageId, RoomId, Seq};
use crate::ports::SessionKey;
use crate::service::ChatError;

/// One piece of I/O a connection needs. Every variant names the [`JobDone`] it is answered
/// with; a backend failure is [`ChatError::Unavailable`], a missing room
/// [`ChatError::UnknownRoom`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A SUBSCRIBE to `/sub/channel/{room}`. In order: the room must exist; read the store's
    /// head of the room and tell it to the node's hub at once
    /// ([`crate::Hub::observe_head`]: the first head read starts a room's delivery); when
    /// `since` is set, read what was stored after it up to the head (see
    /// [`Since::replay_after`] and [`replay_window`], at most `max_replay` messages); then
    /// presence: when `join`, the session joins the room and the room's new count is
    /// published; in any case the connection count is published (the contract sends it on
    /// every channel subscribe). Presence failures only leave counts stale.
    /// Answered with [`JobDone::ChannelStarted`].
    StartChannel {
        /// The subscribing session.
        session: SessionKey,
        /// The room subscribed to.
        room: RoomId,
        /// Where the replay starts (`since-seq` or `since-id`), if asked for.
        since: Option<Since>,
        /// The session is not in the room yet (presence counts sessions, not subscriptions).
        join: bool,
        /// The most messages the replay brings.
        max_replay: usize,
    },
    /// `/sub/channel/entry`: the number of connected sessions. Answered with
    /// [`JobDone::Count`].
    CountConnections,
    /// `/sub/presence/{room}`: the room must exist; its count of sessions. Answered with
    /// [`JobDone::Count`].
    CountRoom {
        /// The room.
        room: RoomId,
    },
    /// `/pub/history/{room}`: the room must exist; its newest `limit` messages, newest first.
    /// Answered with [`JobDone::History`].
    History {
        /// The room.
        room: RoomId,
        /// How many messages.
        limit: usize,
    },
    /// CONNECT accepted: the session counts as connected, and the new connection count is
    /// published. Answered with [`JobDone::Done`].
    AnnounceConnected {
        /// The session.
        session: SessionKey,
    },
    /// The session's last subscription to `room` ended: it leaves the room; the room's count
    /// and the connection count are published. Answered with [`JobDone::Done`].
    LeaveRoom {
        /// The session.
        session: SessionKey,
        /// The room it leaves.
        room: RoomId,
    },
    /// The session ended (from [`crate::ChatConnection::closed`]): it leaves every room, and
    /// the changed room counts and the connection count are published. Nothing is handed
    /// back: the connection is over.
    Disconnected {
        /// The session.
        session: SessionKey,
    },
}

/// What a [`Job`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobDone {
    /// For [`Job::StartChannel`].
    ChannelStarted(Result<ChannelStart, ChatError>),
    /// For [`Job::CountConnections`] and [`Job::CountRoom`].
    Count(Result<u64, ChatError>),
    /// For [`Job::History`]: newest first.
    History(Result<Vec<ChatMessage>, ChatError>),
    /// For the announcements ([`Job::AnnounceConnected`], [`Job::LeaveRoom`]): done, whether
    /// presence answered or not.
    Done,
}

/// Where a room channel subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStart {
    /// The store's head when it was read: the subscription has everything up to it that it
    /// asked for, and live messages up to it are dropped.
    pub head: Seq,
    /// The replay: what was stored after `since` up to `head`, oldest first (empty without
    /// `since`).
    pub missed: Vec<ChatMessage>,
}

/// Where a SUBSCRIBE to a room channel asks its replay to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// `since-id`: after this message id.
    Id(MessageId),
    /// `since-seq`: after this seq.
    Seq(Seq),
}

impl Since {
    /// The seq the replay starts after. For `since-id` it needs the first message stored after
    /// the id in the room (`MessageStore::after(room, id, 1)`): it tells where in the log the
    /// client is; none means the client missed nothing up to `head`.
    pub fn replay_after(self, first_after_id: Option<&ChatMessage>, head: Seq) -> Seq {
        match self {
            Since::Seq(seq) => seq,
            Since::Id(_) => first_after_id.map_or(head, |first| first.seq.saturating_sub(1)),
        }
    }

    /// Whether [`Since::replay_after`] needs the first message after the id.
    pub fn needs_first_after_id(self) -> Option<MessageId> {
        match self {
            Since::Id(id) => Some(id),
            Since::Seq(_) => None,
        }
    }
}

/// The replay to read for a client that has everything up to `after`, with the store at
/// `head`: `(after_seq, limit)` for `MessageStore::after_seq`, or `None` when nothing was
/// missed. At most `max_replay` (at least 1): when more were missed, the newest, so the
/// client's one hole is at the far end (its first seq says where; it pages older ones in over
/// HTTP), never between the replay and live messages.
pub fn replay_window(after: Seq, head: Seq, max_replay: usize) -> Option<(Seq, usize)> {
    let max = max_replay.max(1) as Seq;
    let from = after.max(head.saturating_sub(max));
    (from < head).then(|| (from, (head - from) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: Seq) -> ChatMessage {
        ChatMessage {
            id: seq * 10,
            seq,
            room_id: "lobby".to_owned(),
            message: "m".to_owned(),
            rand_id: "Wren1".to_owned(),
            name_tag: "#AAAAAA".to_owned(),
            created_at: String::new(),
            ip_address: String::new(),
        }
    }

    #[test]
    fn since_seq_is_where_the_replay_starts() {
        assert_eq!(Since::Seq(3).replay_after(None, 9), 3);
        assert_eq!(Since::Seq(3).needs_first_after_id(), None);
    }

    #[test]
    fn since_id_starts_before_the_first_message_after_it() {
        assert_eq!(Since::Id(20).needs_first_after_id(), Some(20));
        assert_eq!(Since::Id(20).replay_after(Some(&message(3)), 9), 2);
        // Nothing stored after the id: nothing was missed.
        assert_eq!(Since::Id(20).replay_after(None, 9), 9);
    }

    #[test]
    fn the_window_is_capped_to_the_newest() {
        assert_eq!(replay_window(2, 5, 1000), Some((2, 3)));
        assert_eq!(replay_window(0, 10, 3), Some((7, 3)));
        assert_eq!(replay_window(5, 5, 3), None);
        assert_eq!(replay_window(7, 5, 3), None, "a since past the head");
        assert_eq!(replay_window(0, 4, 0), Some((3, 1)), "at least one");
    }
}
