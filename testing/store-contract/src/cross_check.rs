//! The cross-check against the memory store, the reference every store must match.

use crate::Store;
use crate::helpers::{key, keyed_message, room, room_id};
use rtchat_chat::{MessageId, MessageKey, MessageStore, NewMessage, RoomStore};
use rtchat_memory::{MemoryMessageStore, MemoryRoomStore};

/// The same calls on the memory store and on `store` give the same answers: the conformance
/// suite compares snapshots of the two (so a fresh store's ids start at 1, as the memory
/// store's do).
pub async fn answers_match_the_memory_store<S: Store>(store: S) {
    let memory = MemoryMessageStore::new();
    let memory_rooms = MemoryRoomStore::new();
    for id in ["a", "b", "private-0123456789abcdef", "c"] {
        let created = room(id, &id.to_uppercase());
        assert_eq!(
            store.create(created.clone()).await,
            memory_rooms.create(created).await
        );
    }
    assert_eq!(
        store.create(room("a", "again")).await,
        memory_rooms.create(room("a", "again")).await
    );
    assert_eq!(store.list().await, memory_rooms.list().await);
    assert_eq!(store.count().await, memory_rooms.count().await);
    for id in ["a", "b", "private-0123456789abcdef", "c", "zzz"] {
        assert_eq!(
            store.get(&room_id(id)).await,
            memory_rooms.get(&room_id(id)).await
        );
    }

    // Single appends and batches, with a retried key among them.
    let pattern: [&[&str]; 6] = [
        &["a", "a"],
        &["b"],
        &["a"],
        &["private-0123456789abcdef"],
        &["a", "a", "a"],
        &["b"],
    ];
    let mut n = 0;
    for batch in pattern {
        let room = room_id(batch[0]);
        let messages: Vec<NewMessage> = batch
            .iter()
            .map(|room| {
                n += 1;
                let key = MessageKey::parse(&format!("k{n}")).expect("key");
                keyed_message(room, "#A1B2C3", key, &format!("message {n}"))
            })
            .collect();
        assert_eq!(
            store.append(&room, messages.clone()).await,
            memory.append(&room, messages.clone()).await
        );
        // The same batch again: every message is a duplicate of its original, on both.
        assert_eq!(
            store.append(&room, messages.clone()).await,
            memory.append(&room, messages).await
        );
    }
    // A batch repeating a key within itself and one stored before.
    let a = room_id("a");
    let mixed = vec![
        keyed_message("a", "#A1B2C3", key("k1"), "stored before"),
        keyed_message("a", "#A1B2C3", key("m1"), "new"),
        keyed_message("a", "#A1B2C3", key("m1"), "new, repeated"),
        keyed_message("a", "#0000FF", key("k1"), "another author's k1"),
    ];
    assert_eq!(
        store.append(&a, mixed.clone()).await,
        memory.append(&a, mixed).await
    );
    let bounds = [0, 1, 2, 3, 5, 8, 9, 10, 100, MessageId::MAX];
    for room in ["a", "b", "private-0123456789abcdef", "c", "zzz"] {
        let room = room_id(room);
        assert_eq!(
            store.head(&room).await,
            memory.head(&room).await,
            "head {room}"
        );
        for limit in [0, 1, 2, 3, 10, 1_000_000] {
            assert_eq!(
                store.newest(&room, limit).await,
                memory.newest(&room, limit).await,
                "newest {room} {limit}"
            );
            for bound in bounds {
                assert_eq!(
                    store.before(&room, bound, limit).await,
                    memory.before(&room, bound, limit).await,
                    "before {room} {bound} {limit}"
                );
                assert_eq!(
                    store.after(&room, bound, limit).await,
                    memory.after(&room, bound, limit).await,
                    "after {room} {bound} {limit}"
                );
                assert_eq!(
                    store.after_seq(&room, bound, limit).await,
                    memory.after_seq(&room, bound, limit).await,
                    "after_seq {room} {bound} {limit}"
                );
            }
        }
    }
}
