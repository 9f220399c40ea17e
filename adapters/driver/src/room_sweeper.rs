//! The room sweeper: removes the rooms that stayed empty and silent past a TTL
//! (`--room-idle-ttl`), with their messages, so rooms made and abandoned cannot use up the
//! room cap for good. It works through the ports only: the store knows each room's last
//! activity ([`RoomStore::idle`]), presence who is in it ([`Presence::room_count`]).

use rtchat_chat::{BackendError, KnownRooms, LOBBY, Presence, RoomId, RoomStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The longest time between two sweeps.
pub const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The shortest time between two sweeps (for the tiny TTLs of tests).
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// Rooms one sweep looks at, at most (beyond the rooms it must keep); the next sweep takes
/// the rest.
pub const SWEEP_BATCH: usize = 1_000;

/// What the sweeper removes, and how often it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSweeperConfig {
    /// A room idle (no creation, no stored message) for longer than this, and with nobody in
    /// it, is removed.
    pub idle_for: Duration,
    /// Time between sweeps.
    pub every: Duration,
    /// Rooms never removed, besides `lobby` (the `--room` rooms).
    pub keep: Vec<RoomId>,
}

impl RoomSweeperConfig {
    /// Removes rooms idle for longer than `idle_for`, except `lobby` and `keep`, sweeping every
    /// [`MAX_SWEEP_INTERVAL`] or a tenth of `idle_for`, whichever is less.
    pub fn new(idle_for: Duration, keep: Vec<RoomId>) -> Self {
        RoomSweeperConfig {
            idle_for,
            every: (idle_for / 10).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL),
            keep,
        }
    }

    fn keeps(&self, room: &RoomId) -> bool {
        room.as_str() == LOBBY || self.keep.contains(room)
    }
}

/// Ends the sweeper when dropped.
#[derive(Debug)]
pub struct RoomSweeper(JoinHandle<()>);

impl Drop for RoomSweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts sweeping `rooms` every `config.every`, the first time one interval from now. One
/// per node (several nodes sweeping a shared store remove each room once). The rooms it
/// removes are forgotten at once in each of `caches` (the node's [`KnownRooms`]), so this
/// node answers `UNKNOWN_ROOM` for them from then on. Must be called within a tokio runtime.
pub fn spawn_room_sweeper(
    rooms: Arc<dyn RoomStore>,
    presence: Arc<dyn Presence>,
    config: RoomSweeperConfig,
    caches: Vec<Arc<KnownRooms>>,
) -> RoomSweeper {
    RoomSweeper(tokio::spawn(async move {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + config.every, config.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sweep(rooms.as_ref(), presence.as_ref(), &config).await {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => {
                    for cache in &caches {
                        cache.forget(&removed);
                    }
                    tracing::info!(
                    removed = removed.len(),
                    rooms = %removed.iter().map(RoomId::as_str).collect::<Vec<_>>().join(","),
                    idle_for = ?config.idle_for,
                    "removed rooms empty and silent past --room-idle-ttl"
                    );
                }
                Err(error) => tracing::warn!(%error, "room sweep failed; trying again later"),
            }
        }
    }))
}

/// One sweep: removes the rooms idle for longer than `config.idle_for` that nobody is in,
/// except those `config` keeps; returns the rooms removed.
///
/// Errors: [`BackendError`] when the store or presence fails (nothing is removed then).
pub async fn sweep(
    rooms: &dyn RoomStore,
    presence: &dyn Presence,
    config: &RoomSweeperConfig,
) -> Result<Vec<RoomId>, BackendError> {
    let idle = rooms
        .idle(config.idle_for, SWEEP_BATCH + config.keep.len() + 1)
        .await?;
    let mut empty = Vec::new();
    for room in idle {
        if config.keeps(&room) {
            continue;
        }
        if presence.room_count(&room).await? == 0 {
            empty.push(room);
        }
    }
    if empty.is_empty() {
        return Ok(empty);
    }
    rooms.remove_idle(&empty, config.idle_for).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_come_every_tenth_of_the_ttl_and_at_least_every_five_minutes() {
        let week = Duration::from_secs(7 * 24 * 3600);
        assert_eq!(
            RoomSweeperConfig::new(week, Vec::new()).every,
            MAX_SWEEP_INTERVAL
        );
        assert_eq!(
            RoomSweeperConfig::new(Duration::from_secs(60), Vec::new()).every,
            Duration::from_secs(6)
        );
        assert_eq!(
            RoomSweeperConfig::new(Duration::from_millis(1), Vec::new()).every,
            MIN_SWEEP_INTERVAL
        );
    }
}
