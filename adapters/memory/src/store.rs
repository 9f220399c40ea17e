//! Rooms and their messages together, so appends count as a room's activity and removing a
//! room removes its messages.

use crate::{MemoryMessageStore, MemoryRoomStore};
use async_trait::async_trait;
use rtchat_chat::{
    Appended, BackendError, ChatMessage, CreateRoomError, LogEpoch, MessageId, MessageStore,
    NewMessage, Room, RoomId, RoomStore, Seq,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A [`MessageStore`] and [`RoomStore`] in memory, as one (cheap to clone: a handle on shared
/// state). Unlike the two on their own, an append into a room that does not exist fails, an
/// append counts as the room's activity, and [`RoomStore::remove_idle`] removes the rooms'
/// messages too. Hand the same value to both ports.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    rooms: Arc<MemoryRoomStore>,
    messages: Arc<MemoryMessageStore>,
}

impl MemoryStore {
    /// An empty store keeping [`DEFAULT_MAX_MESSAGES_PER_ROOM`](crate::DEFAULT_MAX_MESSAGES_PER_ROOM)
    /// messages per room.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping the newest `max_per_room` messages of each room (at least 1).
    pub fn with_max_per_room(max_per_room: usize) -> Self {
        MemoryStore {
            rooms: Arc::new(MemoryRoomStore::new()),
            messages: Arc::new(MemoryMessageStore::with_max_per_room(max_per_room)),
        }
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    /// As [`MemoryMessageStore`]'s, in a room that exists ([`BackendError`] otherwise).
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        // Rooms first, then messages, here and in `remove_idle`: the room cannot go between
        // the check and the append.
        let mut rooms = self.rooms.write();
        if !rooms.contains(room) {
            return Err(BackendError::new(format!("memory append: no room {room}")));
        }
        let appended = self.messages.append_now(room, batch)?;
        if appended
            .iter()
            .any(|result| matches!(result, Appended::Stored(_)))
        {
            rooms.touch(room, Instant::now());
        }
        Ok(appended)
    }

    /// The room's last seq: 0 for a room without messages or one that does not exist.
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        if !self.rooms.read().contains(room) {
            return Ok(0);
        }
        self.messages.head(room).await
    }

    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        self.messages.newest(room, limit).await
    }

    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.messages.before(room, before, limit).await
    }

    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.messages.after(room, after, limit).await
    }

    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        self.messages.after_seq(room, after, limit).await
    }

    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
        self.messages.epoch().await
    }
}

#[async_trait]
impl RoomStore for MemoryStore {
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError> {
        self.rooms.create(room).await
    }

    async fn get(&self, id: &RoomId) -> Result<Option<Room>, BackendError> {
        self.rooms.get(id).await
    }

    async fn list(&self) -> Result<Vec<Room>, BackendError> {
        self.rooms.list().await
    }

    async fn count(&self) -> Result<u64, BackendError> {
        self.rooms.count().await
    }

    async fn idle(&self, idle_for: Duration, limit: usize) -> Result<Vec<RoomId>, BackendError> {
        self.rooms.idle(idle_for, limit).await
    }

    /// Removes the rooms still idle, and their messages; each room's last seq is kept, so a
    /// room created again with its id goes on from there.
    async fn remove_idle(
        &self,
        rooms: &[RoomId],
        idle_for: Duration,
    ) -> Result<Vec<RoomId>, BackendError> {
        let mut state = self.rooms.write();
        let removed = state.remove_idle(rooms, idle_for, Instant::now());
        for room in &removed {
            self.messages.forget_messages(room);
        }
        Ok(removed)
    }
}
