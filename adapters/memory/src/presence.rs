//! Who is connected and in which room, in memory.

use crate::lock;
use async_trait::async_trait;
use rtchat_chat::{BackendError, Presence, RoomId, SessionKey};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A [`Presence`] in memory: counts are of distinct sessions, so a session subscribed twice
/// to a room counts once, and a session that ends leaves every room at once (no zombies).
#[derive(Debug, Default)]
pub struct MemoryPresence {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connected: HashSet<SessionKey>,
    /// Each session's rooms, so `disconnected` knows which counts change.
    rooms_of: HashMap<SessionKey, HashSet<RoomId>>,
    members: HashMap<RoomId, HashSet<SessionKey>>,
}

impl MemoryPresence {
    /// Nobody connected.
    pub fn new() -> Self {
        Self::default()
    }
}

impl State {
    fn count(&self, room: &RoomId) -> u64 {
        self.members.get(room).map_or(0, |m| m.len() as u64)
    }

    /// Removes `session` from `room`; the room's new count.
    fn leave(&mut self, room: &RoomId, session: &SessionKey) -> u64 {
        if let Some(members) = self.members.get_mut(room) {
            members.remove(session);
            if members.is_empty() {
                self.members.remove(room);
            }
        }
        self.count(room)
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connected(&self, session: &SessionKey) -> Result<u64, BackendError> {
        let mut state = lock(&self.state);
        state.connected.insert(session.clone());
        Ok(state.connected.len() as u64)
    }

    async fn disconnected(
        &self,
        session: &SessionKey,
    ) -> Result<(u64, Vec<(RoomId, u64)>), BackendError> {
        let mut state = lock(&self.state);
        state.connected.remove(session);
        let rooms = state.rooms_of.remove(session).unwrap_or_default();
        let mut changed: Vec<(RoomId, u64)> = rooms
            .into_iter()
            .map(|room| {
                let count = state.leave(&room, session);
                (room, count)
            })
            .collect();
        // A stable order makes the published presence events predictable (and testable).
        changed.sort_unstable();
        Ok((state.connected.len() as u64, changed))
    }

    async fn joined(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError> {
        let mut state = lock(&self.state);
        state
            .rooms_of
            .entry(session.clone())
            .or_default()
            .insert(room.clone());
        state
            .members
            .entry(room.clone())
            .or_default()
            .insert(session.clone());
        Ok(state.count(room))
    }

    async fn left(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError> {
        let mut state = lock(&self.state);
        if let Some(rooms) = state.rooms_of.get_mut(session) {
            rooms.remove(room);
            if rooms.is_empty() {
                state.rooms_of.remove(session);
            }
        }
        Ok(state.leave(room, session))
    }

    async fn room_count(&self, room: &RoomId) -> Result<u64, BackendError> {
        Ok(lock(&self.state).count(room))
    }

    async fn total(&self) -> Result<u64, BackendError> {
        Ok(lock(&self.state).connected.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(name: &str) -> SessionKey {
        SessionKey(Arc::from(name))
    }

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("room id")
    }

    #[tokio::test]
    async fn counts_connected_sessions() {
        let presence = MemoryPresence::new();
        assert_eq!(presence.connected(&key("a")).await, Ok(1));
        assert_eq!(presence.connected(&key("b")).await, Ok(2));
        assert_eq!(presence.connected(&key("b")).await, Ok(2));
        assert_eq!(presence.total().await, Ok(2));
        assert_eq!(presence.disconnected(&key("a")).await, Ok((1, vec![])));
        assert_eq!(presence.disconnected(&key("a")).await, Ok((1, vec![])));
    }

    #[tokio::test]
    async fn room_counts_are_distinct_sessions() {
        let presence = MemoryPresence::new();
        presence.connected(&key("a")).await.expect("connected");
        presence.connected(&key("b")).await.expect("connected");
        assert_eq!(presence.joined(&room("lobby"), &key("a")).await, Ok(1));
        assert_eq!(presence.joined(&room("lobby"), &key("a")).await, Ok(1));
        assert_eq!(presence.joined(&room("lobby"), &key("b")).await, Ok(2));
        assert_eq!(presence.room_count(&room("lobby")).await, Ok(2));
        assert_eq!(presence.left(&room("lobby"), &key("a")).await, Ok(1));
        assert_eq!(presence.left(&room("lobby"), &key("a")).await, Ok(1));
        assert_eq!(presence.room_count(&room("nowhere")).await, Ok(0));
    }

    #[tokio::test]
    async fn disconnect_leaves_every_room_and_reports_the_changes() {
        let presence = MemoryPresence::new();
        for session in ["a", "b"] {
            presence.connected(&key(session)).await.expect("connected");
        }
        for id in ["x", "y"] {
            presence.joined(&room(id), &key("a")).await.expect("joined");
        }
        presence
            .joined(&room("x"), &key("b"))
            .await
            .expect("joined");

        let (total, changed) = presence
            .disconnected(&key("a"))
            .await
            .expect("disconnected");
        assert_eq!(total, 1);
        assert_eq!(changed, vec![(room("x"), 1), (room("y"), 0)]);
        assert_eq!(presence.room_count(&room("y")).await, Ok(0));
    }
}
