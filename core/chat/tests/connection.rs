//! `ChatConnection` driven through a real STOMP session, as the driver does.

mod common;

use common::*;
use rtchat_chat::{ChannelStart, ChatConfig, ChatError, Job, JobDone, Since};
use rtchat_stomp::{AckMode, Command, Frame, SessionConfig, State, SubscriptionKey};
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

fn connected(node: &Node, who: rtchat_chat::Identity) -> Client {
    let mut client = node.client("192.168.1.10");
    client.connect(&who);
    client
}

#[test]
fn connect_with_a_valid_token_is_accepted() {
    let node = Node::new();
    let mut client = node.client("10.0.0.1");
    let frame = client.connect_with(&format!(
        "Authorization:Bearer {}\n",
        FakeTokens::valid(&alice())
    ));
    assert_eq!(frame.command, Command::Connected);
    assert_eq!(
        frame.get("session"),
        Some(&*client.connection.session_key().0)
    );
    assert_eq!(client.connection.identity(), Some(&alice()));
    assert_eq!(client.session.state(), State::Connected);
}

#[test]
fn connect_token_may_come_in_passcode_for_clients_without_custom_headers() {
    let node = Node::new();
    let mut client = node.client("10.0.0.1");
    let frame = client.connect_with(&format!(
        "login:guest\npasscode:{}\n",
        FakeTokens::valid(&bob())
    ));
    assert_eq!(frame.command, Command::Connected);
    assert_eq!(client.connection.identity(), Some(&bob()));
}

#[test]
fn connect_without_a_good_token_is_refused_and_closed() {
    let node = Node::new();
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
        let frame = client.connect_with(&headers);
        assert_eq!(frame.command, Command::Error, "{headers}");
        assert_eq!(frame.get("message"), Some(message), "{headers}");
        assert!(client.session.is_closed() || client.session.state() == State::Closing);
        assert_eq!(client.connection.identity(), None);
    }
}

#[test]
fn connected_and_every_chat_message_carry_the_stores_log_epoch() {
    let node = Node::new();
    let epoch = node.epoch.clone();
    let mut a = node.client("10.0.0.1");
    let connected = a.connect_with(&format!(
        "Authorization:Bearer {}\n",
        FakeTokens::valid(&alice())
    ));
    assert_eq!(connected.get("epoch"), Some(epoch.as_str()));
    assert_eq!(node.service.epoch(), &epoch);
    a.subscribe("s", "/sub/channel/lobby", "");
    a.send_chat("lobby", "hi", None);
    a.subscribe("count", "/sub/channel/entry", "");
    a.subscribe("errors", "/user/queue/errors", "");
    a.send_chat("nowhere", "x", None);
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

#[test]
fn a_third_identity_cannot_enter_a_private_room_by_any_way() {
    let node = Node::new();
    let room = node.private_room("#AAAAAA", "#BBBBBB");
    let room = room.as_str().to_owned();
    let carol = identity("Carol3", "#CCCCCC");
    let mut c = connected(&node, carol);
    c.subscribe("errors", "/user/queue/errors", "");
    c.subscribe("chan", &format!("/sub/channel/{room}"), "receipt:r1\n");
    c.subscribe("pres", &format!("/sub/presence/{room}"), "receipt:r2\n");
    c.subscribe("hist", &format!("/pub/history/{room}"), "receipt:r3\n");
    c.send_chat(&room, "let me in", Some("r4"));
    let frames = c.frames();
    assert_eq!(errors(&frames), ["FORBIDDEN"; 4]);
    assert!(receipts(&frames).is_empty());
    // The members can.
    let mut b = connected(&node, bob());
    b.subscribe("chan", &format!("/sub/channel/{room}"), "receipt:in\n");
    let mut a = connected(&node, alice());
    a.send_chat(&room, "just us", Some("sent"));
    assert_eq!(receipts(&a.frames()), ["sent"]);
    let frames = b.frames();
    assert_eq!(receipts(&frames), ["in"]);
    assert_eq!(on_subscription(&frames, "chan").len(), 1);
    assert!(c.frames().is_empty(), "nothing leaked to the third");
}

#[test]
fn a_message_is_stored_then_broadcast_to_every_subscriber() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    let mut b = connected(&node, bob());
    a.subscribe("a1", "/sub/channel/lobby", "receipt:sub-a\n");
    b.subscribe("b1", "/sub/channel/lobby", "");
    assert!(receipts(&a.frames()).contains(&"sub-a"));
    b.frames();

    // The body tries to forge a name: it is ignored.
    let body =
        json!({"roomId": "lobby", "message": " hi all ", "randId": "Admin", "nameTag": "#000000"});
    a.send(&format!(
        "SEND\ndestination:/pub/chat\nreceipt:r1\n\n{body}\0"
    ));

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

    assert_eq!(node.backend.stored("lobby").len(), 1);
}

