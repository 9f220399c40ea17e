//! `RedisPresence` against a real Redis: two presences with different node ids play two nodes.

mod common;

use common::{cleanup, eventually, raw_connection, redis_url, unique_prefix};
use rtchat_chat::{Presence, RoomId, SessionKey};
use rtchat_redis::{PresenceConfig, RedisPresence, SweepOutcome};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn key(name: &str) -> SessionKey {
    SessionKey(Arc::from(name))
}

fn room(id: &str) -> RoomId {
    RoomId::parse(id).expect("room id")
}

/// Fast timings, so a crashed node is swept within about a second.
fn fast(prefix: &str, node: &str) -> PresenceConfig {
    PresenceConfig {
        ttl: Duration::from_millis(800),
        refresh_every: Duration::from_millis(200),
        ..PresenceConfig::new(prefix, node)
    }
}

async fn node(url: &str, config: PresenceConfig) -> RedisPresence {
    RedisPresence::connect_with(url, config)
        .await
        .expect("presence connects")
}

#[tokio::test]
async fn two_nodes_share_counts_of_distinct_sessions() {
    let Some(url) = redis_url("two_nodes_share_counts_of_distinct_sessions") else {
        return;
    };
    let prefix = unique_prefix();
    let a = RedisPresence::connect(&url, &prefix, "node-a")
        .await
        .expect("node A");
    let b = RedisPresence::connect(&url, &prefix, "node-b")
        .await
        .expect("node B");
    let lobby = room("lobby");

    assert_eq!(a.connected(&key("a1")).await, Ok(1));
    assert_eq!(b.connected(&key("b1")).await, Ok(2));
    assert_eq!(b.connected(&key("b1")).await, Ok(2), "idempotent");
    assert_eq!(a.total().await, Ok(2));

    assert_eq!(a.joined(&lobby, &key("a1")).await, Ok(1));
    assert_eq!(a.joined(&lobby, &key("a1")).await, Ok(1), "idempotent");
    assert_eq!(b.joined(&lobby, &key("b1")).await, Ok(2));
    assert_eq!(a.room_count(&lobby).await, Ok(2));
    assert_eq!(b.room_count(&lobby).await, Ok(2));
    assert_eq!(a.room_count(&room("nowhere")).await, Ok(0));

    assert_eq!(a.left(&lobby, &key("a1")).await, Ok(1));
    assert_eq!(a.left(&lobby, &key("a1")).await, Ok(1));
    assert_eq!(b.room_count(&lobby).await, Ok(1));
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn disconnected_leaves_every_room_and_reports_the_changes() {
    let Some(url) = redis_url("disconnected_leaves_every_room_and_reports_the_changes") else {
        return;
    };
    let prefix = unique_prefix();
    let a = RedisPresence::connect(&url, &prefix, "node-a")
        .await
        .expect("node A");
    let b = RedisPresence::connect(&url, &prefix, "node-b")
        .await
        .expect("node B");
    a.connected(&key("a1")).await.expect("connected");
    b.connected(&key("b1")).await.expect("connected");
    for id in ["y", "x"] {
        a.joined(&room(id), &key("a1")).await.expect("joined");
    }
    b.joined(&room("x"), &key("b1")).await.expect("joined");

    let (total, changed) = a.disconnected(&key("a1")).await.expect("disconnected");
    assert_eq!(total, 1);
    assert_eq!(changed, vec![(room("x"), 1), (room("y"), 0)]);
    assert_eq!(b.room_count(&room("y")).await, Ok(0));
    assert_eq!(b.total().await, Ok(1));
    assert_eq!(a.disconnected(&key("a1")).await, Ok((1, vec![])), "twice");
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_stops_counting_after_the_sweep() {
    let Some(url) = redis_url("a_crashed_node_stops_counting_after_the_sweep") else {
        return;
    };
    let prefix = unique_prefix();
    let swept: Arc<Mutex<Vec<SweepOutcome>>> = Arc::default();
    let listener = {
        let swept = swept.clone();
        Arc::new(move |outcome| swept.lock().expect("lock").push(outcome))
    };
    let a = node(&url, fast(&prefix, "node-a")).await;
    let b = node(
        &url,
        PresenceConfig {
            on_sweep: Some(listener),
            ..fast(&prefix, "node-b")
        },
    )
    .await;
    let lobby = room("lobby");
    a.connected(&key("a1")).await.expect("connected");
    a.joined(&lobby, &key("a1")).await.expect("joined");
    b.connected(&key("b1")).await.expect("connected");
    b.joined(&lobby, &key("b1")).await.expect("joined");
    assert_eq!(b.room_count(&lobby).await, Ok(2));

    // Still counted while node A is alive and refreshing, past its TTL.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(b.room_count(&lobby).await, Ok(2));

    // Node A "crashes": its refresher stops, nothing is cleaned up.
    drop(a);
    eventually(|| async { b.room_count(&lobby).await == Ok(1) && b.total().await == Ok(1) }).await;
    eventually(|| async { !swept.lock().expect("lock").is_empty() }).await;
    let outcome = swept.lock().expect("lock")[0].clone();
    assert_eq!(outcome.nodes, vec!["node-a".to_owned()]);
    assert_eq!(outcome.total, 1);
    assert_eq!(outcome.rooms, vec![(lobby, 1)]);
    drop(b);
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_that_was_swept_restores_its_sessions() {
    let Some(url) = redis_url("a_live_node_that_was_swept_restores_its_sessions") else {
        return;
    };
    let prefix = unique_prefix();
    let a = node(&url, fast(&prefix, "node-a")).await;
    let b = node(&url, fast(&prefix, "node-b")).await;
    let lobby = room("lobby");
    a.connected(&key("a1")).await.expect("connected");
    a.joined(&lobby, &key("a1")).await.expect("joined");

    // Node A's liveness key vanishes (say it stalled past its TTL) and node B sweeps it.
    let mut raw = raw_connection(&url).await;
    let _: u64 = redis::cmd("DEL")
        .arg(format!("{prefix}:node:node-a"))
        .query_async(&mut raw)
        .await
        .expect("DEL");
    let outcome = b.sweep().await.expect("sweep");
    assert_eq!(outcome.nodes, vec!["node-a".to_owned()]);
    assert_eq!(outcome.rooms, vec![(lobby.clone(), 0)]);

    // Node A notices at its next refresh and writes its state back.
    eventually(|| async { b.room_count(&lobby).await == Ok(1) && b.total().await == Ok(1) }).await;
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn shutdown_removes_the_node_at_once() {
    let Some(url) = redis_url("shutdown_removes_the_node_at_once") else {
        return;
    };
    let prefix = unique_prefix();
    let a = RedisPresence::connect(&url, &prefix, "node-a")
        .await
        .expect("node A");
    let b = RedisPresence::connect(&url, &prefix, "node-b")
        .await
        .expect("node B");
    let lobby = room("lobby");
    a.connected(&key("a1")).await.expect("connected");
    a.joined(&lobby, &key("a1")).await.expect("joined");
    b.connected(&key("b1")).await.expect("connected");

    let outcome = a.shutdown().await.expect("shutdown");
    assert_eq!(outcome.nodes, vec!["node-a".to_owned()]);
    assert_eq!(outcome.total, 1);
    assert_eq!(outcome.rooms, vec![(lobby.clone(), 0)]);
    assert_eq!(b.total().await, Ok(1));
    assert_eq!(b.room_count(&lobby).await, Ok(0));
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn a_restarted_node_purges_its_previous_run() {
    let Some(url) = redis_url("a_restarted_node_purges_its_previous_run") else {
        return;
    };
    let prefix = unique_prefix();
    let first = RedisPresence::connect(&url, &prefix, "node-a")
        .await
        .expect("first run");
    first.connected(&key("old")).await.expect("connected");
    first
        .joined(&room("lobby"), &key("old"))
        .await
        .expect("joined");
    drop(first); // Crash, then restart within the TTL.

    let second = RedisPresence::connect(&url, &prefix, "node-a")
        .await
        .expect("second run");
    assert_eq!(second.total().await, Ok(0));
    assert_eq!(second.room_count(&room("lobby")).await, Ok(0));
    drop(second);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn invalid_configs_are_rejected() {
    // Checked before connecting: needs no Redis.
    let url = "redis://127.0.0.1:1";
    for config in [
        PresenceConfig::new("p", ""),
        PresenceConfig::new("p", "a|b"),
        PresenceConfig {
            ttl: Duration::from_secs(1),
            refresh_every: Duration::from_secs(1),
            ..PresenceConfig::new("p", "a")
        },
    ] {
        let error = RedisPresence::connect_with(url, config)
            .await
            .expect_err("invalid config");
        assert!(
            error.context().contains("invalid presence config"),
            "{error}"
        );
    }
    assert!(
        RedisPresence::connect(url, "p", "a").await.is_err(),
        "no Redis there"
    );
}
