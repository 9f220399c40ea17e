//! `ChatConnection` driven through a real STOMP session, as the driver does.

mod common;

use common::*;
use rtchat_core::ChatConfig;
use rtchat_stomp::{Command, Frame, SessionConfig, State};
use serde_json::json;
use std::time::Duration;

/// The error-queue envelopes among `frames`, as `(type, message)`.
fn errors(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.get("destination") == Some("/user/queue/errors"))
        .map(|f| {
            let body = json(f);
            assert_eq!(body["success"], false);
            assert_eq!(body["response"], serde_json::Value::Null);
            assert!(body["error"]["message"].is_string());
            body["type"].as_str().expect("type").to_owned()
        })
        .collect()
}

fn receipts(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f.command == Command::Receipt)
        .filter_map(|f| f.get("receipt-id"))
        .collect()
}

async fn connected(node: &Node, who: rtchat_core::Identity) -> Client {
    let mut client = node.client("192.168.1.10");
    client.connect(&who).await;
    client
}

#[tokio::test]
async fn connect_with_a_valid_token_is_accepted() {
    let node = Node::new().await;
    let mut client = node.client("10.0.0.1");
    let frame = client
        .connect_with(&format!(
            "Authorization:Bearer {}\n",
            FakeTokens::valid(&alice())
        ))
        .await;
    assert_eq!(frame.command, Command::Connected);
    assert_eq!(
        frame.get("session"),
        Some(&*client.connection.session_key().0)
    );
    assert_eq!(client.connection.identity(), Some(&alice()));
    assert_eq!(client.session.state(), State::Connected);
}

#[tokio::test]
async fn connect_token_may_come_in_passcode_for_clients_without_custom_headers() {
    let node = Node::new().await;
    let mut client = node.client("10.0.0.1");
    let frame = client
        .connect_with(&format!(
            "login:guest\npasscode:{}\n",
            FakeTokens::valid(&bob())
        ))
        .await;
    assert_eq!(frame.command, Command::Connected);
    assert_eq!(client.connection.identity(), Some(&bob()));
}

#[tokio::test]
async fn connect_without_a_good_token_is_refused_and_closed() {
    let node = Node::new().await;
    for (headers, message) in [
        ("".to_owned(), "missing token"),
        ("Authorization:Bearer null\n".to_owned(), "missing token"),
        ("Authorization:Bearer forged\n".to_owned(), "invalid token"),
        (
            format!("Authorization:Bearer {}\n", FakeTokens::expired(&alice())),
            "expired token",
        ),
    ] {
        let mut client = node.client("10.0.0.1");
        let frame = client.connect_with(&headers).await;
        assert_eq!(frame.command, Command::Error, "{headers}");
        assert_eq!(frame.get("message"), Some(message), "{headers}");
        assert!(client.session.is_closed() || client.session.state() == State::Closing);
        assert_eq!(client.connection.identity(), None);
    }
}

#[tokio::test]
async fn connected_and_every_chat_message_carry_the_stores_log_epoch() {
    use rtchat_core::MessageStore;
    let node = Node::new().await;
    let epoch = node.store.epoch().await.expect("epoch");
    let mut a = node.client("10.0.0.1");
    let connected = a
        .connect_with(&format!(
            "Authorization:Bearer {}\n",
            FakeTokens::valid(&alice())
        ))
        .await;
    assert_eq!(connected.get("epoch"), Some(epoch.as_str()));
    assert_eq!(node.service.epoch(), &epoch);
    a.subscribe("s", "/sub/channel/lobby", "").await;
    a.send_chat("lobby", "hi", None).await;
    a.subscribe("count", "/sub/channel/entry", "").await;
    a.subscribe("errors", "/user/queue/errors", "").await;
    a.send_chat("nowhere", "x", None).await;
    let frames = a.frames();
    let messages = on_subscription(&frames, "s");
    assert_eq!(messages.len(), 1);
    // Every MESSAGE, chat or not, carries it.
    let all: Vec<_> = frames
        .iter()
        .filter(|f| f.command == Command::Message)
        .collect();
    assert!(all.len() >= 3, "{all:?}");
    assert!(all.iter().all(|f| f.get("epoch") == Some(epoch.as_str())));
}

