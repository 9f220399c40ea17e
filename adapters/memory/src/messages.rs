//! Messages in memory: per room, a log ordered by seq (and so by id).

use crate::lock;
use async_trait::async_trait;
use rtchat_chat::{
    Appended, BackendError, ChatMessage, LogEpoch, MessageId, MessageKey, MessageStore, NewMessage,
    RoomId, Seq,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Messages kept per room by [`MemoryMessageStore::new`].
pub const DEFAULT_MAX_MESSAGES_PER_ROOM: usize = 10_000;

/// A [`MessageStore`] in memory. History grows with use up to a per-room cap (the oldest
/// messages are dropped beyond it, with their idempotency keys), so memory is bounded by
/// rooms x cap x message size; make the cap a configuration value of the app
/// (`with_max_per_room`).
#[derive(Debug)]
pub struct MemoryMessageStore {
    max_per_room: usize,
    /// Made at creation: a memory store's log begins with the process.
    epoch: LogEpoch,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last id handed out: one counter for the store, so ids increase across rooms.
    last_id: MessageId,
    rooms: HashMap<RoomId, RoomLog>,
}

/// One room's log.
#[derive(Debug, Default)]
struct RoomLog {
    /// The last seq handed out (messages dropped by the cap keep their seqs).
    last_seq: Seq,
    /// The kept messages in increasing seq (and id) order, so keyset queries are a binary
    /// search plus a slice.
    messages: VecDeque<ChatMessage>,
    /// Idempotency keys of the kept messages: (author tag, key) to seq.
    keys: HashMap<(String, MessageKey), Seq>,
    /// The key of each kept message, in the same order as `messages`, to forget it with it.
    key_order: VecDeque<(String, MessageKey)>,
}

impl RoomLog {
    fn by_seq(&self, seq: Seq) -> Option<&ChatMessage> {
        let first = self.messages.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.messages.get(index)
    }
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
            epoch: fresh_epoch(),
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
            .map(|log| pick(&log.messages))
            .unwrap_or_default()
    }
}

impl Default for MemoryMessageStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMessageStore {
    /// [`MessageStore::append`], without awaiting (so a caller may hold a lock of its own).
    pub(crate) fn append_now(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        if batch.iter().any(|message| &message.room_id != room) {
            return Err(BackendError::new(
                "a batch must hold one room's messages".to_owned(),
            ));
        }
        let mut state = lock(&self.state);
        let State { last_id, rooms } = &mut *state;
        let log = rooms.entry(room.clone()).or_default();
        let mut results = Vec::with_capacity(batch.len());
        for message in batch {
            let key = (message.author.name_tag.clone(), message.key.clone());
            if let Some(original) = log.keys.get(&key).and_then(|&seq| log.by_seq(seq)) {
                results.push(Appended::Duplicate(original.clone()));
                continue;
            }
            *last_id += 1;
            log.last_seq += 1;
            let stored = ChatMessage::stored(*last_id, log.last_seq, message);
            log.keys.insert(key.clone(), stored.seq);
            log.key_order.push_back(key);
            log.messages.push_back(stored.clone());
            results.push(Appended::Stored(stored));
        }
        while log.messages.len() > self.max_per_room {
            log.messages.pop_front();
            if let Some(key) = log.key_order.pop_front() {
                log.keys.remove(&key);
            }
        }
        Ok(results)
    }

    /// Drops every message of `room` with its keys, and keeps its last seq, so the room's
    /// seqs go on from there if it gets messages again.
    pub(crate) fn forget_messages(&self, room: &RoomId) {
        if let Some(log) = lock(&self.state).rooms.get_mut(room) {
            let last_seq = log.last_seq;
            *log = RoomLog {
                last_seq,
                ..RoomLog::default()
            };
        }
    }
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        self.append_now(room, batch)
    }

    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        Ok(lock(&self.state)
            .rooms
            .get(room)
            .map_or(0, |log| log.last_seq))
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

    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        Ok(self.query(room, |messages| {
            let start = messages.partition_point(|m| m.seq <= after);
            messages.range(start..).take(limit).cloned().collect()
        }))
    }

    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
        Ok(self.epoch.clone())
    }
}

