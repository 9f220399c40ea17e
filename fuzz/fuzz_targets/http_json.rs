//! The JSON request bodies (`POST /rooms` `{"name","roomId"?}`, `POST /chatroom/private`
//! `{"senderId","receiverId"}`) through the real router of a fresh node: axum's `Json`
//! extractor (content type, syntax, shape), the handlers, the service's checks and the store.
//!
//! Input: a control byte (bit 0: which endpoint; bits 1-2: the Content-Type; bits 3-4: the
//! Authorization header, see [`Auth::from_control`]), then the body.
//!
//! What must hold: every answer is an envelope, never a 5xx; without a valid token, a 401; and
//! what is accepted round-trips:
//! - a room created is named as asked (trimmed), has the id asked for (trimmed) or a
//!   generated one, is listed by `GET /rooms` with no one in it, has an empty history, and
//!   cannot be created twice;
//! - a private room echoes the two name tags, one of them is the caller's, its id is a private
//!   one, asking with the two swapped gives the same room, it has an empty history, and
//!   `GET /rooms` does not list it.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use rtchat_chat::PRIVATE_ROOM_PREFIX;
use rtchat_fuzz::{Auth, CALLER_TAG, Node, Reply, runtime};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let private = control & 1 != 0;
    let content_type = match (control >> 1) & 3 {
        0 => Some("application/json"),
        1 => Some("application/json; charset=utf-8"),
        2 => None,
        _ => Some("text/plain"),
    };
    let auth = Auth::from_control(control >> 3, &mut rest);
    let body = rest.to_vec();
    let uri = if private {
        "/chatroom/private"
    } else {
        "/rooms"
    };
    let mut request = auth.apply(Request::builder().method(Method::POST).uri(uri));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let request = request
        .body(Body::from(body.clone()))
        .expect("a POST request");
    runtime().block_on(async {
        let node = Node::new().await;
        let reply = node.send(request).await;
        let shown = String::from_utf8_lossy(&body);
        if !matches!(auth, Auth::Caller) {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{shown}: {reply:?}");
            return;
        }
        if reply.status != StatusCode::OK {
            return;
        }
        assert!(
            content_type.is_some_and(|t| t.starts_with("application/json")),
            "{shown}: accepted without a JSON content type: {reply:?}"
        );
        // What was accepted is JSON: the same text read without the handler's shape. (Lossily:
        // serde_json does not check the UTF-8 of strings it skips, so a field the handler
        // ignores may hold any bytes; the fields it reads are checked.)
        let sent: Value = serde_json::from_str(&shown)
            .unwrap_or_else(|error| panic!("{shown}: accepted a body that is not JSON: {error}"));
        if private {
            private_room_round_trips(&node, &sent, &reply, &shown).await;
        } else {
            room_round_trips(&node, &sent, &reply, &shown).await;
        }
    });
});

async fn room_round_trips(node: &Node, sent: &Value, reply: &Reply, shown: &str) {
    let room = &reply.response;
    let name = sent["name"].as_str().expect("an accepted room has a name");
    assert_eq!(room["name"], name.trim(), "{shown}: {room}");
    let id = room["roomId"].as_str().unwrap_or_default();
    match sent["roomId"].as_str() {
        Some(asked) => assert_eq!(id, asked.trim(), "{shown}: {room}"),
        None => assert!(
            id.strip_prefix("room-")
                .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
            "{shown}: a generated id looks like room-<12 hex digits>: {room}"
        ),
    }
    assert!(
        room.get("count").is_none(),
        "{shown}: a new room has no count: {room}"
    );

    let listed = node.get("/rooms", &Auth::Caller).await;
    let listed = listed.response.as_array().expect("rooms are an array");
    assert!(
        listed.contains(&json!({"roomId": id, "name": name.trim(), "count": 0})),
        "{shown}: not listed as created: {listed:?}"
    );
    let history = node
        .get(&format!("/message?roomId={id}"), &Auth::Caller)
        .await;
    assert_eq!(history.response, json!([]), "{shown}: {history:?}");
    let again = node
        .post_json("/rooms", &json!({"name": name, "roomId": id}))
        .await;
    assert_eq!(
        (again.status, again.kind.as_str()),
        (StatusCode::CONFLICT, "ROOM_EXISTS"),
        "{shown}: created twice"
    );
}

async fn private_room_round_trips(node: &Node, sent: &Value, reply: &Reply, shown: &str) {
    let room = &reply.response;
    let (sender, receiver) = (&sent["senderId"], &sent["receiverId"]);
    assert_eq!(&room["senderId"], sender, "{shown}: {room}");
    assert_eq!(&room["receiverId"], receiver, "{shown}: {room}");
    let tags = [sender, receiver].map(|tag| tag.as_str().unwrap_or_default().trim());
    assert!(
        tags.contains(&CALLER_TAG),
        "{shown}: a private room of two others: {room}"
    );
    let id = room["roomId"].as_str().unwrap_or_default();
    assert!(id.starts_with(PRIVATE_ROOM_PREFIX), "{shown}: {room}");

    let swapped = node
        .post_json(
            "/chatroom/private",
            &json!({"senderId": receiver, "receiverId": sender}),
        )
        .await;
    assert_eq!(
        swapped.response["roomId"], id,
        "{shown}: another room with the two swapped: {swapped:?}"
    );
    let history = node
        .get(&format!("/message?roomId={id}"), &Auth::Caller)
        .await;
    assert_eq!(history.response, json!([]), "{shown}: {history:?}");
    let listed = node.get("/rooms", &Auth::Caller).await;
    assert!(
        listed
            .response
            .as_array()
            .expect("rooms are an array")
            .iter()
            .all(|listed| listed["roomId"] != id),
        "{shown}: a private room is listed: {listed:?}"
    );
}
