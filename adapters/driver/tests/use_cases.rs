//! The chat's use cases (the HTTP API's, and posting from outside a connection) run against
//! the in-memory adapters, with a store and a broker that fail on demand.

mod common;

use common::*;
use rtchat_chat::{ChatConfig, ChatError, RoomEvent};
use rtchat_driver::ChatUseCases;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn lobby_exists_from_the_start_and_restarts_are_fine() {
    let node = Node::new().await;
    let rooms = node.service.rooms().await.expect("rooms");
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].0.room_id.as_str(), "lobby");
    assert_eq!(rooms[0].0.name, "Lobby");
    assert_eq!(rooms[0].1, 0);
}

#[tokio::test]
async fn post_message_stores_then_publishes_and_returns_the_stored_message() {
    let node = Node::new().await;
    let stored = node
        .service
        .post_message(&alice(), ip("192.168.3.4"), "lobby", "  hello  ")
        .await
        .expect("posted");
    assert_eq!(stored.message, "hello");
    assert_eq!(stored.room_id, "lobby");
    assert_eq!(stored.rand_id, "Wren1");
    assert_eq!(stored.name_tag, "#AAAAAA");
    assert_eq!(stored.created_at, NOW);
    assert_eq!(stored.ip_address, "192.168");

    let events = node.broker.events.lock().expect("lock").clone();
    assert_eq!(
        events,
        vec![(RoomEvent::Message(stored.clone()), true)],
        "published once, after storing"
    );
}

#[tokio::test]
async fn post_message_validation() {
    let node = Node::new().await;
    let post = |room: &'static str, text: String| {
        let service = node.service.clone();
        async move { service.post_message(&alice(), ip("::1"), room, &text).await }
    };
    assert_eq!(
        post("bad room!", "hi".into()).await,
        Err(ChatError::InvalidRoomId)
    );
    assert_eq!(
        post("nowhere", "hi".into()).await,
        Err(ChatError::UnknownRoom)
    );
    assert_eq!(
        post("lobby", " \n ".into()).await,
        Err(ChatError::EmptyMessage)
    );
    assert_eq!(
        post("lobby", "é".repeat(2001)).await,
        Err(ChatError::MessageTooLong { max: 2000 })
    );
    assert!(post("lobby", "é".repeat(2000)).await.is_ok());
    assert_eq!(
        node.broker.events.lock().expect("lock").len(),
        1,
        "nothing published for refused messages"
    );
}

#[tokio::test]
async fn backend_failures_are_unavailable_and_publish_failures_are_not_errors() {
    let node = Node::new().await;
    node.broker.failing.store(true, Ordering::SeqCst);
    let stored = node
        .service
        .post_message(&alice(), ip("10.1.2.3"), "lobby", "still stored")
        .await;
    assert!(
        stored.is_ok(),
        "stored even though the broker is down: {stored:?}"
    );

    node.store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        node.service
            .post_message(&alice(), ip("10.1.2.3"), "lobby", "x")
            .await,
        Err(ChatError::Unavailable)
    );
    assert_eq!(
        node.service.history(&alice(), "lobby", 10, None).await,
        Err(ChatError::Unavailable)
    );
}