#[test]
fn application_errors_go_to_the_error_queue_without_a_receipt_and_the_session_stays() {
    let config = ChatConfig {
        max_message_chars: 10,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    let mut a = connected(&node, alice());
    a.subscribe("errors", "/user/queue/errors", "");
    a.subscribe("s", "/sub/channel/lobby", "");
    a.frames();

    a.send_chat("nowhere", "hi", Some("r1"));
    a.send_chat("lobby", "   ", Some("r2"));
    a.send_chat("lobby", "this is far too long", Some("r3"));
    a.send("SEND\ndestination:/pub/chat\nreceipt:r4\n\nnot json\0");
    a.send("SEND\ndestination:/sub/channel/lobby\nreceipt:r5\n\n{\"roomId\":\"lobby\",\"message\":\"forged\"}\0");
    a.send("SEND\ndestination:/user/queue/errors\n\nx\0");
    a.send("SEND\ndestination:/app/other\n\nx\0");
    a.subscribe("x", "/sub/channel/nowhere", "receipt:r6\n");
    a.subscribe("y", "/topic/whatever", "");
    a.subscribe("z", "/sub/channel/bad!id", "");

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

#[test]
fn other_errors_without_an_error_queue_subscription_are_dropped() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.subscribe("x", "/sub/channel/nowhere", "receipt:r1\n");
    a.subscribe("y", "/topic/whatever", "");
    assert!(a.frames().is_empty());
    assert_eq!(a.session.state(), State::Connected);
}

#[test]
fn a_failed_send_without_an_error_queue_subscription_gets_an_error_frame() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.send_chat("nowhere", "hi", Some("r1"));
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

#[test]
fn a_store_failure_is_answered_and_never_receipted() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.subscribe("errors", "/user/queue/errors", "");
    node.backend.fail_store(true);
    a.send_chat("lobby", "lost?", Some("r1"));
    let frames = a.frames();
    assert!(receipts(&frames).is_empty());
    assert_eq!(errors(&frames), ["NOT_STORED"]);
    assert_eq!(frames[0].get("receipt-id"), Some("r1"));
    assert_eq!(a.session.state(), State::Connected);
}

#[test]
fn sends_are_answered_in_the_order_they_came_whatever_order_they_are_stored_in() {
    let node = Node::new();
    node.create_room("garden", "Garden");
    let mut a = connected(&node, alice());
    node.appender.hold(true);
    a.send_chat("lobby", "one", Some("r1"));
    a.send_chat("garden", "two", Some("r2"));
    a.send_chat("lobby", "three", Some("r3"));
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
    node.appender.hold(false);
    node.appender.waiting.lock().expect("lock").extend(garden);
    node.appender.flush();
    assert!(receipts(&a.frames()).is_empty(), "r2 waits for r1");
    node.appender.waiting.lock().expect("lock").extend(lobby);
    node.appender.flush();
    assert_eq!(receipts(&a.frames()), ["r1", "r2", "r3"]);
}

#[test]
fn a_commit_is_receipted_only_once_its_sends_are_stored() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    node.appender.hold(true);
    a.send("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/pub/chat\ntransaction:t\n\n{\"roomId\":\"lobby\",\"message\":\"in t\"}\0COMMIT\ntransaction:t\nreceipt:done\n\n\0");
    assert!(
        receipts(&a.frames()).is_empty(),
        "the SEND is not stored yet"
    );
    node.appender.hold(false);
    node.appender.flush();
    assert_eq!(receipts(&a.frames()), ["done"]);
    assert_eq!(node.backend.stored("lobby").len(), 1);
}

#[test]
fn live_messages_wait_for_the_replay_of_a_subscription_still_starting() {
    let node = Node::new();
    for n in 1..=2 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    let mut a = connected(&node, alice());
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nsince-seq:0\nreceipt:r\n\n\0",
    );
    // Its start is not read yet, but it is registered: a new message is queued for it...
    node.post(&bob(), "lobby", "m3");
    assert!(
        a.frames().is_empty(),
        "...and held: nothing may overtake the replay"
    );
    a.run_jobs();
    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
    assert_eq!(frames.last().map(|f| f.command), Some(Command::Receipt));
}

#[test]
fn a_send_after_a_subscribe_in_the_same_read_reaches_that_subscription() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\n\n\0\
         SEND\ndestination:/pub/chat\nreceipt:r\n\n{\"roomId\":\"lobby\",\"message\":\"mine\"}\0",
    );
    a.connection.submit_sends();
    // The SEND waits for the SUBSCRIBE's start: nothing may be stored before its head is read.
    assert!(node.appender.waiting.lock().expect("lock").is_empty());
    a.run_jobs();
    node.appender.flush();
    let frames = a.frames();
    assert_eq!(
        on_subscription(&frames, "s").len(),
        1,
        "its own message arrives"
    );
    assert_eq!(receipts(&frames), ["r"]);
}