#[tokio::test]
async fn a_third_identity_cannot_enter_a_private_room_by_any_way() {
    let node = Node::new().await;
    let room = node
        .service
        .private_room(&alice(), "#AAAAAA", "#BBBBBB")
        .await
        .expect("room");
    let room = room.room_id.as_str().to_owned();
    let carol = identity("Carol3", "#CCCCCC");
    let mut c = connected(&node, carol).await;
    c.subscribe("errors", "/user/queue/errors", "").await;
    c.subscribe("chan", &format!("/sub/channel/{room}"), "receipt:r1\n")
        .await;
    c.subscribe("pres", &format!("/sub/presence/{room}"), "receipt:r2\n")
        .await;
    c.subscribe("hist", &format!("/pub/history/{room}"), "receipt:r3\n")
        .await;
    c.send_chat(&room, "let me in", Some("r4")).await;
    let frames = c.frames();
    assert_eq!(errors(&frames), ["FORBIDDEN"; 4]);
    assert!(receipts(&frames).is_empty());
    // The members can.
    let mut b = connected(&node, bob()).await;
    b.subscribe("chan", &format!("/sub/channel/{room}"), "receipt:in\n")
        .await;
    let mut a = connected(&node, alice()).await;
    a.send_chat(&room, "just us", Some("sent")).await;
    assert_eq!(receipts(&a.frames()), ["sent"]);
    let frames = b.frames();
    assert_eq!(receipts(&frames), ["in"]);
    assert_eq!(on_subscription(&frames, "chan").len(), 1);
    assert!(c.frames().is_empty(), "nothing leaked to the third");
}

#[tokio::test]
async fn a_message_is_stored_then_broadcast_to_every_subscriber() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    let mut b = connected(&node, bob()).await;
    a.subscribe("a1", "/sub/channel/lobby", "receipt:sub-a\n")
        .await;
    b.subscribe("b1", "/sub/channel/lobby", "").await;
    assert!(receipts(&a.frames()).contains(&"sub-a"));
    b.frames();

    // The body tries to forge a name: it is ignored.
    let body =
        json!({"roomId": "lobby", "message": " hi all ", "randId": "Admin", "nameTag": "#000000"});
    a.send(&format!(
        "SEND\ndestination:/pub/chat\nreceipt:r1\n\n{body}\0"
    ))
    .await;

    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r1"]);
    let messages = on_subscription(&frames, "a1");
    assert_eq!(messages.len(), 1, "the sender receives its own message too");

    let frames_b = b.frames();
    let to_b = on_subscription(&frames_b, "b1");
    assert_eq!(to_b.len(), 1);
    let message = json(to_b[0]);
    assert_eq!(message["message"], "hi all");
    assert_eq!(message["roomId"], "lobby");
    assert_eq!(message["randId"], "Wren1");
    assert_eq!(message["nameTag"], "#AAAAAA");
    assert_eq!(message["ipAddress"], "192.168");
    assert_eq!(message["createdAt"], NOW);
    assert_eq!(to_b[0].get("destination"), Some("/sub/channel/lobby"));
    assert_eq!(
        to_b[0].get("message-id"),
        Some(message["id"].to_string().as_str())
    );
    assert_eq!(to_b[0].get("content-type"), Some("application/json"));
    assert_eq!(messages[0].body, to_b[0].body);

    assert_eq!(
        node.service
            .history(&alice(), "lobby", 10, None)
            .await
            .expect("history")
            .len(),
        1
    );
}

