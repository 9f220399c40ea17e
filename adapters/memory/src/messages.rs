//! Messages in memory: per room, a queue ordered by id.

use crate::lock;
use async_trait::async_trait;
use rtchat_core::{BackendError, ChatMessage, MessageId, MessageStore, NewMessage, RoomId};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Messages kept per room by [`MemoryMessageStore::new`].
pub const DEFAULT_MAX_MESSAGES_PER_ROOM: usize = 10_000;

/// A [`MessageStore`] in memory. History grows with use up to a per-room cap (the oldest
/// messages are dropped beyond it), so memory is bounded by rooms x cap x message size; make
/// the cap a configuration value of the app (`with_max_per_room`).
#[derive(Debug)]
pub struct MemoryMessageStore {
    max_per_room: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last id handed out: one counter for the store, so ids increase across rooms.
    last_id: MessageId,
    /// Each room's messages in increasing id order (appends go to the back), so keyset
    /// queries are a binary search plus a slice.
    rooms: HashMap<RoomId, VecDeque<ChatMessage>>,
}

impl MemoryMessageStore {
    /// An empty store keeping [`DEFAULT_MAX_MESSAGES_PER_ROOM`] messages per room.
    pub fn new() -> Self {
        Self::with_max_per_room(DEFAULT_MAX_MESSAGES_PER_ROOM)
    }

    /// An empty store keeping the newest `max_per_room` messages of each room (at least 1).
    pub fn with_max_per_room(max_per_room: usize) -> Self {
        MemoryMessageStore {
            max_per_room: max_per_room.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Runs `pick` over the messages of `room` (none when the room has no messages).
    fn query(
        &self,
        room: &RoomId,
        pick: impl FnOnce(&VecDeque<ChatMessage>) -> Vec<ChatMessage>,
    ) -> Vec<ChatMessage> {
        lock(&self.state)
            .rooms
            .get(room)
            .map(pick)
            .unwrap_or_default()
    }
}

impl Default for MemoryMessageStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn append(&self, message: NewMessage) -> Result<ChatMessage, BackendError> {
        let mut state = lock(&self.state);
        state.last_id += 1;
        let stored = ChatMessage::stored(state.last_id, message);
        let room = RoomId::parse(&stored.room_id)
            .ok_or_else(|| BackendError("message for a malformed room id".to_owned()))?;
        let messages = state.rooms.entry(room).or_default();
        messages.push_back(stored.clone());
        while messages.len() > self.max_per_room {
            messages.pop_front();
        }
        Ok(stored)
    }

    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        Ok(self.query(room, |messages| {
            messages.iter().rev().take(limit).cloned().collect()
        }))
    }

    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        Ok(self.query(room, |messages| {
            let end = messages.partition_point(|m| m.id < before);
            messages.range(..end).rev().take(limit).cloned().collect()
        }))
    }

    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        Ok(self.query(room, |messages| {
            let start = messages.partition_point(|m| m.id <= after);
            messages.range(start..).take(limit).cloned().collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtchat_core::Identity;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("room id")
    }

    fn new_message(room_id: &str, text: &str) -> NewMessage {
        NewMessage {
            room_id: room(room_id),
            message: text.to_owned(),
            author: Identity {
                rand_id: "Wren1".to_owned(),
                name_tag: "#ABCDEF".to_owned(),
            },
            created_at: "2026-11-22T10:00:00.000Z".to_owned(),
            ip_address: "10.0".to_owned(),
        }
    }

    fn ids(messages: &[ChatMessage]) -> Vec<MessageId> {
        messages.iter().map(|m| m.id).collect()
    }

    async fn store_with(rooms: &[&str]) -> MemoryMessageStore {
        let store = MemoryMessageStore::new();
        for (n, room_id) in rooms.iter().enumerate() {
            store
                .append(new_message(room_id, &format!("m{n}")))
                .await
                .expect("append");
        }
        store
    }

    #[tokio::test]
    async fn ids_increase_across_rooms_and_fields_are_kept() {
        let store = MemoryMessageStore::new();
        let a = store.append(new_message("a", "one")).await.expect("append");
        let b = store.append(new_message("b", "two")).await.expect("append");
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(b.room_id, "b");
        assert_eq!(b.message, "two");
        assert_eq!(b.name_tag, "#ABCDEF");
        assert_eq!(b.ip_address, "10.0");
    }

    #[tokio::test]
    async fn newest_is_newest_first_and_per_room() {
        let store = store_with(&["a", "b", "a", "a", "b"]).await;
        assert_eq!(ids(&store.newest(&room("a"), 2).await.expect("q")), [4, 3]);
        assert_eq!(
            ids(&store.newest(&room("a"), 10).await.expect("q")),
            [4, 3, 1]
        );
        assert_eq!(ids(&store.newest(&room("b"), 10).await.expect("q")), [5, 2]);
        assert!(store.newest(&room("zzz"), 10).await.expect("q").is_empty());
    }

    #[tokio::test]
    async fn before_pages_backwards_without_overlap() {
        let store = store_with(&["a"; 10]).await;
        let first = store.newest(&room("a"), 4).await.expect("q");
        assert_eq!(ids(&first), [10, 9, 8, 7]);
        let second = store.before(&room("a"), 7, 4).await.expect("q");
        assert_eq!(ids(&second), [6, 5, 4, 3]);
        let third = store.before(&room("a"), 3, 4).await.expect("q");
        assert_eq!(ids(&third), [2, 1]);
        assert!(store.before(&room("a"), 1, 4).await.expect("q").is_empty());
        // An id that is not in the room still works as a bound.
        assert_eq!(
            ids(&store.before(&room("a"), 1000, 2).await.expect("q")),
            [10, 9]
        );
    }

    #[tokio::test]
    async fn after_is_oldest_first() {
        let store = store_with(&["a", "b", "a", "a", "b", "a"]).await;
        assert_eq!(
            ids(&store.after(&room("a"), 1, 2).await.expect("q")),
            [3, 4]
        );
        assert_eq!(
            ids(&store.after(&room("a"), 0, 10).await.expect("q")),
            [1, 3, 4, 6]
        );
        assert_eq!(
            ids(&store.after(&room("a"), 2, 10).await.expect("q")),
            [3, 4, 6]
        );
        assert!(store.after(&room("a"), 6, 10).await.expect("q").is_empty());
    }

    #[tokio::test]
    async fn per_room_cap_drops_the_oldest() {
        let store = MemoryMessageStore::with_max_per_room(3);
        for n in 0..5 {
            store
                .append(new_message("a", &format!("{n}")))
                .await
                .expect("append");
        }
        store
            .append(new_message("b", "other"))
            .await
            .expect("append");
        assert_eq!(
            ids(&store.newest(&room("a"), 10).await.expect("q")),
            [5, 4, 3]
        );
        assert_eq!(
            ids(&store.after(&room("a"), 0, 10).await.expect("q")),
            [3, 4, 5]
        );
        assert_eq!(ids(&store.newest(&room("b"), 10).await.expect("q")), [6]);
    }

    #[tokio::test]
    async fn zero_limit_returns_nothing() {
        let store = store_with(&["a", "a"]).await;
        assert!(store.newest(&room("a"), 0).await.expect("q").is_empty());
        assert!(store.after(&room("a"), 0, 0).await.expect("q").is_empty());
    }
}
