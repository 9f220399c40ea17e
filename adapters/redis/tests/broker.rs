//! `RedisBroker` against a real Redis: two brokers play two nodes.

mod common;

use common::{RecordingSink, cleanup, raw_connection, redis_url, unique_prefix};
use rtchat_chat::{Broker, ChatMessage, RoomEvent, RoomId};
use rtchat_redis::RedisBroker;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn message(id: u64, room: &str) -> RoomEvent {
    RoomEvent::Message(ChatMessage {
        id,
        seq: id,
        room_id: room.into(),
        message: format!("message {id}"),
        rand_id: "Wren42".into(),
        name_tag: "#A1B2C3".into(),
        created_at: "2026-11-22T10:00:00.123Z".into(),
        ip_address: "192.168".into(),
    })
}

async fn two_nodes(
    url: &str,
    prefix: &str,
) -> (
    (RedisBroker, Arc<RecordingSink>),
    (RedisBroker, Arc<RecordingSink>),
) {
    let (sink_a, sink_b) = (RecordingSink::new(), RecordingSink::new());
    let a = RedisBroker::connect_with_prefix(url, prefix, sink_a.clone())
        .await
        .expect("node A connects");
    let b = RedisBroker::connect_with_prefix(url, prefix, sink_b.clone())
        .await
        .expect("node B connects");
    ((a, sink_a), (b, sink_b))
}

#[tokio::test]
async fn events_from_either_node_reach_both() {
    let Some(url) = redis_url("events_from_either_node_reach_both") else {
        return;
    };
    let prefix = unique_prefix();
    let ((a, sink_a), (b, sink_b)) = two_nodes(&url, &prefix).await;
    assert_eq!(a.channel(), format!("{prefix}:events"));

    let lobby = RoomId::parse("lobby").expect("room id");
    let sent = vec![
        message(1, "lobby"),
        RoomEvent::Presence {
            room_id: lobby,
            count: 2,
        },
        RoomEvent::Entry { count: 5 },
    ];
    a.publish(sent[0].clone()).await.expect("publish on A");
    b.publish(sent[1].clone()).await.expect("publish on B");
    a.publish(sent[2].clone()).await.expect("publish on A");

    assert_eq!(sink_a.wait_for(3).await, sent);
    assert_eq!(sink_b.wait_for(3).await, sent);
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_nodes_see_concurrent_events_in_the_same_order() {
    let Some(url) = redis_url("both_nodes_see_concurrent_events_in_the_same_order") else {
        return;
    };
    let prefix = unique_prefix();
    let ((a, sink_a), (b, sink_b)) = two_nodes(&url, &prefix).await;
    let (a, b) = (Arc::new(a), Arc::new(b));

    // Node A publishes ids 0..100, node B ids 1000..1100, at the same time, over two rooms.
    let publish = |broker: Arc<RedisBroker>, base: u64| {
        tokio::spawn(async move {
            for i in 0..100 {
                let room = if i % 2 == 0 { "r1" } else { "r2" };
                broker
                    .publish(message(base + i, room))
                    .await
                    .expect("publish");
            }
        })
    };
    let (ta, tb) = (publish(a.clone(), 0), publish(b.clone(), 1000));
    ta.await.expect("node A publisher");
    tb.await.expect("node B publisher");

    let seen_a = sink_a.wait_for(200).await;
    let seen_b = sink_b.wait_for(200).await;
    assert_eq!(seen_a.len(), 200);
    assert_eq!(seen_a, seen_b, "both nodes see one global order");

    // Each node's own events keep their publish order in the global order.
    let ids: Vec<u64> = seen_a
        .iter()
        .map(|event| match event {
            RoomEvent::Message(m) => m.id,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let from_a: Vec<u64> = ids.iter().copied().filter(|id| *id < 1000).collect();
    let from_b: Vec<u64> = ids.iter().copied().filter(|id| *id >= 1000).collect();
    assert_eq!(from_a, (0..100).collect::<Vec<_>>());
    assert_eq!(from_b, (1000..1100).collect::<Vec<_>>());
    drop((a, b));
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn undecodable_payloads_are_skipped() {
    let Some(url) = redis_url("undecodable_payloads_are_skipped") else {
        return;
    };
    let prefix = unique_prefix();
    let sink = RecordingSink::new();
    let broker = RedisBroker::connect_with_prefix(&url, &prefix, sink.clone())
        .await
        .expect("connects");

    let mut raw = raw_connection(&url).await;
    let garbage: &[&[u8]] = &[
        b"not json",
        b"\xff\x00\xfe",
        br#"{"v":2,"kind":"entry","count":1}"#,
        br#"{"v":1,"kind":"presence","roomId":"not a room","count":1}"#,
        br#"{"v":1,"kind":"entry","count":-3}"#,
    ];
    for payload in garbage {
        let _: u64 = redis::cmd("PUBLISH")
            .arg(broker.channel())
            .arg(*payload)
            .query_async(&mut raw)
            .await
            .expect("raw publish");
    }
    broker
        .publish(RoomEvent::Entry { count: 9 })
        .await
        .expect("publish");

    assert_eq!(sink.wait_for(1).await, vec![RoomEvent::Entry { count: 9 }]);
    // Nothing else trickles in afterwards.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.events(), vec![RoomEvent::Entry { count: 9 }]);
    drop(broker);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn connect_fails_fast_when_redis_is_down() {
    // Port 1 on localhost: nothing listens there. Needs no REDIS_URL.
    let started = Instant::now();
    let result = RedisBroker::connect_with_prefix(
        "redis://127.0.0.1:1",
        &unique_prefix(),
        RecordingSink::new(),
    )
    .await;
    assert!(result.is_err(), "connect must fail");
    assert!(started.elapsed() < Duration::from_secs(6), "and fail fast");
}

#[tokio::test]
async fn dropping_the_broker_stops_its_subscriber() {
    let Some(url) = redis_url("dropping_the_broker_stops_its_subscriber") else {
        return;
    };
    let prefix = unique_prefix();
    let broker = RedisBroker::connect_with_prefix(&url, &prefix, RecordingSink::new())
        .await
        .expect("connects");
    let channel = broker.channel().to_owned();
    let raw = raw_connection(&url).await;
    let subscribers = |raw: redis::aio::MultiplexedConnection, channel: String| async move {
        let mut raw = raw;
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut raw)
            .await
            .expect("PUBSUB NUMSUB");
        n
    };
    assert_eq!(subscribers(raw.clone(), channel.clone()).await, 1);
    drop(broker);
    common::eventually(|| {
        let (raw, channel) = (raw.clone(), channel.clone());
        async move { subscribers(raw, channel).await == 0 }
    })
    .await;
}