#[test]
fn frames_are_answered_in_order_while_jobs_wait() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.send_without_jobs(
        "SUBSCRIBE\nid:one\ndestination:/sub/channel/entry\nreceipt:r1\n\n\0\
         SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\nreceipt:r2\n\n\0\
         UNSUBSCRIBE\nid:one\nreceipt:r3\n\n\0",
    );
    assert!(
        a.frames().is_empty(),
        "every answer waits for the jobs before it"
    );
    a.run_jobs();
    assert_eq!(receipts(&a.frames()), ["r1", "r2", "r3"]);
}

#[test]
fn a_disconnect_is_receipted_after_the_sends_before_it_are_stored() {
    let node = Node::new();
    let config = rtchat_stomp::SessionConfig {
        defer_disconnect: true,
        ..rtchat_stomp::SessionConfig::default()
    };
    let mut a = node.client_with("10.0.0.1", config, usize::MAX);
    a.connect(&alice());
    node.appender.hold(true);
    a.send("SEND\ndestination:/pub/chat\nreceipt:s\n\n{\"roomId\":\"lobby\",\"message\":\"bye\"}\0DISCONNECT\nreceipt:d\n\n\0");
    assert!(a.frames().is_empty(), "the DISCONNECT waits for the SEND");
    assert!(!a.session.is_closed());
    node.appender.hold(false);
    node.appender.flush();
    assert_eq!(receipts(&a.frames()), ["s", "d"]);
    assert!(a.session.is_closed());
}

#[test]
fn a_connection_with_too_many_sends_in_flight_stops_reading() {
    let config = ChatConfig {
        max_sends_in_flight: 2,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    let mut a = connected(&node, alice());
    node.appender.hold(true);
    assert!(a.connection.wants_input());
    a.send_chat("lobby", "one", None);
    assert!(a.connection.wants_input());
    a.send_chat("lobby", "two", None);
    assert!(!a.connection.wants_input(), "two SENDs wait for the store");
    node.appender.hold(false);
    node.appender.flush();
    a.frames();
    assert!(a.connection.wants_input());
}

#[test]
fn a_retry_with_the_same_message_key_is_stored_once() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.subscribe("s", "/sub/channel/lobby", "");
    let send = "SEND\ndestination:/pub/chat\nmessage-key:abc-1\nreceipt:r\n\n{\"roomId\":\"lobby\",\"message\":\"once\"}\0";
    a.send(send);
    a.send(send);
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r", "r"], "both are receipted");
    assert_eq!(on_subscription(&frames, "s").len(), 1, "one message");
    assert_eq!(node.backend.stored("lobby").len(), 1);
    // A bad key is a bad request, not a silently unkeyed message.
    a.subscribe("errors", "/user/queue/errors", "");
    a.send("SEND\ndestination:/pub/chat\nmessage-key:no spaces\n\n{\"roomId\":\"lobby\",\"message\":\"x\"}\0");
    assert_eq!(errors(&a.frames()), ["BAD_REQUEST"]);
}

#[test]
fn sends_are_rate_limited_per_connection() {
    let config = ChatConfig {
        max_sends_per_second: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    let mut a = connected(&node, alice());
    let mut b = connected(&node, bob());
    a.subscribe("errors", "/user/queue/errors", "");
    for n in 0..5 {
        a.send_chat("lobby", "spam", Some(&format!("r{n}")));
    }
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r0", "r1", "r2"]);
    assert_eq!(errors(&frames), ["RATE_LIMITED", "RATE_LIMITED"]);

    // Another connection has its own bucket, and time refills this one.
    b.send_chat("lobby", "hello", Some("b"));
    assert_eq!(receipts(&b.frames()), ["b"]);
    a.advance(Duration::from_secs(1));
    a.send_chat("lobby", "later", Some("r5"));
    assert_eq!(receipts(&a.frames()), ["r5"]);
}

#[test]
fn subscribes_are_rate_limited_and_a_refused_one_frees_its_id() {
    let config = ChatConfig {
        max_subscribes_per_second: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    let mut a = connected(&node, alice());
    a.subscribe("errors", "/user/queue/errors", "");
    for n in 0..4 {
        a.subscribe(
            &format!("c{n}"),
            "/sub/channel/lobby",
            &format!("receipt:s{n}\n"),
        );
    }
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["s0", "s1"]);
    assert_eq!(errors(&frames), ["RATE_LIMITED", "RATE_LIMITED"]);
    assert_eq!(a.session.state(), State::Connected);

    // A second later the bucket has refilled, and the refused id is free again.
    a.advance(Duration::from_secs(1));
    a.subscribe("c3", "/sub/channel/lobby", "receipt:again\n");
    assert_eq!(receipts(&a.frames()), ["again"]);
}

#[test]
fn history_subscription_answers_once_newest_first() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    for n in 1..=120 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    a.subscribe("h", "/pub/history/lobby", "receipt:rh\n");
    a.subscribe("h5", "/pub/history/lobby", "limit:5\n");
    a.subscribe("hmax", "/pub/history/lobby", "limit:1000\n");
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
    node.post(&bob(), "lobby", "later");
    assert!(on_subscription(&a.frames(), "h").is_empty());
}