#[tokio::test]
async fn application_errors_go_to_the_error_queue_without_a_receipt_and_the_session_stays() {
    let config = ChatConfig {
        max_message_chars: 10,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("errors", "/user/queue/errors", "").await;
    a.subscribe("s", "/sub/channel/lobby", "").await;
    a.frames();

    a.send_chat("nowhere", "hi", Some("r1")).await;
    a.send_chat("lobby", "   ", Some("r2")).await;
    a.send_chat("lobby", "this is far too long", Some("r3"))
        .await;
    a.send("SEND\ndestination:/pub/chat\nreceipt:r4\n\nnot json\0")
        .await;
    a.send("SEND\ndestination:/sub/channel/lobby\nreceipt:r5\n\n{\"roomId\":\"lobby\",\"message\":\"forged\"}\0")
        .await;
    a.send("SEND\ndestination:/user/queue/errors\n\nx\0").await;
    a.send("SEND\ndestination:/app/other\n\nx\0").await;
    a.subscribe("x", "/sub/channel/nowhere", "receipt:r6\n")
        .await;
    a.subscribe("y", "/topic/whatever", "").await;
    a.subscribe("z", "/sub/channel/bad!id", "").await;

    let frames = a.frames();
    // SUBSCRIBEs are answered at once; SENDs in the order they came, after the first one's
    // room writer answered (it found no room "nowhere").
    assert_eq!(
        errors(&frames),
        [
            "UNKNOWN_ROOM",
            "UNKNOWN_DESTINATION",
            "INVALID_ROOM_ID",
            "UNKNOWN_ROOM",
            "EMPTY_MESSAGE",
            "MESSAGE_TOO_LONG",
            "BAD_REQUEST",
            "FORBIDDEN_DESTINATION",
            "FORBIDDEN_DESTINATION",
            "UNKNOWN_DESTINATION",
        ]
    );
    assert!(receipts(&frames).is_empty(), "an error is never receipted");
    // A failed SEND's error names its receipt, so the client knows which SEND failed.
    let receipt_ids: Vec<_> = frames
        .iter()
        .filter(|f| f.get("destination") == Some("/user/queue/errors"))
        .filter_map(|f| f.get("receipt-id"))
        .collect();
    assert_eq!(receipt_ids, ["r1", "r2", "r3", "r4", "r5"]);
    assert!(
        on_subscription(&frames, "s").is_empty(),
        "nothing was broadcast"
    );
    assert_eq!(a.session.state(), State::Connected);
    let too_long = frames
        .iter()
        .find(|f| f.body.windows(16).any(|w| w == b"MESSAGE_TOO_LONG"))
        .expect("error");
    assert!(
        json(too_long)["error"]["message"]
            .as_str()
            .expect("message")
            .contains("10")
    );
}

#[tokio::test]
async fn other_errors_without_an_error_queue_subscription_are_dropped() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("x", "/sub/channel/nowhere", "receipt:r1\n")
        .await;
    a.subscribe("y", "/topic/whatever", "").await;
    assert!(a.frames().is_empty());
    assert_eq!(a.session.state(), State::Connected);
}

#[tokio::test]
async fn a_failed_send_without_an_error_queue_subscription_gets_an_error_frame() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.send_chat("nowhere", "hi", Some("r1")).await;
    let frames = a.frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Error);
    assert_eq!(frames[0].get("message"), Some("UNKNOWN_ROOM"));
    assert_eq!(frames[0].get("receipt-id"), Some("r1"));
    assert_ne!(
        a.session.state(),
        State::Connected,
        "an ERROR ends the session"
    );
}

#[tokio::test]
async fn a_store_failure_is_answered_and_never_receipted() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("errors", "/user/queue/errors", "").await;
    node.store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    a.send_chat("lobby", "lost?", Some("r1")).await;
    let frames = a.frames();
    assert!(receipts(&frames).is_empty());
    assert_eq!(errors(&frames), ["NOT_STORED"]);
    assert_eq!(frames[0].get("receipt-id"), Some("r1"));
    assert_eq!(a.session.state(), State::Connected);
}