#[tokio::test]
async fn history_pages_newest_first_by_keyset() {
    let node = Node::new().await;
    for n in 1..=25 {
        node.service
            .post_message(&alice(), ip("10.0.0.1"), "lobby", &format!("m{n}"))
            .await
            .expect("posted");
    }
    let ids =
        |messages: Vec<rtchat_chat::ChatMessage>| messages.iter().map(|m| m.id).collect::<Vec<_>>();
    let first = ids(node
        .service
        .history(&alice(), "lobby", 10, None)
        .await
        .expect("history"));
    assert_eq!(first, (16..=25).rev().collect::<Vec<_>>());
    let second = ids(node
        .service
        .history(&alice(), "lobby", 10, Some(16))
        .await
        .expect("history"));
    assert_eq!(second, (6..=15).rev().collect::<Vec<_>>());
    let third = ids(node
        .service
        .history(&alice(), "lobby", 10, Some(6))
        .await
        .expect("history"));
    assert_eq!(third, (1..=5).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn history_checks_limit_and_room() {
    let node = Node::new().await;
    assert!(matches!(
        node.service.history(&alice(), "lobby", 0, None).await,
        Err(ChatError::BadRequest(_))
    ));
    assert!(matches!(
        node.service.history(&alice(), "lobby", 101, None).await,
        Err(ChatError::BadRequest(_))
    ));
    assert!(
        node.service
            .history(&alice(), "lobby", 100, None)
            .await
            .is_ok()
    );
    assert_eq!(
        node.service.history(&alice(), "nope", 10, None).await,
        Err(ChatError::UnknownRoom)
    );
    assert_eq!(
        node.service.history(&alice(), "../x", 10, None).await,
        Err(ChatError::InvalidRoomId)
    );
}

#[tokio::test]
async fn create_room_with_and_without_an_id() {
    let node = Node::new().await;
    let garden = node
        .service
        .create_room(" Garden ", Some("garden"))
        .await
        .expect("created");
    assert_eq!(
        (garden.room_id.as_str(), garden.name.as_str()),
        ("garden", "Garden")
    );
    assert_eq!(
        node.service.create_room("Again", Some("garden")).await,
        Err(ChatError::RoomExists)
    );
    assert_eq!(
        node.service.create_room("Lobby 2", Some("lobby")).await,
        Err(ChatError::RoomExists)
    );

    let generated = node
        .service
        .create_room("Anywhere", None)
        .await
        .expect("created");
    let id = generated.room_id.as_str();
    assert!(id.starts_with("room-") && id.len() == 17, "{id}");
    assert!(id[5..].bytes().all(|b| b.is_ascii_hexdigit()));
    let other = node
        .service
        .create_room("Anywhere", None)
        .await
        .expect("created");
    assert_ne!(other.room_id, generated.room_id);

    let listed: Vec<String> = node
        .service
        .rooms()
        .await
        .expect("rooms")
        .into_iter()
        .map(|(room, _)| room.room_id.to_string())
        .collect();
    assert_eq!(listed, ["lobby", "garden", id, other.room_id.as_str()]);

    // Posting works at once in a new room.
    node.service
        .post_message(&alice(), ip("10.0.0.1"), "garden", "first")
        .await
        .expect("posted");
}

#[tokio::test]
async fn rooms_are_capped_but_existing_ones_still_answer() {
    let config = ChatConfig {
        max_rooms: 3,
        ..ChatConfig::default()
    };
    let node = Node::with_config(config).await;
    // The lobby is the first of the three.
    node.service
        .create_room("One", Some("one"))
        .await
        .expect("second room");
    let pair = node
        .service
        .private_room(&alice(), "#AAAAAA", "#BBBBBB")
        .await
        .expect("third room");
    assert_eq!(
        node.service.create_room("Two", Some("two")).await,
        Err(ChatError::TooManyRooms)
    );
    assert_eq!(
        node.service
            .private_room(&alice(), "#AAAAAA", "#CCCCCC")
            .await,
        Err(ChatError::TooManyRooms)
    );
    assert_eq!(ChatError::TooManyRooms.code(), "ROOM_LIMIT_REACHED");
    // A pair that already has its room still gets it.
    assert_eq!(
        node.service
            .private_room(&bob(), "#BBBBBB", "#AAAAAA")
            .await,
        Ok(pair)
    );
}

#[tokio::test]
async fn create_room_refuses_bad_names_and_ids() {
    let node = Node::new().await;
    assert!(matches!(
        node.service.create_room("  ", None).await,
        Err(ChatError::BadRequest(_))
    ));
    assert!(matches!(
        node.service.create_room(&"n".repeat(101), None).await,
        Err(ChatError::BadRequest(_))
    ));
    for id in [
        "bad id",
        "",
        "entry",
        "private-0123456789abcdef",
        &"x".repeat(65),
    ] {
        assert_eq!(
            node.service.create_room("Name", Some(id)).await,
            Err(ChatError::InvalidRoomId),
            "{id:?}"
        );
    }
}

#[tokio::test]
async fn private_rooms_are_the_same_for_a_pair_in_either_order_and_unlisted() {
    let node = Node::new().await;
    let ab = node
        .service
        .private_room(&alice(), "#AAAAAA", "#BBBBBB")
        .await
        .expect("room");
    let ba = node
        .service
        .private_room(&bob(), "#BBBBBB", "#AAAAAA")
        .await
        .expect("room");
    let again = node
        .service
        .private_room(&alice(), " #AAAAAA ", "#BBBBBB")
        .await
        .expect("room");
    assert_eq!(ab, ba);
    assert_eq!(ab, again);
    assert!(ab.room_id.is_private());

    let ac = node
        .service
        .private_room(&alice(), "#AAAAAA", "#CCCCCC")
        .await
        .expect("room");
    assert_ne!(ab.room_id, ac.room_id);

    let listed = node.service.rooms().await.expect("rooms");
    assert!(listed.iter().all(|(room, _)| !room.is_private()));
    node.service
        .post_message(&alice(), ip("10.0.0.1"), ab.room_id.as_str(), "psst")
        .await
        .expect("private rooms take their members' messages");
}

#[tokio::test]
async fn a_private_room_is_its_two_members_only() {
    let node = Node::new().await;
    let carol = identity("Carol3", "#CCCCCC");
    // Asking for someone else's pair is refused: only one of the two may.
    assert_eq!(
        node.service
            .private_room(&carol, "#AAAAAA", "#BBBBBB")
            .await,
        Err(ChatError::Forbidden)
    );
    let ab = node
        .service
        .private_room(&alice(), "#AAAAAA", "#BBBBBB")
        .await
        .expect("room");
    node.service
        .post_message(&alice(), ip("10.0.0.1"), ab.room_id.as_str(), "psst")
        .await
        .expect("stored");
    // Carol knows both tags and the room id: she still cannot read or write it.
    assert_eq!(
        node.service
            .history(&carol, ab.room_id.as_str(), 10, None)
            .await,
        Err(ChatError::Forbidden)
    );
    assert_eq!(
        node.service
            .post_message(&carol, ip("10.0.0.3"), ab.room_id.as_str(), "hi")
            .await,
        Err(ChatError::Forbidden)
    );
    assert_eq!(
        node.service
            .history(&bob(), ab.room_id.as_str(), 10, None)
            .await
            .expect("a member reads it")
            .len(),
        1
    );
    assert_eq!(ChatError::Forbidden.code(), "FORBIDDEN");
}

#[tokio::test]
async fn private_room_checks_its_inputs() {
    let node = Node::new().await;
    for (a, b) in [
        ("", "#BBBBBB"),
        ("#AAAAAA", " "),
        ("alice", "#BBBBBB"),
        ("#AAAAAA", "#AAAAAA"),
    ] {
        assert!(
            matches!(
                node.service.private_room(&alice(), a, b).await,
                Err(ChatError::BadRequest(_))
            ),
            "{a:?} {b:?}"
        );
    }
}