#[test]
fn since_id_replays_what_was_missed_with_no_gap_and_no_duplicate() {
    let node = Node::new();
    for n in 1..=5 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    let mut a = connected(&node, alice());

    // While the replay is read (after the head), one message is stored just before the read
    // of where since-id points and one just after: both come live, while the replay is still
    // being read.
    let (n1, n2) = (node.clone(), node.clone());
    node.backend.around_next_after(
        Box::new(move || {
            n1.post(&bob(), "lobby", "m6");
        }),
        Box::new(move || {
            n2.post(&bob(), "lobby", "m7");
        }),
    );
    a.subscribe("s", "/sub/channel/lobby", "since-id:2\nreceipt:r\n");
    assert_eq!(
        a.sink.len(),
        2,
        "m6 and m7 were queued live during the replay"
    );
    node.post(&bob(), "lobby", "m8");

    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["m3", "m4", "m5", "m6", "m7", "m8"]);
    assert_eq!(receipts(&frames), ["r"]);
}

#[test]
fn since_seq_replays_after_that_seq_and_every_message_carries_its_seq() {
    let node = Node::new();
    for n in 1..=5 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    let mut a = connected(&node, alice());
    a.subscribe("s", "/sub/channel/lobby", "since-seq:3\n");
    node.post(&bob(), "lobby", "m6");
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
    let mut b = connected(&node, bob());
    b.subscribe("both", "/sub/channel/lobby", "since-seq:5\nsince-id:1\n");
    b.subscribe("live", "/sub/channel/lobby", "");
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

#[test]
fn since_id_replay_is_capped_to_the_newest() {
    let config = ChatConfig {
        max_replay: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    for n in 1..=10 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    let mut a = connected(&node, alice());
    a.subscribe("s", "/sub/channel/lobby", "since-id:1\n");
    let frames = a.frames();
    let ids: Vec<u64> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [8, 9, 10]);

    // since-id at the head replays nothing; a bad since-id is a BAD_REQUEST.
    a.subscribe("errors", "/user/queue/errors", "");
    a.subscribe("t", "/sub/channel/lobby", "since-id:10\n");
    a.subscribe("u", "/sub/channel/lobby", "since-id:abc\n");
    let frames = a.frames();
    assert!(on_subscription(&frames, "t").is_empty());
    assert_eq!(errors(&frames), ["BAD_REQUEST"]);
}

#[test]
fn entry_and_presence_counts_follow_connections_and_rooms() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.subscribe("entry", "/sub/channel/entry", "");
    a.subscribe("p", "/sub/presence/lobby", "");
    let frames = a.frames();
    let entry = on_subscription(&frames, "entry");
    assert_eq!(entry.len(), 1);
    assert_eq!(&entry[0].body[..], b"1");
    assert_eq!(entry[0].get("content-type"), Some("text/plain"));
    let presence = on_subscription(&frames, "p");
    assert_eq!(json(presence[0]), json!({"roomId": "lobby", "count": 0}));

    let mut b = connected(&node, bob());
    b.subscribe("c1", "/sub/channel/lobby", "");
    b.subscribe("c2", "/sub/channel/lobby", "");
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
    b.send("UNSUBSCRIBE\nid:c1\nreceipt:u1\n\n\0");
    assert_eq!(receipts(&b.frames()), ["u1"]);
    let counts: Vec<u64> = on_subscription(&a.frames(), "p")
        .iter()
        .map(|f| json(f)["count"].as_u64().expect("count"))
        .collect();
    assert!(counts.is_empty(), "{counts:?}");

    // Disconnecting updates both counts.
    b.send("DISCONNECT\nreceipt:bye\n\n\0");
    // The driver may call it again: idempotent, the session already left.
    assert_eq!(b.connection.closed(), None);
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

#[test]
fn unsubscribe_stops_deliveries_even_those_already_queued() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    node.create_room("other", "Other");
    a.subscribe("s", "/sub/channel/lobby", "");
    a.frames();
    node.post(&bob(), "lobby", "queued");
    assert_eq!(a.sink.len(), 1);

    // The id is reused for another room before the queued lobby message is delivered.
    a.send("UNSUBSCRIBE\nid:s\n\n\0");
    a.subscribe("s", "/sub/channel/other", "");
    node.post(&bob(), "other", "fresh");
    let frames = a.frames();
    let texts: Vec<String> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["message"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(texts, ["fresh"]);
}

#[test]
fn the_session_accepts_a_subscription_when_its_start_is_read_and_refuses_it_when_that_fails() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    // Keys are numbered per session from 1.
    let (channel, errors_key, failed) =
        (SubscriptionKey(1), SubscriptionKey(2), SubscriptionKey(3));
    a.send_without_jobs("SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nreceipt:r\n\n\0");
    assert_eq!(a.session.subscription_count(), 1, "held by the session...");
    assert_eq!(
        a.session.subscription(channel),
        None,
        "...but not live before its start"
    );
    a.run_jobs();
    assert_eq!(a.session.subscription(channel), Some(AckMode::Auto));
    assert_eq!(receipts(&a.frames()), ["r"]);

    // The error queue has nothing to read first: it is live at once.
    a.send_without_jobs("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\0");
    assert_eq!(a.session.subscription(errors_key), Some(AckMode::Auto));

    // A start that could not be read: refused, so the session holds nothing for it.
    a.send_without_jobs("SUBSCRIBE\nid:p\ndestination:/sub/presence/lobby\nreceipt:r2\n\n\0");
    assert_eq!(a.session.subscription_count(), 3);
    assert!(matches!(
        a.connection.poll_job(),
        Some(Job::CountRoom { .. })
    ));
    assert!(a.connection.on_job_done(
        JobDone::Count(Err(ChatError::Unavailable)),
        &mut a.session,
        a.now
    ));
    assert_eq!(a.session.subscription(failed), None);
    assert_eq!(a.session.subscription_count(), 2);
    let frames = a.frames();
    assert_eq!(errors(&frames), ["UNAVAILABLE"]);
    assert!(receipts(&frames).is_empty());
    assert_eq!(node.hub.subscriber_count("/sub/presence/lobby"), 0);
}

