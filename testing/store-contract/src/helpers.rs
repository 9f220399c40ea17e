//! Builders for rooms and messages, and the assertions the checks share. Adapters use them
//! in their own tests too.

use crate::Store;
use rtchat_chat::{
    Appended, ChatMessage, Identity, MessageId, MessageKey, NewMessage, Room, RoomId, Seq,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// A room id, which must be valid.
pub fn room_id(id: &str) -> RoomId {
    RoomId::parse(id).expect("room id")
}

/// A room named `name`.
pub fn room(id: &str, name: &str) -> Room {
    Room {
        room_id: room_id(id),
        name: name.to_owned(),
    }
}

/// A message key, which must be valid.
pub fn key(key: &str) -> MessageKey {
    MessageKey::parse(key).expect("message key")
}

/// A key no other message of this test run has.
pub fn fresh_key() -> MessageKey {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    key(&format!("k{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A message from `name_tag` with the given key.
pub fn keyed_message(
    room: &str,
    name_tag: &str,
    message_key: MessageKey,
    text: &str,
) -> NewMessage {
    NewMessage {
        room_id: room_id(room),
        message: text.to_owned(),
        author: Identity {
            rand_id: "Wren42".to_owned(),
            name_tag: name_tag.to_owned(),
        },
        created_at: "2026-11-22T10:00:00.123Z".to_owned(),
        ip_address: "192.168".to_owned(),
        key: message_key,
    }
}

/// A message with a key of its own.
pub fn new_message(room: &str, text: &str) -> NewMessage {
    keyed_message(room, "#A1B2C3", fresh_key(), text)
}

/// The ids of `messages`, in order.
pub fn ids(messages: &[ChatMessage]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

/// The seqs of `messages`, in order.
pub fn seqs(messages: &[ChatMessage]) -> Vec<Seq> {
    messages.iter().map(|m| m.seq).collect()
}

/// Creates a room per id, named after it.
pub async fn create_rooms<S: Store>(store: &S, ids: &[&str]) {
    for id in ids {
        store.create(room(id, id)).await.expect("create room");
    }
}

/// The message `append` stored, failing the test on a duplicate.
pub fn stored(appended: Appended) -> ChatMessage {
    match appended {
        Appended::Stored(message) => message,
        Appended::Duplicate(original) => {
            panic!("expected a new message, got duplicate {original:?}")
        }
    }
}

/// Appends `message` alone and returns it as stored.
pub async fn append_one<S: Store>(store: &S, message: NewMessage) -> ChatMessage {
    let room = message.room_id.clone();
    let mut results = store.append(&room, vec![message]).await.expect("append");
    assert_eq!(results.len(), 1);
    stored(results.remove(0))
}

/// Every message of `room`, oldest first, up to the store's clamp of the limit (no check
/// here writes more than a store must return at once).
pub async fn whole_log<S: Store>(store: &S, room: &str) -> Vec<ChatMessage> {
    store
        .after_seq(&room_id(room), 0, usize::MAX)
        .await
        .expect("after_seq")
}

/// Seqs 1..=n with no hole, and ids increasing with them.
pub fn assert_complete_log(log: &[ChatMessage], n: usize) {
    assert_eq!(
        seqs(log),
        (1..=n as Seq).collect::<Vec<_>>(),
        "seqs 1..={n}"
    );
    assert!(
        log.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase with seq: {:?}",
        ids(log)
    );
}