#[tokio::test]
async fn sends_are_answered_in_the_order_they_came_whatever_order_they_are_stored_in() {
    let node = Node::new().await;
    node.service
        .create_room("Garden", Some("garden"))
        .await
        .expect("room");
    let mut a = connected(&node, alice()).await;
    node.appender
        .held
        .store(true, std::sync::atomic::Ordering::SeqCst);
    a.send_chat("lobby", "one", Some("r1")).await;
    a.send_chat("garden", "two", Some("r2")).await;
    a.send_chat("lobby", "three", Some("r3")).await;
    assert!(a.frames().is_empty(), "nothing is stored yet");
    // The garden writer answers first; its receipt still waits for r1.
    let waiting: Vec<_> = node
        .appender
        .waiting
        .lock()
        .expect("lock")
        .drain(..)
        .collect();
    let (lobby, garden): (Vec<_>, Vec<_>) = waiting
        .into_iter()
        .partition(|s| s.message.room_id.as_str() == "lobby");
    node.appender
        .held
        .store(false, std::sync::atomic::Ordering::SeqCst);
    node.appender.waiting.lock().expect("lock").extend(garden);
    node.appender.flush().await;
    assert!(receipts(&a.frames()).is_empty(), "r2 waits for r1");
    node.appender.waiting.lock().expect("lock").extend(lobby);
    node.appender.flush().await;
    assert_eq!(receipts(&a.frames()), ["r1", "r2", "r3"]);
}

#[tokio::test]
async fn a_commit_is_receipted_only_once_its_sends_are_stored() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    node.appender
        .held
        .store(true, std::sync::atomic::Ordering::SeqCst);
    a.send("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/pub/chat\ntransaction:t\n\n{\"roomId\":\"lobby\",\"message\":\"in t\"}\0COMMIT\ntransaction:t\nreceipt:done\n\n\0")
        .await;
    assert!(
        receipts(&a.frames()).is_empty(),
        "the SEND is not stored yet"
    );
    node.appender
        .held
        .store(false, std::sync::atomic::Ordering::SeqCst);
    node.appender.flush().await;
    assert_eq!(receipts(&a.frames()), ["done"]);
    assert_eq!(
        node.service
            .history(&alice(), "lobby", 10, None)
            .await
            .expect("history")
            .len(),
        1
    );
}

#[tokio::test]
async fn live_messages_wait_for_the_replay_of_a_subscription_still_starting() {
    let node = Node::new().await;
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 1..=2 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    let mut a = connected(&node, alice()).await;
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nsince-seq:0\nreceipt:r\n\n\0",
    );
    // Its start is not read yet, but it is registered: a new message is queued for it...
    node.service
        .post_message(&bob(), ip, "lobby", "m3")
        .await
        .expect("posted");
    assert!(
        a.frames().is_empty(),
        "...and held: nothing may overtake the replay"
    );
    a.run_jobs().await;
    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
    assert_eq!(frames.last().map(|f| f.command), Some(Command::Receipt));
}

#[tokio::test]
async fn a_send_after_a_subscribe_in_the_same_read_reaches_that_subscription() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\n\n\0\
         SEND\ndestination:/pub/chat\nreceipt:r\n\n{\"roomId\":\"lobby\",\"message\":\"mine\"}\0",
    );
    a.connection.submit_sends();
    // The SEND waits for the SUBSCRIBE's start: nothing may be stored before its head is read.
    assert!(node.appender.waiting.lock().expect("lock").is_empty());
    a.run_jobs().await;
    node.appender.flush().await;
    let frames = a.frames();
    assert_eq!(
        on_subscription(&frames, "s").len(),
        1,
        "its own message arrives"
    );
    assert_eq!(receipts(&frames), ["r"]);
}

#[tokio::test]
async fn frames_are_answered_in_order_while_jobs_wait() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.send_without_jobs(
        "SUBSCRIBE\nid:one\ndestination:/sub/channel/entry\nreceipt:r1\n\n\0\
         SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\nreceipt:r2\n\n\0\
         UNSUBSCRIBE\nid:one\nreceipt:r3\n\n\0",
    );
    assert!(
        a.frames().is_empty(),
        "every answer waits for the jobs before it"
    );
    a.run_jobs().await;
    assert_eq!(receipts(&a.frames()), ["r1", "r2", "r3"]);
}