/// A new epoch: 32 hex digits, different for every store of every process. `std`'s hasher
/// keys are random per process (from the OS); the clock and a counter tell stores apart.
fn fresh_epoch() -> LogEpoch {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STORES: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let n = STORES.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new();
    let high = random.hash_one((nanos, n, 1u8));
    let low = random.hash_one((nanos, n, 2u8));
    LogEpoch::from_bits((u128::from(high) << 64) | u128::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtchat_chat::Identity;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("room id")
    }

    fn keyed(room_id: &str, text: &str, tag: &str, key: &str) -> NewMessage {
        NewMessage {
            room_id: room(room_id),
            message: text.to_owned(),
            author: Identity {
                rand_id: "Wren1".to_owned(),
                name_tag: tag.to_owned(),
            },
            created_at: "2026-11-22T10:00:00.000Z".to_owned(),
            ip_address: "10.0".to_owned(),
            key: MessageKey::parse(key).expect("key"),
        }
    }

    fn new_message(room_id: &str, text: &str) -> NewMessage {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        keyed(room_id, text, "#ABCDEF", &format!("k{n}"))
    }

    async fn append_one(store: &MemoryMessageStore, message: NewMessage) -> ChatMessage {
        let room = message.room_id.clone();
        store
            .append(&room, vec![message])
            .await
            .expect("append")
            .remove(0)
            .into_message()
    }

    fn ids(messages: &[ChatMessage]) -> Vec<MessageId> {
        messages.iter().map(|m| m.id).collect()
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<Seq> {
        messages.iter().map(|m| m.seq).collect()
    }

    async fn store_with(rooms: &[&str]) -> MemoryMessageStore {
        let store = MemoryMessageStore::new();
        for (n, room_id) in rooms.iter().enumerate() {
            append_one(&store, new_message(room_id, &format!("m{n}"))).await;
        }
        store
    }

    #[tokio::test]
    async fn ids_increase_across_rooms_and_fields_are_kept() {
        let store = MemoryMessageStore::new();
        let a = append_one(&store, new_message("a", "one")).await;
        let b = append_one(&store, new_message("b", "two")).await;
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(b.room_id, "b");
        assert_eq!(b.message, "two");
        assert_eq!(b.name_tag, "#ABCDEF");
        assert_eq!(b.ip_address, "10.0");
    }

    #[tokio::test]
    async fn seqs_are_contiguous_per_room() {
        let store = store_with(&["a", "b", "a", "a", "b"]).await;
        let a = store.after_seq(&room("a"), 0, 10).await.expect("q");
        assert_eq!(seqs(&a), [1, 2, 3]);
        assert_eq!(ids(&a), [1, 3, 4]);
        assert_eq!(store.head(&room("a")).await.expect("head"), 3);
        assert_eq!(store.head(&room("b")).await.expect("head"), 2);
        assert_eq!(store.head(&room("zzz")).await.expect("head"), 0);
    }

    #[tokio::test]
    async fn a_batch_is_stored_in_order() {
        let store = MemoryMessageStore::new();
        let batch = (0..3).map(|n| new_message("a", &format!("{n}"))).collect();
        let stored = store.append(&room("a"), batch).await.expect("append");
        let texts: Vec<_> = stored.iter().map(|a| a.message().message.clone()).collect();
        assert_eq!(texts, ["0", "1", "2"]);
        assert!(stored.iter().all(|a| matches!(a, Appended::Stored(_))));
        assert_eq!(
            seqs(&store.after_seq(&room("a"), 1, 10).await.expect("q")),
            [2, 3]
        );
    }

    #[tokio::test]
    async fn a_batch_for_another_room_stores_nothing() {
        let store = MemoryMessageStore::new();
        let batch = vec![new_message("a", "x"), new_message("b", "y")];
        assert!(store.append(&room("a"), batch).await.is_err());
        assert_eq!(store.head(&room("a")).await.expect("head"), 0);
    }

    #[tokio::test]
    async fn a_known_key_gets_the_original_back() {
        let store = MemoryMessageStore::new();
        let first = append_one(&store, keyed("a", "hello", "#AAAAAA", "k1")).await;
        let again = store
            .append(
                &room("a"),
                vec![
                    keyed("a", "hello again", "#AAAAAA", "k1"),
                    keyed("a", "other author", "#BBBBBB", "k1"),
                    keyed("a", "new", "#AAAAAA", "k2"),
                    keyed("a", "new twice", "#AAAAAA", "k2"),
                ],
            )
            .await
            .expect("append");
        assert_eq!(again[0], Appended::Duplicate(first.clone()));
        assert!(matches!(&again[1], Appended::Stored(m) if m.seq == 2));
        assert!(matches!(&again[2], Appended::Stored(m) if m.seq == 3));
        assert!(matches!(&again[3], Appended::Duplicate(m) if m.seq == 3));
        // The same key in another room is another message.
        let elsewhere = append_one(&store, keyed("b", "hello", "#AAAAAA", "k1")).await;
        assert_eq!(elsewhere.seq, 1);
        assert_eq!(store.head(&room("a")).await.expect("head"), 3);
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
    async fn per_room_cap_drops_the_oldest_and_their_keys() {
        let store = MemoryMessageStore::with_max_per_room(3);
        for n in 0..5 {
            append_one(
                &store,
                keyed("a", &format!("{n}"), "#AAAAAA", &format!("k{n}")),
            )
            .await;
        }
        append_one(&store, new_message("b", "other")).await;
        assert_eq!(
            ids(&store.newest(&room("a"), 10).await.expect("q")),
            [5, 4, 3]
        );
        assert_eq!(
            seqs(&store.after_seq(&room("a"), 0, 10).await.expect("q")),
            [3, 4, 5]
        );
        assert_eq!(ids(&store.newest(&room("b"), 10).await.expect("q")), [6]);
        // The log goes on from the last seq, not from what is kept.
        let next = append_one(&store, keyed("a", "again", "#AAAAAA", "k0")).await;
        assert_eq!(next.seq, 6);
    }

    #[tokio::test]
    async fn every_store_has_an_epoch_of_its_own_that_stays() {
        let (a, b) = (MemoryMessageStore::new(), MemoryMessageStore::new());
        let first = a.epoch().await.expect("epoch");
        append_one(&a, new_message("a", "x")).await;
        assert_eq!(a.epoch().await.expect("epoch"), first);
        assert_ne!(b.epoch().await.expect("epoch"), first);
        assert_eq!(first.as_str().len(), 32);
    }

    #[tokio::test]
    async fn zero_limit_returns_nothing() {
        let store = store_with(&["a", "a"]).await;
        assert!(store.newest(&room("a"), 0).await.expect("q").is_empty());
        assert!(store.after(&room("a"), 0, 0).await.expect("q").is_empty());
        assert!(
            store
                .after_seq(&room("a"), 0, 0)
                .await
                .expect("q")
                .is_empty()
        );
    }
}
