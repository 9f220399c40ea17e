//! # rtchat-memory
//!
//! In-memory adapters for rtchat's ports: the embedded default, so a node runs with no
//! services. Everything lives in this process and is lost when it stops; one node only
//! (for several nodes, use the PostgreSQL store and the Redis broker).
//!
//! - [`MemoryMessageStore`]: messages per room, ids from one counter, keyset queries in
//!   O(log n + k); at most [`DEFAULT_MAX_MESSAGES_PER_ROOM`] per room by default, oldest dropped.
//! - [`MemoryRoomStore`]: rooms in creation order; lists public rooms only.
//! - [`MemoryStore`]: the two together, as one node's store: appends only into rooms that
//!   exist, count as a room's activity, and rooms idle past a TTL are removed with their
//!   messages.
//! - [`MemoryPresence`]: connected sessions and room memberships.
//! - [`InProcessBroker`]: hands every event straight to the node's hub, in publish order.
//! - [`SystemClock`]: the wall clock, for `createdAt`.
//!
//! All use `std` locks held for a few map operations; nothing here awaits under a lock.

mod broker;
mod clock;
mod messages;
mod presence;
mod rooms;
mod store;

pub use broker::InProcessBroker;
pub use clock::SystemClock;
pub use messages::{DEFAULT_MAX_MESSAGES_PER_ROOM, MemoryMessageStore};
pub use presence::MemoryPresence;
pub use rooms::MemoryRoomStore;
pub use store::MemoryStore;

/// Locks a mutex whether or not a panicking thread poisoned it: every update in this crate
/// leaves its data consistent before anything that could panic, so the data is still good.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
