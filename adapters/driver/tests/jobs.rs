//! Each of a connection's jobs run against the in-memory adapters: what it reads, what it
//! tells presence and the broker, and how failures come back.

mod common;

use common::*;
use rtchat_chat::{
    ChannelStart, ChatError, ChatMessage, ConnectionId, ConnectionSink, Delivery, Job, JobDone,
    OfferError, Presence, RoomEvent, RoomId, SendOutcome, SessionKey, Since,
};
use rtchat_driver::{ChatUseCases, run_job};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

fn lobby() -> RoomId {
    RoomId::parse("lobby").expect("room id")
}

fn session(name: &str) -> SessionKey {
    SessionKey(Arc::from(name))
}

async fn post(node: &Node, count: usize) -> Vec<ChatMessage> {
    let mut posted = Vec::new();
    for n in 1..=count {
        let message = node
            .service
            .post_message(&alice(), ip("10.0.0.1"), "lobby", &format!("m{n}"))
            .await
            .expect("posted");
        posted.push(message);
    }
    posted
}

fn start(since: Option<Since>, join: bool, max_replay: usize) -> Job {
    Job::StartChannel {
        session: session("s1"),
        room: lobby(),
        since,
        join,
        max_replay,
    }
}

/// The seqs of a channel's replay.
fn replayed(done: JobDone) -> (u64, Vec<u64>) {
    match done {
        JobDone::ChannelStarted(Ok(ChannelStart { head, missed })) => {
            (head, missed.iter().map(|m| m.seq).collect())
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_channel_starts_at_the_head_with_the_replay_asked_for() {
    let node = Node::new().await;
    let posted = post(&node, 5).await;
    node.broker.take();
    let service = &node.service;

    assert_eq!(
        replayed(run_job(service, start(None, true, 1000)).await),
        (5, vec![])
    );
    assert_eq!(
        replayed(run_job(service, start(Some(Since::Seq(3)), false, 1000)).await),
        (5, vec![4, 5])
    );
    let after_m2 = Some(Since::Id(posted[1].id));
    assert_eq!(
        replayed(run_job(service, start(after_m2, false, 1000)).await),
        (5, vec![3, 4, 5])
    );
    let after_m5 = Some(Since::Id(posted[4].id));
    assert_eq!(
        replayed(run_job(service, start(after_m5, false, 1000)).await),
        (5, vec![])
    );
    // Capped to the newest.
    assert_eq!(
        replayed(run_job(service, start(Some(Since::Seq(0)), false, 2)).await),
        (5, vec![4, 5])
    );
}

#[tokio::test]
async fn a_channel_joins_the_room_once_and_always_tells_the_connection_count() {
    let node = Node::new().await;
    let service = &node.service;
    run_job(service, start(None, true, 1000)).await;
    assert_eq!(
        node.broker.take(),
        [
            RoomEvent::Presence {
                room_id: lobby(),
                count: 1
            },
            RoomEvent::Entry { count: 0 },
        ]
    );
    assert_eq!(node.presence.room_count(&lobby()).await, Ok(1));
    // A second subscription of the session to the room: presence is not told.
    run_job(service, start(None, false, 1000)).await;
    assert_eq!(node.broker.take(), [RoomEvent::Entry { count: 0 }]);
    assert_eq!(node.presence.room_count(&lobby()).await, Ok(1));
}

#[tokio::test]
async fn a_channel_of_an_unknown_room_or_with_the_store_down_is_refused_before_joining() {
    let node = Node::new().await;
    let service = &node.service;
    let nowhere = Job::StartChannel {
        session: session("s1"),
        room: RoomId::parse("nowhere").expect("room id"),
        since: None,
        join: true,
        max_replay: 1000,
    };
    assert_eq!(
        run_job(service, nowhere).await,
        JobDone::ChannelStarted(Err(ChatError::UnknownRoom))
    );
    node.store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        run_job(service, start(Some(Since::Seq(0)), true, 1000)).await,
        JobDone::ChannelStarted(Err(ChatError::Unavailable))
    );
    assert_eq!(node.presence.room_count(&lobby()).await, Ok(0));
    assert!(node.broker.take().is_empty());
}

/// Records what the hub offers one subscription.
#[derive(Default)]
struct Recorder(Mutex<Vec<Delivery>>);

impl ConnectionSink for Recorder {
    fn offer(&self, delivery: Delivery) -> Result<(), OfferError> {
        self.0.lock().expect("lock").push(delivery);
        Ok(())
    }

    fn outcome(&self, _: SendOutcome) {}
}

#[tokio::test]
async fn the_head_a_channel_starts_at_is_where_the_hub_starts_delivering_the_room() {
    let node = Node::new().await;
    post(&node, 3).await;
    let recorder = Arc::new(Recorder::default());
    node.service.hub().subscribe(
        "/sub/channel/lobby",
        ConnectionId(1_000),
        recorder.clone(),
        rtchat_stomp::SubscriptionKey(1),
    );
    // A room the hub just began to track waits for a head read from the store before it
    // delivers anything; the job tells it the head as soon as it has it.
    run_job(&node.service, start(None, true, 1000)).await;
    node.service
        .post_message(&alice(), ip("10.0.0.1"), "lobby", "m4")
        .await
        .expect("posted");
    let seqs: Vec<_> = recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(seqs, [Some(4)]);
}

#[tokio::test]
async fn counts_and_history_are_read_for_rooms_that_exist() {
    let node = Node::new().await;
    let service = &node.service;
    post(&node, 3).await;
    run_job(
        service,
        Job::AnnounceConnected {
            session: session("s1"),
        },
    )
    .await;
    run_job(service, start(None, true, 1000)).await;
    assert_eq!(
        run_job(service, Job::CountConnections).await,
        JobDone::Count(Ok(1))
    );
    assert_eq!(
        run_job(service, Job::CountRoom { room: lobby() }).await,
        JobDone::Count(Ok(1))
    );
    let nowhere = RoomId::parse("nowhere").expect("room id");
    assert_eq!(
        run_job(
            service,
            Job::CountRoom {
                room: nowhere.clone()
            }
        )
        .await,
        JobDone::Count(Err(ChatError::UnknownRoom))
    );
    let JobDone::History(Ok(newest)) = run_job(
        service,
        Job::History {
            room: lobby(),
            limit: 2,
        },
    )
    .await
    else {
        panic!("history");
    };
    let texts: Vec<_> = newest.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["m3", "m2"]);
    assert_eq!(
        run_job(
            service,
            Job::History {
                room: nowhere,
                limit: 2
            }
        )
        .await,
        JobDone::History(Err(ChatError::UnknownRoom))
    );
    node.store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        run_job(
            service,
            Job::History {
                room: lobby(),
                limit: 2
            }
        )
        .await,
        JobDone::History(Err(ChatError::Unavailable))
    );
}

