//! `--room-idle-ttl`: rooms empty and silent past it are removed (private ones too), while a
//! room somebody is in, `lobby` and the `--room` rooms stay.

mod common;

use common::{StompClient, TestServer};
use rtchat_chat::RoomId;
use rtchat_stomp::Command;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::{Instant, sleep};

const TTL: Duration = Duration::from_millis(400);

/// The ids `GET /rooms` lists.
async fn listed(server: &TestServer) -> BTreeSet<String> {
    let rooms = server.get("/rooms").await;
    assert_eq!(rooms.status, 200, "{}", rooms.body);
    rooms.body["response"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|room| room["roomId"].as_str().map(str::to_owned))
        .collect()
}

/// Whether the store still has room `id` (private rooms are not listed).
async fn exists(server: &TestServer, id: &str) -> bool {
    let id = RoomId::parse(id).expect("room id");
    server
        .service
        .ports()
        .rooms
        .get(&id)
        .await
        .expect("store")
        .is_some()
}

/// Waits (at most 5 s) until `gone` holds.
async fn until<F, Fut>(what: &str, mut gone: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone().await {
        assert!(Instant::now() < deadline, "{what} after 5 s");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_room_idle_past_the_ttl_disappears_while_one_with_a_subscriber_stays() {
    let mut config = common::config();
    config.room_idle_ttl = TTL;
    config.rooms = vec![("garden".to_owned(), "Garden".to_owned())];
    let running = TestServer::start_with(config).await;
    let server = &running;
    let token = server.token_for("#AAAAAA");
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    // `occupied` first, so it has been idle at least as long as `abandoned` when that goes.
    for body in [
        r#"{"name":"Occupied","roomId":"occupied"}"#,
        r#"{"name":"Abandoned","roomId":"abandoned"}"#,
    ] {
        let created = server.request("POST", "/rooms", &auth, Some(body)).await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
    let private = server
        .request(
            "POST",
            "/chatroom/private",
            &auth,
            Some(r##"{"senderId":"#AAAAAA","receiverId":"#BBBBBB"}"##),
        )
        .await;
    assert_eq!(private.status, 200, "{}", private.body);
    let private = private.body["response"]["roomId"]
        .as_str()
        .expect("private room id")
        .to_owned();
    let mut present = StompClient::connect(&server.ws_url(), &token).await;
    present
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/occupied\nreceipt:in\n\n\0")
        .await;
    assert_eq!(present.frame().await.command, Command::Receipt);
    assert_eq!(
        listed(server).await,
        BTreeSet::from(["lobby", "garden", "occupied", "abandoned"].map(str::to_owned))
    );

    until("the abandoned room is still listed", || async move {
        !listed(server).await.contains("abandoned")
    })
    .await;
    assert_eq!(
        listed(server).await,
        BTreeSet::from(["lobby", "garden", "occupied"].map(str::to_owned)),
        "somebody is in `occupied`; `lobby` and `--room` rooms are never removed"
    );
    let private = private.as_str();
    until("the private room is still there", || async move {
        !exists(server, private).await
    })
    .await;
    // Idle just as long, but somebody is in it: it stays through more sweeps.
    sleep(TTL).await;
    assert!(listed(server).await.contains("occupied"));

    // Once its last subscriber is gone, it goes too.
    drop(present);
    until(
        "`occupied` is still listed after its subscriber left",
        || async move { !listed(server).await.contains("occupied") },
    )
    .await;
    assert_eq!(
        listed(server).await,
        BTreeSet::from(["lobby", "garden"].map(str::to_owned))
    );
    running.stop().await;
}

#[tokio::test]
async fn a_room_swept_after_this_node_served_it_is_unknown_not_unstorable() {
    let mut config = common::config();
    config.room_idle_ttl = TTL;
    let running = TestServer::start_with(config).await;
    let server = &running;
    let token = server.token_for("#AAAAAA");
    let bearer = format!("Bearer {token}");
    let created = server
        .request(
            "POST",
            "/rooms",
            &[("Authorization", bearer.as_str())],
            Some(r#"{"name":"Brief","roomId":"brief"}"#),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    // A page posts into the room (so the node has seen it) but stays out of it: nobody is in
    // it, and it goes once it has been silent past the TTL.
    let mut page = StompClient::connect(&server.ws_url(), &token).await;
    let send = |key: &str| {
        format!(
            "SEND\ndestination:/pub/chat\nreceipt:{key}\nmessage-key:{key}\n\n{{\"roomId\":\"brief\",\"message\":\"hello\"}}\0"
        )
    };
    page.send(&send("first")).await;
    let stored = page.frame().await;
    assert_eq!(stored.command, Command::Receipt, "{stored:?}");
    until("the brief room is still there", || async move {
        !exists(server, "brief").await
    })
    .await;
    // The same page, same node: the room is gone, and the SEND says so.
    page.send(&send("second")).await;
    let refused = page.frame().await;
    assert_eq!(refused.command, Command::Error, "{refused:?}");
    assert_eq!(refused.get("message"), Some("UNKNOWN_ROOM"), "{refused:?}");
    assert!(
        !exists(server, "brief").await,
        "the SEND brought the room back"
    );
    running.stop().await;
}