#[tokio::test]
async fn a_disconnect_is_receipted_after_the_sends_before_it_are_stored() {
    let node = Node::new().await;
    let config = rtchat_stomp::SessionConfig {
        defer_disconnect: true,
        ..rtchat_stomp::SessionConfig::default()
    };
    let mut a = node.client_with("10.0.0.1", config, usize::MAX);
    a.connect(&alice()).await;
    node.appender
        .held
        .store(true, std::sync::atomic::Ordering::SeqCst);
    a.send("SEND\ndestination:/pub/chat\nreceipt:s\n\n{\"roomId\":\"lobby\",\"message\":\"bye\"}\0DISCONNECT\nreceipt:d\n\n\0")
        .await;
    assert!(a.frames().is_empty(), "the DISCONNECT waits for the SEND");
    assert!(!a.session.is_closed());
    node.appender
        .held
        .store(false, std::sync::atomic::Ordering::SeqCst);
    node.appender.flush().await;
    assert_eq!(receipts(&a.frames()), ["s", "d"]);
    assert!(a.session.is_closed());
}

#[tokio::test]
async fn a_connection_with_too_many_sends_in_flight_stops_reading() {
    let config = ChatConfig {
        max_sends_in_flight: 2,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    let mut a = connected(&node, alice()).await;
    node.appender
        .held
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(a.connection.wants_input());
    a.send_chat("lobby", "one", None).await;
    assert!(a.connection.wants_input());
    a.send_chat("lobby", "two", None).await;
    assert!(!a.connection.wants_input(), "two SENDs wait for the store");
    node.appender
        .held
        .store(false, std::sync::atomic::Ordering::SeqCst);
    node.appender.flush().await;
    a.frames();
    assert!(a.connection.wants_input());
}

#[tokio::test]
async fn a_retry_with_the_same_message_key_is_stored_once() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("s", "/sub/channel/lobby", "").await;
    let send = "SEND\ndestination:/pub/chat\nmessage-key:abc-1\nreceipt:r\n\n{\"roomId\":\"lobby\",\"message\":\"once\"}\0";
    a.send(send).await;
    a.send(send).await;
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r", "r"], "both are receipted");
    assert_eq!(on_subscription(&frames, "s").len(), 1, "one message");
    assert_eq!(
        node.service
            .history(&alice(), "lobby", 10, None)
            .await
            .expect("history")
            .len(),
        1
    );
    // A bad key is a bad request, not a silently unkeyed message.
    a.subscribe("errors", "/user/queue/errors", "").await;
    a.send("SEND\ndestination:/pub/chat\nmessage-key:no spaces\n\n{\"roomId\":\"lobby\",\"message\":\"x\"}\0")
        .await;
    assert_eq!(errors(&a.frames()), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn sends_are_rate_limited_per_connection() {
    let config = ChatConfig {
        max_sends_per_second: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    let mut a = connected(&node, alice()).await;
    let mut b = connected(&node, bob()).await;
    a.subscribe("errors", "/user/queue/errors", "").await;
    for n in 0..5 {
        a.send_chat("lobby", "spam", Some(&format!("r{n}"))).await;
    }
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r0", "r1", "r2"]);
    assert_eq!(errors(&frames), ["RATE_LIMITED", "RATE_LIMITED"]);

    // Another connection has its own bucket, and time refills this one.
    b.send_chat("lobby", "hello", Some("b")).await;
    assert_eq!(receipts(&b.frames()), ["b"]);
    a.advance(Duration::from_secs(1));
    a.send_chat("lobby", "later", Some("r5")).await;
    assert_eq!(receipts(&a.frames()), ["r5"]);
}

#[tokio::test]
async fn subscribes_are_rate_limited_and_a_refused_one_frees_its_id() {
    let config = ChatConfig {
        max_subscribes_per_second: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("errors", "/user/queue/errors", "").await;
    for n in 0..4 {
        a.subscribe(
            &format!("c{n}"),
            "/sub/channel/lobby",
            &format!("receipt:s{n}\n"),
        )
        .await;
    }
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["s0", "s1"]);
    assert_eq!(errors(&frames), ["RATE_LIMITED", "RATE_LIMITED"]);
    assert_eq!(a.session.state(), State::Connected);

    // A second later the bucket has refilled, and the refused id is free again.
    a.advance(Duration::from_secs(1));
    a.subscribe("c3", "/sub/channel/lobby", "receipt:again\n")
        .await;
    assert_eq!(receipts(&a.frames()), ["again"]);
}

#[tokio::test]
async fn history_subscription_answers_once_newest_first() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    for n in 1..=120 {
        node.service
            .post_message(
                &bob(),
                "10.0.0.1".parse().expect("ip"),
                "lobby",
                &format!("m{n}"),
            )
            .await
            .expect("posted");
    }
    a.subscribe("h", "/pub/history/lobby", "receipt:rh\n").await;
    a.subscribe("h5", "/pub/history/lobby", "limit:5\n").await;
    a.subscribe("hmax", "/pub/history/lobby", "limit:1000\n")
        .await;
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["rh"]);
    let reply = on_subscription(&frames, "h");
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].get("destination"), Some("/pub/history/lobby"));
    let body = json(reply[0]);
    let list = body.as_array().expect("array");
    assert_eq!(list.len(), 50);
    assert_eq!(list[0]["message"], "m120");
    assert_eq!(list[49]["message"], "m71");
    assert_eq!(
        json(on_subscription(&frames, "h5")[0])
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert_eq!(
        json(on_subscription(&frames, "hmax")[0])
            .as_array()
            .map(Vec::len),
        Some(100)
    );

    // Nothing more arrives on it.
    node.service
        .post_message(&bob(), "10.0.0.1".parse().expect("ip"), "lobby", "later")
        .await
        .expect("posted");
    assert!(on_subscription(&a.frames(), "h").is_empty());
}

