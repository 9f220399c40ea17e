//! Shared helpers for the tests against a real Redis.
//!
//! The tests use the Redis `REDIS_URL` names (e.g. `redis://127.0.0.1:6379`), or else a
//! throwaway `redis-server` that `rtchat-test-services` starts for the test binary. Only
//! without either do they skip, with a notice `cargo test` shows, and fail instead under
//! `RTCHAT_REQUIRE_SERVICES=1`.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use rtchat_chat::{RoomEvent, RoomEventSink};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest any test waits for something to happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// The Redis for `test` (see the module's documentation); `None` to skip.
pub fn redis_url(test: &str) -> Option<String> {
    rtchat_test_services::shared_redis_url(test)
}

/// A key/channel prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("rtchat-test:{}", uuid::Uuid::new_v4().simple())
}

/// A plain connection, for the tests' own commands.
pub async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Deletes every key under `prefix`, best-effort.
pub async fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let scanned: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await;
        let Ok((next, keys)) = scanned else { return };
        if !keys.is_empty() {
            let _: Result<u64, _> = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A sink that records every event it gets.
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<RoomEvent>>,
    /// How many times the broker said it may have lost events.
    pub resets: std::sync::atomic::AtomicUsize,
}

impl RecordingSink {
    /// A shared, empty sink.
    pub fn new() -> Arc<RecordingSink> {
        Arc::new(RecordingSink::default())
    }

    /// What it got so far.
    pub fn events(&self) -> Vec<RoomEvent> {
        self.events.lock().expect("sink lock").clone()
    }

    /// Waits (at most [`WAIT`]) until it got `n` events; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<RoomEvent> {
        eventually(|| async { self.events().len() >= n }).await;
        self.events()
    }
}

impl RoomEventSink for RecordingSink {
    fn on_event(&self, event: RoomEvent, _now: std::time::Instant) {
        self.events.lock().expect("sink lock").push(event);
    }

    fn on_reset(&self, _now: std::time::Instant) {
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `check` until it holds; panics after [`WAIT`].
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
