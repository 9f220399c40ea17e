//! Rooms in memory.

use async_trait::async_trait;
use rtchat_chat::{BackendError, CreateRoomError, Room, RoomId, RoomStore};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// A [`RoomStore`] in memory. `list` returns public rooms only (see [`Room::is_private`]), in
/// creation order. A room's activity is its creation on its own; paired with a
/// [`MemoryMessageStore`](crate::MemoryMessageStore) in a [`MemoryStore`](crate::MemoryStore),
/// appends count too and removing a room removes its messages.
#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    by_id: HashMap<RoomId, Entry>,
    /// Public rooms in creation order, for `list`.
    public: Vec<RoomId>,
}

#[derive(Debug)]
struct Entry {
    room: Room,
    /// Its creation, or the last append that stored a message in it.
    active: Instant,
}

impl State {
    pub(crate) fn contains(&self, room: &RoomId) -> bool {
        self.by_id.contains_key(room)
    }

    /// A message was stored in `room` at `now`.
    pub(crate) fn touch(&mut self, room: &RoomId, now: Instant) {
        if let Some(entry) = self.by_id.get_mut(room) {
            entry.active = entry.active.max(now);
        }
    }

    /// Removes those of `rooms` idle for more than `idle_for` at `now`; returns them.
    pub(crate) fn remove_idle(
        &mut self,
        rooms: &[RoomId],
        idle_for: Duration,
        now: Instant,
    ) -> Vec<RoomId> {
        let mut removed = Vec::new();
        for id in rooms {
            let idle = self
                .by_id
                .get(id)
                .is_some_and(|entry| now.saturating_duration_since(entry.active) > idle_for);
            if idle && !removed.contains(id) {
                self.by_id.remove(id);
                removed.push(id.clone());
            }
        }
        if !removed.is_empty() {
            self.public.retain(|id| !removed.contains(id));
        }
        removed
    }
}

impl MemoryRoomStore {
    /// An empty store (the service creates `lobby` when it starts).
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, for a reader that must see rooms and messages together.
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, for a writer that must change rooms and messages together.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RoomStore for MemoryRoomStore {
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError> {
        let mut state = self.write();
        if state.by_id.contains_key(&room.room_id) {
            return Err(CreateRoomError::AlreadyExists);
        }
        if !room.is_private() {
            state.public.push(room.room_id.clone());
        }
        let entry = Entry {
            room: room.clone(),
            active: Instant::now(),
        };
        state.by_id.insert(room.room_id.clone(), entry);
        Ok(room)
    }

    async fn get(&self, id: &RoomId) -> Result<Option<Room>, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.by_id.get(id).map(|entry| entry.room.clone()))
    }

    async fn list(&self) -> Result<Vec<Room>, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state
            .public
            .iter()
            .filter_map(|id| state.by_id.get(id).map(|entry| entry.room.clone()))
            .collect())
    }

    async fn count(&self) -> Result<u64, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.by_id.len() as u64)
    }

    async fn idle(&self, idle_for: Duration, limit: usize) -> Result<Vec<RoomId>, BackendError> {
        let now = Instant::now();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut idle: Vec<(Instant, &RoomId)> = state
            .by_id
            .iter()
            .filter(|(_, entry)| now.saturating_duration_since(entry.active) > idle_for)
            .map(|(id, entry)| (entry.active, id))
            .collect();
        idle.sort_unstable();
        Ok(idle
            .into_iter()
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect())
    }

    async fn remove_idle(
        &self,
        rooms: &[RoomId],
        idle_for: Duration,
    ) -> Result<Vec<RoomId>, BackendError> {
        Ok(self.write().remove_idle(rooms, idle_for, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, name: &str) -> Room {
        Room {
            room_id: RoomId::parse(id).expect("room id"),
            name: name.to_owned(),
        }
    }

    #[tokio::test]
    async fn create_get_and_duplicate() {
        let store = MemoryRoomStore::new();
        assert_eq!(store.create(room("a", "A")).await, Ok(room("a", "A")));
        assert_eq!(
            store.create(room("a", "Other")).await,
            Err(CreateRoomError::AlreadyExists)
        );
        let id = RoomId::parse("a").expect("room id");
        assert_eq!(store.get(&id).await, Ok(Some(room("a", "A"))));
        let missing = RoomId::parse("b").expect("room id");
        assert_eq!(store.get(&missing).await, Ok(None));
    }

    #[tokio::test]
    async fn list_is_public_rooms_in_creation_order() {
        let store = MemoryRoomStore::new();
        for (id, name) in [
            ("zeta", "Z"),
            ("private-0123456789abcdef", "P"),
            ("alpha", "A"),
        ] {
            store.create(room(id, name)).await.expect("create");
        }
        assert_eq!(
            store.list().await,
            Ok(vec![room("zeta", "Z"), room("alpha", "A")])
        );
        let private = RoomId::parse("private-0123456789abcdef").expect("room id");
        assert!(store.get(&private).await.expect("get").is_some());
    }
}
