//! The checks of room expiry: [`RoomStore::idle`](rtchat_chat::RoomStore::idle) and
//! [`RoomStore::remove_idle`](rtchat_chat::RoomStore::remove_idle). Activity is measured by
//! the store's own clock, so these checks let real time pass: a few tenths of a second.

use crate::Store;
use crate::helpers::{append_one, create_rooms, new_message, room, room_id, whole_log};
use rtchat_chat::{BackendError, RoomId};
use std::collections::BTreeSet;
use std::time::Duration;

/// The idle time the checks ask about.
const IDLE_FOR: Duration = Duration::from_millis(100);

/// Longer than [`IDLE_FOR`], with a margin for clocks that count in milliseconds.
async fn let_idle_time_pass() {
    tokio::time::sleep(IDLE_FOR * 2).await;
}

fn ids(names: &[&str]) -> Vec<RoomId> {
    names.iter().map(|name| room_id(name)).collect()
}

fn set(rooms: &[RoomId]) -> BTreeSet<&str> {
    rooms.iter().map(RoomId::as_str).collect()
}

/// A room is idle once neither its creation nor a stored message is recent: the longest idle
/// first, at most `limit`, private rooms too.
pub async fn idle_rooms_are_those_with_no_recent_creation_or_message<S: Store>(store: S) {
    create_rooms(&store, &["early", "private-0123456789abcdef", "talked"]).await;
    assert_eq!(store.idle(IDLE_FOR, 10).await, Ok(Vec::new()), "all new");
    let_idle_time_pass().await;
    create_rooms(&store, &["late"]).await;
    append_one(&store, new_message("talked", "still here")).await;
    let idle = store.idle(IDLE_FOR, 10).await.expect("idle");
    assert_eq!(
        set(&idle),
        BTreeSet::from(["early", "private-0123456789abcdef"]),
        "a new room and a room with a new message are not idle"
    );
    assert_eq!(
        store.idle(IDLE_FOR, 1).await.expect("idle").len(),
        1,
        "at most `limit`"
    );
    assert_eq!(
        store.idle(Duration::from_secs(3600), 10).await,
        Ok(Vec::new())
    );
    let_idle_time_pass().await;
    let idle = store.idle(IDLE_FOR, 10).await.expect("idle");
    assert_eq!(idle.len(), 4, "{idle:?}");
    // The two rooms idle the longest come first, in either order (created together).
    assert_eq!(
        set(&idle[..2]),
        BTreeSet::from(["early", "private-0123456789abcdef"]),
        "{idle:?}"
    );
}

/// `remove_idle` removes the rooms named that are still idle, with their messages; a room not
/// named stays however idle, and so does a named one with a recent message.
pub async fn removing_idle_rooms_takes_their_messages_and_nothing_else<S: Store>(store: S) {
    let names = ["gone", "private-0123456789abcdef", "kept", "talked"];
    create_rooms(&store, &names).await;
    for name in names {
        append_one(&store, new_message(name, "hello")).await;
    }
    let_idle_time_pass().await;
    let talked = append_one(&store, new_message("talked", "still here")).await;
    let removed = store
        .remove_idle(
            &ids(&["gone", "private-0123456789abcdef", "talked", "missing"]),
            IDLE_FOR,
        )
        .await
        .expect("remove");
    assert_eq!(
        set(&removed),
        BTreeSet::from(["gone", "private-0123456789abcdef"])
    );
    for gone in ["gone", "private-0123456789abcdef"] {
        assert_eq!(store.get(&room_id(gone)).await, Ok(None), "{gone}");
        assert_eq!(whole_log(&store, gone).await, Vec::new(), "{gone}");
        assert_eq!(store.newest(&room_id(gone), 10).await, Ok(Vec::new()));
        assert_eq!(store.head(&room_id(gone)).await, Ok(0), "{gone}");
    }
    assert_eq!(store.count().await, Ok(2));
    assert_eq!(
        store.list().await,
        Ok(vec![room("kept", "kept"), room("talked", "talked")])
    );
    assert_eq!(whole_log(&store, "kept").await.len(), 1, "not named: kept");
    assert_eq!(
        whole_log(&store, "talked").await.last(),
        Some(&talked),
        "active: kept"
    );
    // A removed room takes no message.
    match store
        .append(&room_id("gone"), vec![new_message("gone", "anyone?")])
        .await
    {
        Err(BackendError { .. }) => {}
        Ok(stored) => panic!("stored into a removed room: {stored:?}"),
    }
    assert_eq!(whole_log(&store, "gone").await, Vec::new());
    // Nothing is removed twice, and nothing named means nothing removed.
    assert_eq!(
        store.remove_idle(&ids(&["gone"]), IDLE_FOR).await,
        Ok(Vec::new())
    );
    assert_eq!(store.remove_idle(&[], IDLE_FOR).await, Ok(Vec::new()));
}

/// A room created again with a removed room's id goes on from the removed room's last seq,
/// with new ids, so no seq or id ever names two messages.
pub async fn a_room_created_again_goes_on_from_its_last_seq<S: Store>(store: S) {
    create_rooms(&store, &["again", "private-0123456789abcdef"]).await;
    let mut last = Vec::new();
    for name in ["again", "private-0123456789abcdef"] {
        append_one(&store, new_message(name, "one")).await;
        last.push(append_one(&store, new_message(name, "two")).await);
    }
    let_idle_time_pass().await;
    let removed = store
        .remove_idle(&ids(&["again", "private-0123456789abcdef"]), IDLE_FOR)
        .await
        .expect("remove");
    assert_eq!(removed.len(), 2);
    for (name, before) in ["again", "private-0123456789abcdef"].into_iter().zip(last) {
        store
            .create(room(name, "anew"))
            .await
            .expect("create again");
        assert_eq!(store.head(&room_id(name)).await, Ok(before.seq), "{name}");
        let after = append_one(&store, new_message(name, "three")).await;
        assert_eq!(after.seq, before.seq + 1, "{name}: seqs go on");
        assert!(after.id > before.id, "{name}: ids are never reused");
        assert_eq!(whole_log(&store, name).await, vec![after], "{name}");
        assert_eq!(
            store.get(&room_id(name)).await,
            Ok(Some(room(name, "anew")))
        );
    }
}