#[test]
fn a_slow_consumer_with_too_many_unacked_messages_is_closed() {
    let node = Node::new();
    let config = SessionConfig {
        max_unacked_per_subscription: 2,
        ..SessionConfig::default()
    };
    let mut a = node.client_with("10.0.0.1", config, usize::MAX);
    a.connect(&alice());
    a.send("SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nack:client\n\n\0");
    a.frames();
    for n in 0..3 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    assert!(!a.pump(), "the third delivery is refused");
    let frames = a.frames();
    let error = frames
        .iter()
        .find(|f| f.command == Command::Error)
        .expect("ERROR");
    assert_eq!(error.get("message"), Some("slow consumer"));
}

#[test]
fn a_full_outbound_queue_drops_the_connection_from_the_hub_not_the_room() {
    let node = Node::new();
    let mut slow = node.client_with("10.0.0.1", SessionConfig::default(), 1);
    slow.connect(&alice());
    slow.subscribe("s", "/sub/channel/lobby", "");
    let mut fast = connected(&node, bob());
    fast.subscribe("f", "/sub/channel/lobby", "");
    slow.frames();
    fast.frames();
    for n in 0..3 {
        node.post(&bob(), "lobby", &format!("m{n}"));
    }
    assert_eq!(on_subscription(&fast.frames(), "f").len(), 3);
    assert_eq!(slow.sink.len(), 1);
    assert_eq!(node.hub.subscriber_count("/sub/channel/lobby"), 1);
}

#[test]
fn ack_nack_and_commit_are_receipted() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.send("BEGIN\ntransaction:t\n\n\0");
    a.send("SEND\ndestination:/pub/chat\ntransaction:t\n\n{\"roomId\":\"lobby\",\"message\":\"held\"}\0");
    assert!(node.backend.stored("lobby").is_empty());
    a.send("COMMIT\ntransaction:t\nreceipt:c\n\n\0");
    let frames = a.frames();
    assert!(receipts(&frames).contains(&"c"));
    assert_eq!(node.backend.stored("lobby").len(), 1);
    a.subscribe("s", "/sub/channel/lobby", "ack:client-individual\n");
    node.post(&bob(), "lobby", "ack me");
    let frames = a.frames();
    let ack = on_subscription(&frames, "s")[0]
        .get("ack")
        .expect("ack header")
        .to_owned();
    a.send(&format!("ACK\nid:{ack}\nreceipt:a\n\n\0"));
    assert_eq!(receipts(&a.frames()), ["a"]);
}

/// Feeds `done` as the result of the job the connection gave last.
fn answer(client: &mut Client, done: JobDone) {
    assert!(
        client
            .connection
            .on_job_done(done, &mut client.session, client.now)
    );
}

