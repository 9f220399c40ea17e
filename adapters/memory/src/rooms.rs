//! Rooms in memory.

use async_trait::async_trait;
use rtchat_core::{BackendError, CreateRoomError, Room, RoomId, RoomStore};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// A [`RoomStore`] in memory. Rooms are never deleted. `list` returns public rooms only
/// (see [`Room::is_private`]), in creation order.
#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<RoomId, Room>,
    /// Public rooms in creation order, for `list`.
    public: Vec<RoomId>,
}

impl MemoryRoomStore {
    /// An empty store (the service creates `lobby` when it starts).
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RoomStore for MemoryRoomStore {
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.by_id.contains_key(&room.room_id) {
            return Err(CreateRoomError::AlreadyExists);
        }
        if !room.is_private() {
            state.public.push(room.room_id.clone());
        }
        state.by_id.insert(room.room_id.clone(), room.clone());
        Ok(room)
    }

    async fn get(&self, id: &RoomId) -> Result<Option<Room>, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.by_id.get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<Room>, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state
            .public
            .iter()
            .filter_map(|id| state.by_id.get(id).cloned())
            .collect())
    }

    async fn count(&self) -> Result<u64, BackendError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.by_id.len() as u64)
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
