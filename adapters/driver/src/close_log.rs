//! One log line per connection the server closes, at most [`LINES_PER_SECOND`] a second for
//! the whole process: an operator sees floods, timeouts and slow consumers, and a flood of bad
//! clients cannot flood the log (the lines it drops are counted in the next one).

use rtchat_stomp::{CloseReason, TokenBucket};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// Close lines logged per second at most, in bursts of as many.
pub const LINES_PER_SECOND: u32 = 20;

struct CloseLog {
    budget: Mutex<TokenBucket>,
    dropped: AtomicU64,
}

fn close_log() -> &'static CloseLog {
    static LOG: OnceLock<CloseLog> = OnceLock::new();
    LOG.get_or_init(|| CloseLog {
        budget: Mutex::new(TokenBucket::new(LINES_PER_SECOND)),
        dropped: AtomicU64::new(0),
    })
}

/// Why the server closed a connection, in a few words, when it was the server's doing.
pub fn server_reason(reason: &CloseReason) -> Option<String> {
    match reason {
        CloseReason::ProtocolError(error) => Some(format!("protocol error: {error}")),
        CloseReason::ConnectTimeout => Some("connect timeout".to_owned()),
        CloseReason::HeartBeatTimeout => Some("heart-beat timeout".to_owned()),
        // The peer's own doing, or closes the driver logs itself (it knows why).
        _ => None,
    }
}

/// Logs (at INFO) that connection `connection` from `client` was closed by the server for
/// `reason`, unless the process-wide budget is spent.
pub fn server_closed(connection: u64, client: IpAddr, reason: &str, now: Instant) {
    let log = close_log();
    let allowed = log
        .budget
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .try_take(now);
    if !allowed {
        log.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let dropped = log.dropped.swap(0, Ordering::Relaxed);
    // Only the address prefix: the log is not a place for full client addresses.
    let client = rtchat_chat::ip_prefix(client);
    tracing::info!(
        connection,
        %client,
        reason,
        unlogged_before = dropped,
        "server closed a connection"
    );
}