#[test]
fn each_frame_says_what_io_it_needs_as_a_job_one_at_a_time() {
    let node = Node::new();
    let mut a = node.client("10.0.0.1");
    a.send_without_jobs(&format!(
        "CONNECT\naccept-version:1.2\nhost:chat\nAuthorization:Bearer {}\n\n\0",
        FakeTokens::valid(&alice())
    ));
    let session = a.connection.session_key().clone();
    assert_eq!(
        a.connection.poll_job(),
        Some(Job::AnnounceConnected {
            session: session.clone()
        })
    );
    assert_eq!(a.connection.poll_job(), None, "one at a time");
    answer(&mut a, JobDone::Done);
    assert_eq!(a.connection.poll_job(), None);

    a.send_without_jobs(
        "SUBSCRIBE\nid:c1\ndestination:/sub/channel/lobby\nsince-seq:3\n\n\0\
         SUBSCRIBE\nid:c2\ndestination:/sub/channel/lobby\nsince-id:7\n\n\0\
         SUBSCRIBE\nid:e\ndestination:/sub/channel/entry\n\n\0\
         SUBSCRIBE\nid:p\ndestination:/sub/presence/lobby\n\n\0\
         SUBSCRIBE\nid:h\ndestination:/pub/history/lobby\nlimit:5\n\n\0\
         UNSUBSCRIBE\nid:c1\nreceipt:u1\n\n\0\
         UNSUBSCRIBE\nid:c2\nreceipt:u2\n\n\0",
    );
    let lobby = rtchat_chat::RoomId::parse("lobby").expect("room");
    let expected = [
        (
            Job::StartChannel {
                session: session.clone(),
                room: lobby.clone(),
                since: Some(Since::Seq(3)),
                join: true,
                max_replay: ChatConfig::default().max_replay,
            },
            JobDone::ChannelStarted(Ok(ChannelStart {
                head: 3,
                missed: Vec::new(),
            })),
        ),
        (
            // Already in the room through c1: presence is not told again.
            Job::StartChannel {
                session: session.clone(),
                room: lobby.clone(),
                since: Some(Since::Id(7)),
                join: false,
                max_replay: ChatConfig::default().max_replay,
            },
            JobDone::ChannelStarted(Ok(ChannelStart {
                head: 3,
                missed: Vec::new(),
            })),
        ),
        (Job::CountConnections, JobDone::Count(Ok(1))),
        (
            Job::CountRoom {
                room: lobby.clone(),
            },
            JobDone::Count(Ok(1)),
        ),
        (
            Job::History {
                room: lobby.clone(),
                limit: 5,
            },
            JobDone::History(Ok(Vec::new())),
        ),
        // Leaving c1 keeps the session in the room through c2: no job, only a RECEIPT; c2
        // was its last subscription to the room.
        (
            Job::LeaveRoom {
                session: session.clone(),
                room: lobby,
            },
            JobDone::Done,
        ),
    ];
    for (job, done) in expected {
        assert_eq!(a.connection.poll_job(), Some(job));
        answer(&mut a, done);
    }
    assert_eq!(a.connection.poll_job(), None);
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["u1", "u2"]);
    assert_eq!(&on_subscription(&frames, "e")[0].body[..], b"1");
    assert_eq!(
        json(on_subscription(&frames, "p")[0]),
        json!({"roomId": "lobby", "count": 1})
    );
    assert_eq!(json(on_subscription(&frames, "h")[0]), json!([]));

    // An answer that needs no job goes at once when nothing is before it.
    a.send_without_jobs("UNSUBSCRIBE\nid:e\nreceipt:u3\n\n\0");
    assert_eq!(a.connection.poll_job(), None);
    assert_eq!(receipts(&a.frames()), ["u3"]);

    // A job still running when the connection ends is for nobody; the end is one job.
    a.send_without_jobs("SUBSCRIBE\nid:late\ndestination:/sub/channel/entry\nreceipt:r\n\n\0");
    assert_eq!(a.connection.poll_job(), Some(Job::CountConnections));
    assert_eq!(a.connection.closed(), Some(Job::Disconnected { session }));
    assert_eq!(a.connection.closed(), None);
    answer(&mut a, JobDone::Count(Ok(1)));
    assert_eq!(a.connection.poll_job(), None);
    assert!(a.frames().is_empty());
}

#[test]
fn a_subscription_starts_with_what_its_job_read_or_is_refused_when_the_read_failed() {
    let node = Node::new();
    let mut a = connected(&node, alice());
    a.subscribe("errors", "/user/queue/errors", "");
    a.frames();
    let message = |seq: u64| rtchat_chat::ChatMessage {
        id: 100 + seq,
        seq,
        room_id: "lobby".to_owned(),
        message: format!("m{seq}"),
        rand_id: "Oak2".to_owned(),
        name_tag: "#BBBBBB".to_owned(),
        created_at: NOW.to_owned(),
        ip_address: "10.0".to_owned(),
    };

    // The store failed: the SUBSCRIBE is refused, not receipted, and its id is free again.
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nsince-seq:0\nreceipt:r1\n\n\0",
    );
    assert!(matches!(
        a.connection.poll_job(),
        Some(Job::StartChannel { .. })
    ));
    answer(&mut a, JobDone::ChannelStarted(Err(ChatError::Unavailable)));
    let frames = a.frames();
    assert_eq!(errors(&frames), ["UNAVAILABLE"]);
    assert!(receipts(&frames).is_empty());

    // The same id again; the replay goes out up to the head it was read with, then the
    // RECEIPT.
    a.send_without_jobs(
        "SUBSCRIBE\nid:s\ndestination:/sub/channel/lobby\nsince-seq:0\nreceipt:r2\n\n\0",
    );
    assert!(matches!(
        a.connection.poll_job(),
        Some(Job::StartChannel { .. })
    ));
    answer(
        &mut a,
        JobDone::ChannelStarted(Ok(ChannelStart {
            head: 2,
            missed: vec![message(1), message(2), message(3)],
        })),
    );
    let frames = a.frames();
    let seqs: Vec<u64> = on_subscription(&frames, "s")
        .iter()
        .map(|f| json(f)["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        [1, 2],
        "nothing past the head the replay was read up to"
    );
    assert_eq!(frames.last().map(|f| f.command), Some(Command::Receipt));

    // Counts and history that could not be read are refused the same way.
    a.send_without_jobs(
        "SUBSCRIBE\nid:p\ndestination:/sub/presence/nowhere\nreceipt:r3\n\n\0\
         SUBSCRIBE\nid:h\ndestination:/pub/history/lobby\nreceipt:r4\n\n\0",
    );
    assert!(matches!(
        a.connection.poll_job(),
        Some(Job::CountRoom { .. })
    ));
    answer(&mut a, JobDone::Count(Err(ChatError::UnknownRoom)));
    assert!(matches!(a.connection.poll_job(), Some(Job::History { .. })));
    answer(&mut a, JobDone::History(Ok(vec![message(2), message(1)])));
    let frames = a.frames();
    assert_eq!(errors(&frames), ["UNKNOWN_ROOM"]);
    assert_eq!(receipts(&frames), ["r4"]);
    let history = json(on_subscription(&frames, "h")[0]);
    assert_eq!(history[0]["message"], "m2");
    assert_eq!(history[1]["message"], "m1");
}