#[tokio::test]
async fn announcements_update_presence_and_tell_everyone() {
    let node = Node::new().await;
    let service = &node.service;
    let announce = |name: &str| Job::AnnounceConnected {
        session: session(name),
    };
    assert_eq!(run_job(service, announce("s1")).await, JobDone::Done);
    assert_eq!(run_job(service, announce("s2")).await, JobDone::Done);
    assert_eq!(
        node.broker.take(),
        [RoomEvent::Entry { count: 1 }, RoomEvent::Entry { count: 2 }]
    );

    run_job(service, start(None, true, 1000)).await;
    node.broker.take();
    let leave = Job::LeaveRoom {
        session: session("s1"),
        room: lobby(),
    };
    assert_eq!(run_job(service, leave).await, JobDone::Done);
    assert_eq!(
        node.broker.take(),
        [
            RoomEvent::Presence {
                room_id: lobby(),
                count: 0
            },
            RoomEvent::Entry { count: 2 },
        ]
    );

    run_job(service, start(None, true, 1000)).await;
    node.broker.take();
    let disconnected = Job::Disconnected {
        session: session("s1"),
    };
    assert_eq!(run_job(service, disconnected).await, JobDone::Done);
    assert_eq!(
        node.broker.take(),
        [
            RoomEvent::Presence {
                room_id: lobby(),
                count: 0
            },
            RoomEvent::Entry { count: 1 },
        ]
    );
    assert_eq!(node.presence.total().await, Ok(1));

    // A broker that is down only leaves the counts stale: the job is done all the same.
    node.broker.failing.store(true, Ordering::SeqCst);
    assert_eq!(run_job(service, announce("s3")).await, JobDone::Done);
    assert_eq!(node.presence.total().await, Ok(2));
}
