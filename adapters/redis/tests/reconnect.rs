//! The broker resubscribes after its pub/sub connection is killed. In a binary of its own:
//! it kills a pub/sub connection found by diffing `CLIENT LIST`, which must not race with
//! other tests of this crate creating theirs.

mod common;

use common::{RecordingSink, cleanup, eventually, raw_connection, redis_url, unique_prefix};
use rtchat_chat::{Broker, RoomEvent};
use rtchat_redis::RedisBroker;
use std::collections::HashSet;

async fn pubsub_client_ids(raw: &mut redis::aio::MultiplexedConnection) -> HashSet<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(raw)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn resubscribes_after_the_connection_drops() {
    let Some(url) = redis_url("resubscribes_after_the_connection_drops") else {
        return;
    };
    let prefix = unique_prefix();
    let mut raw = raw_connection(&url).await;
    let before = pubsub_client_ids(&mut raw).await;
    let sink = RecordingSink::new();
    let broker = RedisBroker::connect_with_prefix(&url, &prefix, sink.clone())
        .await
        .expect("connects");
    let ours: Vec<String> = pubsub_client_ids(&mut raw)
        .await
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "one new pub/sub connection: {ours:?}");

    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ours[0])
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL");

    // Wait until the broker subscribed again, then an event goes through.
    eventually(|| {
        let mut raw = raw.clone();
        let channel = broker.channel().to_owned();
        async move {
            let (_, n): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut raw)
                .await
                .expect("PUBSUB NUMSUB");
            n == 1
        }
    })
    .await;
    broker
        .publish(RoomEvent::Entry { count: 1 })
        .await
        .expect("publish after reconnect");
    assert_eq!(sink.wait_for(1).await, vec![RoomEvent::Entry { count: 1 }]);
    // Told twice: when the link was lost (repairs may start at once) and when it was back
    // (what was published in between is read from the store).
    assert_eq!(sink.resets.load(std::sync::atomic::Ordering::SeqCst), 2);
    drop(broker);
    cleanup(&url, &prefix).await;
}