// ---- the session lives as long as its token ----

/// A client connected as `who` with a token that expires `seconds` after the clock's now.
fn connected_for(node: &Node, who: &rtchat_chat::Identity, seconds: u64) -> Client {
    let mut client = node.client("192.168.1.10");
    let frame = client.connect_with(&format!(
        "Authorization:Bearer {}\n",
        FakeTokens::valid_for(who, seconds)
    ));
    assert_eq!(frame.command, Command::Connected, "{frame:?}");
    client
}

#[test]
fn the_session_ends_with_expired_token_when_its_token_expires() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    let connected_at = a.now;
    assert_eq!(
        a.connection.poll_timeout(),
        Some(connected_at + Duration::from_secs(60)),
        "the deadline is the token's exp, as the wall clock tells"
    );

    a.advance(Duration::from_secs(59));
    assert!(!a.timeout(), "not yet");
    assert!(a.frames().is_empty());
    assert_eq!(a.session.state(), State::Connected);

    a.advance(Duration::from_secs(1));
    assert!(a.timeout());
    let frames = a.frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Error);
    assert_eq!(frames[0].get("message"), Some("EXPIRED_TOKEN"));
    let body = String::from_utf8_lossy(&frames[0].body);
    assert!(body.contains("/init"), "{body}");
    assert_ne!(a.session.state(), State::Connected, "the ERROR ends it");
    assert!(a.connection.is_closed());
    assert_eq!(a.connection.poll_timeout(), None);
}

#[test]
fn a_frame_read_after_the_deadline_meets_the_expired_session() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    a.advance(Duration::from_secs(61));
    // The driver had not woken for the deadline yet when this came.
    a.send_chat("lobby", "too late", Some("r1"));
    let frames = a.frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].get("message"), Some("EXPIRED_TOKEN"));
    assert!(receipts(&frames).is_empty());
    assert!(
        node.backend.stored("lobby").is_empty(),
        "nothing was stored"
    );
}

#[test]
fn a_session_whose_token_has_no_reachable_exp_has_no_deadline() {
    let node = Node::new();
    let mut a = node.client("192.168.1.10");
    let token = format!("valid|Wren1|#AAAAAA|test|{}", u64::MAX);
    let frame = a.connect_with(&format!("Authorization:Bearer {token}\n"));
    assert_eq!(frame.command, Command::Connected);
    assert_eq!(a.connection.poll_timeout(), None);
}

#[test]
fn a_refresh_moves_the_deadline_and_is_receipted() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    a.subscribe("s", "/sub/channel/lobby", "");
    a.frames();

    a.advance(Duration::from_secs(30));
    a.send_token(&FakeTokens::valid_for(&alice(), 3600), Some("t1"));
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["t1"]);
    // The test's wall clock stands still: the new exp is an hour from the refresh.
    assert_eq!(
        a.connection.poll_timeout(),
        Some(a.now + Duration::from_secs(3600))
    );

    // Past the first token's exp, the session lives on.
    a.advance(Duration::from_secs(60));
    assert!(!a.timeout());
    a.send_chat("lobby", "still here", Some("r1"));
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["r1"]);
    assert_eq!(on_subscription(&frames, "s").len(), 1);

    // Until the new one's.
    a.advance(Duration::from_secs(3600));
    assert!(a.timeout());
    assert_eq!(a.frames()[0].get("message"), Some("EXPIRED_TOKEN"));
}

#[test]
fn a_refresh_may_come_with_surrounding_white_space_and_without_a_receipt() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    let connected_at = a.now;
    a.send_token(
        &format!("\n {} \r\n", FakeTokens::valid_for(&alice(), 120)),
        None,
    );
    assert!(a.frames().is_empty(), "no receipt asked, no error");
    assert_eq!(
        a.connection.poll_timeout(),
        Some(connected_at + Duration::from_secs(120))
    );
}