#[tokio::test]
async fn since_id_replays_what_was_missed_with_no_gap_and_no_duplicate() {
    let node = Node::new().await;
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 1..=5 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    let mut a = connected(&node, alice()).await;

    // While the replay reads the store, one message completes just before the read (so it is
    // both replayed and queued live) and one just after (so it is only live).
    let (s1, s2) = (node.service.clone(), node.service.clone());
    node.store.around_next_after(
        Box::new(move || {
            Box::pin(async move {
                s1.post_message(&bob(), ip, "lobby", "m6")
                    .await
                    .expect("posted");
            })
        }),
        Box::new(move || {
            Box::pin(async move {
                s2.post_message(&bob(), ip, "lobby", "m7")
                    .await
                    .expect("posted");
            })
        }),
    );
    a.subscribe("s", "/sub/channel/lobby", "since-id:2\nreceipt:r\n")
        .await;
    assert_eq!(
        a.sink.len(),
        2,
        "m6 and m7 were queued live during the replay"
    );
    node.service
        .post_message(&bob(), ip, "lobby", "m8")
        .await
        .expect("posted");

    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["m3", "m4", "m5", "m6", "m7", "m8"]);
    assert_eq!(receipts(&frames), ["r"]);
}

#[tokio::test]
async fn since_seq_replays_after_that_seq_and_every_message_carries_its_seq() {
    let node = Node::new().await;
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 1..=5 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    let mut a = connected(&node, alice()).await;
    a.subscribe("s", "/sub/channel/lobby", "since-seq:3\n")
        .await;
    node.service
        .post_message(&bob(), ip, "lobby", "m6")
        .await
        .expect("posted");
    let frames = a.frames();
    let got: Vec<(String, u64, String)> = on_subscription(&frames, "s")
        .iter()
        .map(|f| {
            let body = json(f);
            (
                body["message"].as_str().expect("text").to_owned(),
                body["seq"].as_u64().expect("seq in the body"),
                f.get("seq").expect("seq header").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("m4".to_owned(), 4, "4".to_owned()),
            ("m5".to_owned(), 5, "5".to_owned()),
            ("m6".to_owned(), 6, "6".to_owned()),
        ]
    );
    // since-seq wins over since-id when both are given; a subscription without either
    // starts after the head.
    let mut b = connected(&node, bob()).await;
    b.subscribe("both", "/sub/channel/lobby", "since-seq:5\nsince-id:1\n")
        .await;
    b.subscribe("live", "/sub/channel/lobby", "").await;
    let frames = b.frames();
    let seqs = |id: &str| -> Vec<u64> {
        on_subscription(&frames, id)
            .iter()
            .map(|f| json(f)["seq"].as_u64().expect("seq"))
            .collect()
    };
    assert_eq!(seqs("both"), [6]);
    assert!(seqs("live").is_empty());
}

#[tokio::test]
async fn since_id_replay_is_capped_to_the_newest() {
    let config = ChatConfig {
        max_replay: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 1..=10 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    let mut a = connected(&node, alice()).await;
    a.subscribe("s", "/sub/channel/lobby", "since-id:1\n").await;
    let frames = a.frames();
    let ids: Vec<u64> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [8, 9, 10]);

    // since-id at the head replays nothing; a bad since-id is a BAD_REQUEST.
    a.subscribe("errors", "/user/queue/errors", "").await;
    a.subscribe("t", "/sub/channel/lobby", "since-id:10\n")
        .await;
    a.subscribe("u", "/sub/channel/lobby", "since-id:abc\n")
        .await;
    let frames = a.frames();
    assert!(on_subscription(&frames, "t").is_empty());
    assert_eq!(errors(&frames), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn entry_and_presence_counts_follow_connections_and_rooms() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.subscribe("entry", "/sub/channel/entry", "").await;
    a.subscribe("p", "/sub/presence/lobby", "").await;
    let frames = a.frames();
    let entry = on_subscription(&frames, "entry");
    assert_eq!(entry.len(), 1);
    assert_eq!(&entry[0].body[..], b"1");
    assert_eq!(entry[0].get("content-type"), Some("text/plain"));
    let presence = on_subscription(&frames, "p");
    assert_eq!(json(presence[0]), json!({"roomId": "lobby", "count": 0}));

    let mut b = connected(&node, bob()).await;
    b.subscribe("c1", "/sub/channel/lobby", "").await;
    b.subscribe("c2", "/sub/channel/lobby", "").await;
    let frames = a.frames();
    let entries: Vec<&[u8]> = on_subscription(&frames, "entry")
        .iter()
        .map(|f| &f.body[..])
        .collect();
    assert_eq!(entries.first(), Some(&&b"2"[..]), "sent on connect");
    assert!(entries.iter().all(|e| *e == b"2"), "and on every subscribe");
    let counts: Vec<u64> = on_subscription(&frames, "p")
        .iter()
        .map(|f| json(f)["count"].as_u64().expect("count"))
        .collect();
    assert_eq!(
        counts,
        [1],
        "one session, however many subscriptions: told once"
    );

    // Leaving one of two subscriptions keeps B in the room.
    b.send("UNSUBSCRIBE\nid:c1\nreceipt:u1\n\n\0").await;
    assert_eq!(receipts(&b.frames()), ["u1"]);
    let counts: Vec<u64> = on_subscription(&a.frames(), "p")
        .iter()
        .map(|f| json(f)["count"].as_u64().expect("count"))
        .collect();
    assert!(counts.is_empty(), "{counts:?}");

    // Disconnecting updates both counts.
    b.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    b.connection.closed().await; // the driver may call it again: idempotent
    let frames = a.frames();
    let counts: Vec<u64> = on_subscription(&frames, "p")
        .iter()
        .map(|f| json(f)["count"].as_u64().expect("count"))
        .collect();
    assert_eq!(counts, [0]);
    let entries: Vec<&[u8]> = on_subscription(&frames, "entry")
        .iter()
        .map(|f| &f.body[..])
        .collect();
    assert_eq!(entries, [b"1"]);
    assert_eq!(node.hub.subscriber_count("/sub/channel/lobby"), 0);
}

#[tokio::test]
async fn unsubscribe_stops_deliveries_even_those_already_queued() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    node.service
        .create_room("Other", Some("other"))
        .await
        .expect("room");
    a.subscribe("s", "/sub/channel/lobby", "").await;
    a.frames();
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    node.service
        .post_message(&bob(), ip, "lobby", "queued")
        .await
        .expect("posted");
    assert_eq!(a.sink.len(), 1);

    // The id is reused for another room before the queued lobby message is delivered.
    a.send("UNSUBSCRIBE\nid:s\n\n\0").await;
    a.subscribe("s", "/sub/channel/other", "").await;
    node.service
        .post_message(&bob(), ip, "other", "fresh")
        .await
        .expect("posted");
    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["fresh"]);
}

