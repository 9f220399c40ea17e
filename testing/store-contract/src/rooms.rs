//! The checks of [`RoomStore`](rtchat_chat::RoomStore).

use crate::Store;
use crate::helpers::{room, room_id};
use rtchat_chat::CreateRoomError;

/// `create`, its duplicate, `get`, `list` and `count`.
pub async fn rooms_create_duplicate_get_list_and_count<S: Store>(store: S) {
    assert_eq!(store.count().await, Ok(0));
    assert!(store.list().await.expect("list").is_empty());
    for (id, name) in [
        ("zeta", "Z"),
        ("private-0123456789abcdef", "P"),
        ("alpha", "A"),
        ("mid", "M"),
    ] {
        assert_eq!(store.create(room(id, name)).await, Ok(room(id, name)));
    }
    assert_eq!(
        store.create(room("alpha", "Other")).await,
        Err(CreateRoomError::AlreadyExists)
    );
    assert_eq!(
        store.create(room("private-0123456789abcdef", "P2")).await,
        Err(CreateRoomError::AlreadyExists)
    );
    // Ids are case-sensitive, as everywhere else.
    assert_eq!(
        store.create(room("Alpha", "Upper")).await,
        Ok(room("Alpha", "Upper"))
    );
    // Creation order, private rooms left out; the duplicates changed nothing.
    assert_eq!(
        store.list().await,
        Ok(vec![
            room("zeta", "Z"),
            room("alpha", "A"),
            room("mid", "M"),
            room("Alpha", "Upper"),
        ])
    );
    assert_eq!(
        store.get(&room_id("alpha")).await,
        Ok(Some(room("alpha", "A")))
    );
    assert_eq!(
        store.get(&room_id("private-0123456789abcdef")).await,
        Ok(Some(room("private-0123456789abcdef", "P")))
    );
    assert_eq!(store.get(&room_id("missing")).await, Ok(None));
    assert_eq!(store.count().await, Ok(5));
    let long = "x".repeat(64);
    assert_eq!(
        store.create(room(&long, "long")).await,
        Ok(room(&long, "long"))
    );
    assert_eq!(store.count().await, Ok(6));
}