#[test]
fn a_refresh_with_another_identitys_token_is_forbidden() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    let deadline = a.connection.poll_timeout();
    a.subscribe("errors", "/user/queue/errors", "");
    a.frames();
    // Another tag, then the same tag under another name: neither is this session's identity.
    a.send_token(&FakeTokens::valid_for(&bob(), 3600), Some("t1"));
    let renamed = identity("Oak9", &alice().name_tag);
    a.send_token(&FakeTokens::valid_for(&renamed, 3600), Some("t2"));
    let frames = a.frames();
    assert_eq!(errors(&frames), ["FORBIDDEN", "FORBIDDEN"]);
    let failed: Vec<_> = frames.iter().filter_map(|f| f.get("receipt-id")).collect();
    assert_eq!(failed, ["t1", "t2"]);
    assert!(receipts(&frames).is_empty());
    assert_eq!(a.connection.poll_timeout(), deadline, "the deadline stays");
    assert_eq!(a.connection.identity(), Some(&alice()));
    assert_eq!(a.session.state(), State::Connected);
}

#[test]
fn a_refresh_with_a_bad_or_expired_token_is_refused() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    let deadline = a.connection.poll_timeout();
    a.subscribe("errors", "/user/queue/errors", "");
    a.frames();
    a.send_token("forged", Some("t1"));
    a.send_token("", Some("t2"));
    a.send_token(&FakeTokens::expired(&alice()), Some("t3"));
    // Too large: refused before it is looked at.
    let huge = format!(
        "{}|{}",
        FakeTokens::valid_for(&alice(), 3600),
        "x".repeat(rtchat_chat::MAX_TOKEN_BYTES)
    );
    a.send_token(&huge, Some("t4"));
    let frames = a.frames();
    assert_eq!(
        errors(&frames),
        [
            "INVALID_TOKEN",
            "INVALID_TOKEN",
            "EXPIRED_TOKEN",
            "INVALID_TOKEN"
        ]
    );
    assert!(receipts(&frames).is_empty());
    assert_eq!(a.connection.poll_timeout(), deadline);
    assert_eq!(a.session.state(), State::Connected);
}

#[test]
fn a_refresh_with_a_token_that_expires_no_later_is_refused_as_stale() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 600);
    let deadline = a.connection.poll_timeout();
    a.subscribe("errors", "/user/queue/errors", "");
    a.frames();
    a.send_token(&FakeTokens::valid_for(&alice(), 300), Some("older"));
    a.send_token(&FakeTokens::valid_for(&alice(), 600), Some("same"));
    let frames = a.frames();
    assert_eq!(errors(&frames), ["STALE_TOKEN", "STALE_TOKEN"]);
    assert_eq!(a.connection.poll_timeout(), deadline);
    // A good one after them is still taken.
    a.send_token(&FakeTokens::valid_for(&alice(), 900), Some("later"));
    assert_eq!(receipts(&a.frames()), ["later"]);
}

#[test]
fn a_refused_refresh_without_an_error_queue_gets_an_error_frame() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    a.send_token(&FakeTokens::valid_for(&bob(), 3600), Some("t1"));
    let frames = a.frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Error);
    assert_eq!(frames[0].get("message"), Some("FORBIDDEN"));
    assert_eq!(frames[0].get("receipt-id"), Some("t1"));
    assert_ne!(a.session.state(), State::Connected);
}

#[test]
fn a_refresh_is_answered_in_turn_with_the_sends_before_it() {
    let node = Node::new();
    let mut a = connected_for(&node, &alice(), 60);
    let connected_at = a.now;
    node.appender.hold(true);
    a.send_chat("lobby", "one", Some("r1"));
    a.send_token(&FakeTokens::valid_for(&alice(), 3600), Some("t1"));
    assert!(
        a.frames().is_empty(),
        "the refresh's receipt waits for r1's"
    );
    assert_eq!(
        a.connection.poll_timeout(),
        Some(connected_at + Duration::from_secs(3600)),
        "though it took effect at once"
    );
    node.appender.hold(false);
    node.appender.flush();
    assert_eq!(receipts(&a.frames()), ["r1", "t1"]);
}

#[test]
fn refreshes_count_against_the_send_rate() {
    let config = ChatConfig {
        max_sends_per_second: 1,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config);
    let mut a = connected_for(&node, &alice(), 60);
    a.subscribe("errors", "/user/queue/errors", "");
    a.frames();
    a.send_token(&FakeTokens::valid_for(&alice(), 120), Some("t1"));
    a.send_token(&FakeTokens::valid_for(&alice(), 180), Some("t2"));
    let frames = a.frames();
    assert_eq!(receipts(&frames), ["t1"]);
    assert_eq!(errors(&frames), ["RATE_LIMITED"]);
}