#[tokio::test]
async fn a_slow_consumer_with_too_many_unacked_messages_is_closed() {
    let node = Node::new().await;
    let config = SessionConfig {
        max_unacked_per_subscription: 2,
        ..SessionConfig::default()
    };
    let mut a = node.client_with("10.0.0.1", config, usize::MAX);
    a.connect(&alice()).await;
    a.send("SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nack:client\n\n\0")
        .await;
    a.frames();
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 0..3 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    assert!(!a.pump(), "the third delivery is refused");
    let frames = a.frames();
    let error = frames
        .iter()
        .find(|f| f.command == Command::Error)
        .expect("ERROR");
    assert_eq!(error.get("message"), Some("slow consumer"));
}

#[tokio::test]
async fn a_full_outbound_queue_drops_the_connection_from_the_hub_not_the_room() {
    let node = Node::new().await;
    let mut slow = node.client_with("10.0.0.1", SessionConfig::default(), 1);
    slow.connect(&alice()).await;
    slow.subscribe("s", "/sub/channel/lobby", "").await;
    let mut fast = connected(&node, bob()).await;
    fast.subscribe("f", "/sub/channel/lobby", "").await;
    slow.frames();
    fast.frames();
    let ip: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    for n in 0..3 {
        node.service
            .post_message(&bob(), ip, "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    assert_eq!(on_subscription(&fast.frames(), "f").len(), 3);
    assert_eq!(slow.sink.len(), 1);
    assert_eq!(node.hub.subscriber_count("/sub/channel/lobby"), 1);
}

#[tokio::test]
async fn ack_nack_and_commit_are_receipted() {
    let node = Node::new().await;
    let mut a = connected(&node, alice()).await;
    a.send("BEGIN\ntransaction:t\n\n\0").await;
    a.send("SEND\ndestination:/pub/chat\ntransaction:t\n\n{\"roomId\":\"lobby\",\"message\":\"held\"}\0")
        .await;
    assert!(
        node.service
            .history(&alice(), "lobby", 10, None)
            .await
            .expect("history")
            .is_empty()
    );
    a.send("COMMIT\ntransaction:t\nreceipt:c\n\n\0").await;
    let frames = a.frames();
    assert!(receipts(&frames).contains(&"c"));
    assert_eq!(
        node.service
            .history(&alice(), "lobby", 10, None)
            .await
            .expect("history")
            .len(),
        1
    );
    a.subscribe("s", "/sub/channel/lobby", "ack:client-individual\n")
        .await;
    node.service
        .post_message(&bob(), "10.0.0.1".parse().expect("ip"), "lobby", "ack me")
        .await
        .expect("posted");
    let frames = a.frames();
    let ack = on_subscription(&frames, "s")[0]
        .get("ack")
        .expect("ack header")
        .to_owned();
    a.send(&format!("ACK\nid:{ack}\nreceipt:a\n\n\0")).await;
    assert_eq!(receipts(&a.frames()), ["a"]);
}
