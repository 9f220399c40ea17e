//! Rooms a node has lately seen to exist, so that posting to or subscribing to a room costs a
//! store round trip only now and then.
//!
//! Rooms can be removed (the sweeper takes those empty and silent past `--room-idle-ttl`), by
//! this node or by another one sharing the store. So a sighting is trusted for
//! [`KNOWN_ROOM_TTL`] only, and whoever removes a room or sees the store refuse it forgets it at
//! once. Time comes from the caller: this type holds no clock.

use crate::model::RoomId;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long a sighting of a room is trusted. Another node's sweeper may remove a room this
/// node has seen; past this, the node asks the store again.
pub const KNOWN_ROOM_TTL: Duration = Duration::from_secs(60);

/// Sightings kept before expired ones are pruned (the room cap bounds live ones).
const PRUNE_ABOVE: usize = 4_096;

/// Rooms seen to exist, each with when it was last seen.
#[derive(Debug)]
pub struct KnownRooms {
    ttl: Duration,
    seen: RwLock<HashMap<RoomId, Instant>>,
}

impl Default for KnownRooms {
    fn default() -> Self {
        Self::new(KNOWN_ROOM_TTL)
    }
}

impl KnownRooms {
    /// No room known; a sighting is trusted for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KnownRooms {
            ttl,
            seen: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `room` was seen to exist less than the TTL before `now`.
    pub fn knows(&self, room: &RoomId, now: Instant) -> bool {
        self.seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(room)
            .is_some_and(|&seen| now.saturating_duration_since(seen) < self.ttl)
    }

    /// Records that `room` exists at `now`.
    pub fn remember(&self, room: &RoomId, now: Instant) {
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= PRUNE_ABOVE && !seen.contains_key(room) {
            let ttl = self.ttl;
            seen.retain(|_, &mut at| now.saturating_duration_since(at) < ttl);
        }
        seen.insert(room.clone(), now);
    }

    /// Forgets `rooms` (removed, or refused by the store): the next use asks the store.
    pub fn forget(&self, rooms: &[RoomId]) {
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        for room in rooms {
            seen.remove(room);
        }
    }

    /// Sightings held (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no sighting is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("valid room id")
    }

    #[test]
    fn a_sighting_is_trusted_for_the_ttl_only() {
        let known = KnownRooms::new(Duration::from_secs(60));
        let start = Instant::now();
        assert!(!known.knows(&room("a"), start));
        known.remember(&room("a"), start);
        assert!(known.knows(&room("a"), start + Duration::from_secs(59)));
        assert!(!known.knows(&room("a"), start + Duration::from_secs(60)));
        assert!(!known.knows(&room("b"), start));
    }

    #[test]
    fn a_new_sighting_renews_the_trust() {
        let known = KnownRooms::new(Duration::from_secs(60));
        let start = Instant::now();
        known.remember(&room("a"), start);
        known.remember(&room("a"), start + Duration::from_secs(50));
        assert!(known.knows(&room("a"), start + Duration::from_secs(100)));
    }

    #[test]
    fn forgotten_rooms_are_unknown_at_once() {
        let known = KnownRooms::default();
        let now = Instant::now();
        known.remember(&room("a"), now);
        known.remember(&room("b"), now);
        known.forget(&[room("a")]);
        assert!(!known.knows(&room("a"), now));
        assert!(known.knows(&room("b"), now));
    }

    #[test]
    fn expired_sightings_are_pruned_so_memory_stays_bounded() {
        let known = KnownRooms::new(Duration::from_secs(1));
        let start = Instant::now();
        for index in 0..PRUNE_ABOVE {
            known.remember(&room(&format!("r{index}")), start);
        }
        assert_eq!(known.len(), PRUNE_ABOVE);
        let later = start + Duration::from_secs(2);
        known.remember(&room("fresh"), later);
        assert_eq!(known.len(), 1);
        assert!(known.knows(&room("fresh"), later));
    }
}
