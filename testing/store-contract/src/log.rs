//! The single-writer checks of [`MessageStore`](rtchat_chat::MessageStore): appends, keys and
//! reads.

use crate::Store;
use crate::helpers::{
    append_one, assert_complete_log, create_rooms, ids, key, keyed_message, new_message, room_id,
    seqs, stored, whole_log,
};
use rtchat_chat::{Appended, ChatMessage, MessageId, Seq};
use std::collections::BTreeMap;

/// Every append gets an id above all before it (across rooms) and its room's next seq, and
/// every field comes back as it was posted.
pub async fn append_assigns_ids_and_seqs_and_keeps_every_field<S: Store>(store: S) {
    create_rooms(&store, &["a", "b"]).await;
    let mut last_id = 0;
    for n in 0..6u64 {
        let posted = new_message(
            if n % 2 == 0 { "a" } else { "b" },
            &format!("m{n} <b>é</b>"),
        );
        let message = append_one(&store, posted.clone()).await;
        assert!(message.id > last_id, "ids increase across rooms");
        last_id = message.id;
        assert_eq!(message.seq, n / 2 + 1, "each room counts from 1");
        assert_eq!(
            message,
            ChatMessage::stored(message.id, message.seq, posted)
        );
    }
    // Read back exactly as stored.
    let newest = store.newest(&room_id("b"), 1).await.expect("newest");
    assert_eq!(newest.len(), 1);
    assert_eq!(
        newest[0],
        ChatMessage::stored(last_id, 3, new_message("b", "m5 <b>é</b>"))
    );
}

/// Batches of many sizes in two rooms: each batch takes the next seqs of its room, in
/// order, and each room's log is complete.
pub async fn seqs_are_contiguous_per_room_and_ids_increase_with_them<S: Store>(store: S) {
    create_rooms(&store, &["a", "b", "quiet"]).await;
    let mut expected_in = BTreeMap::from([("a", 0usize), ("b", 0)]);
    for (round, size) in [1, 3, 1, 7, 2, 16, 1].into_iter().enumerate() {
        for name in ["a", "b"] {
            // Room b gets one more per batch, so the rooms' counts differ.
            let size = if name == "b" { size + 1 } else { size };
            let batch: Vec<_> = (0..size)
                .map(|n| new_message(name, &format!("round {round} n {n}")))
                .collect();
            let results = store
                .append(&room_id(name), batch.clone())
                .await
                .expect("append");
            let first = expected_in[name] as Seq + 1;
            let messages: Vec<_> = results.into_iter().map(stored).collect();
            assert_eq!(
                seqs(&messages),
                (first..first + size as Seq).collect::<Vec<_>>(),
                "the batch's seqs follow the room's head, in batch order"
            );
            for (message, posted) in messages.iter().zip(batch) {
                assert_eq!(
                    *message,
                    ChatMessage::stored(message.id, message.seq, posted)
                );
            }
            *expected_in.get_mut(name).expect("room") += size;
        }
    }
    for (name, count) in expected_in {
        let log = whole_log(&store, name).await;
        assert_complete_log(&log, count);
        assert_eq!(store.head(&room_id(name)).await, Ok(count as Seq));
    }
    assert_eq!(store.head(&room_id("quiet")).await, Ok(0));
    assert!(whole_log(&store, "quiet").await.is_empty());
}

/// An empty batch succeeds and moves no head.
pub async fn an_empty_batch_stores_nothing<S: Store>(store: S) {
    create_rooms(&store, &["a"]).await;
    assert_eq!(
        store.append(&room_id("a"), Vec::new()).await,
        Ok(Vec::new())
    );
    assert_eq!(store.head(&room_id("a")).await, Ok(0));
}

/// `newest`, `before` and `after` page through a room in both directions, with every
/// bound and limit edge case.
pub async fn newest_before_and_after_page_through_three_pages<S: Store>(store: S) {
    create_rooms(&store, &["a", "b"]).await;
    let mut in_a = Vec::new();
    for n in 0..25 {
        in_a.push(
            append_one(&store, new_message("a", &format!("{n}")))
                .await
                .id,
        );
        if n % 3 == 0 {
            append_one(&store, new_message("b", "other")).await;
        }
    }
    let a = room_id("a");

    // Backwards, newest first: 10, 10, 5, then nothing.
    let first = ids(&store.newest(&a, 10).await.expect("newest"));
    let second = ids(&store
        .before(&a, *first.last().expect("page"), 10)
        .await
        .expect("q"));
    let third = ids(&store
        .before(&a, *second.last().expect("page"), 10)
        .await
        .expect("q"));
    assert_eq!((first.len(), second.len(), third.len()), (10, 10, 5));
    let backwards: Vec<_> = [first, second, third].concat();
    let mut expected = in_a.clone();
    expected.reverse();
    assert_eq!(backwards, expected);
    assert!(store.before(&a, in_a[0], 10).await.expect("q").is_empty());

    // Forwards, oldest first: 10, 10, 5, then nothing.
    let mut forwards = Vec::new();
    let mut cursor = 0;
    for expected_len in [10, 10, 5, 0] {
        let page = ids(&store.after(&a, cursor, 10).await.expect("after"));
        assert_eq!(page.len(), expected_len);
        cursor = page.last().copied().unwrap_or(cursor);
        forwards.extend(page);
    }
    assert_eq!(forwards, in_a);

    // Every read carries the seq: the id pages are the seq log, in the same order.
    let log = whole_log(&store, "a").await;
    assert_complete_log(&log, 25);
    assert_eq!(ids(&log), in_a);
    let newest = store.newest(&a, 3).await.expect("newest");
    assert_eq!(seqs(&newest), [25, 24, 23]);
    assert_eq!(
        seqs(&store.before(&a, in_a[5], 2).await.expect("q")),
        [5, 4]
    );
    assert_eq!(seqs(&store.after(&a, in_a[5], 2).await.expect("q")), [7, 8]);

    // Bounds need not be ids of the room; limit 0 and unknown rooms give nothing.
    let top = ids(&store.before(&a, MessageId::MAX, 2).await.expect("q"));
    assert_eq!(top, [in_a[24], in_a[23]]);
    assert_eq!(
        ids(&store.before(&a, in_a[24] + 1000, 1).await.expect("q")),
        [in_a[24]]
    );
    assert!(store.before(&a, 0, 10).await.expect("q").is_empty());
    assert!(
        store
            .after(&a, MessageId::MAX, 10)
            .await
            .expect("q")
            .is_empty()
    );
    assert!(store.newest(&a, 0).await.expect("q").is_empty());
    assert!(store.after(&a, 0, 0).await.expect("q").is_empty());
    assert!(
        store
            .newest(&room_id("nowhere"), 10)
            .await
            .expect("q")
            .is_empty()
    );
}

/// `head` and `after_seq`: the room log's reads.
pub async fn head_and_after_seq<S: Store>(store: S) {
    create_rooms(&store, &["a", "b"]).await;
    let a = room_id("a");
    assert_eq!(store.head(&a).await, Ok(0), "a room without messages");
    assert_eq!(
        store.head(&room_id("nowhere")).await,
        Ok(0),
        "an unknown room"
    );
    assert!(store.after_seq(&a, 0, 10).await.expect("q").is_empty());

    let batch: Vec<_> = (0..12).map(|n| new_message("a", &format!("{n}"))).collect();
    store.append(&a, batch).await.expect("append");
    append_one(&store, new_message("b", "elsewhere")).await;
    assert_eq!(store.head(&a).await, Ok(12));
    assert_eq!(store.head(&room_id("b")).await, Ok(1));

    // Oldest first, starting right after the bound, at most `limit`.
    let page = store.after_seq(&a, 0, 5).await.expect("q");
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    assert!(page.iter().all(|m| m.room_id == "a"));
    assert_eq!(
        page.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );
    assert_eq!(
        seqs(&store.after_seq(&a, 5, 5).await.expect("q")),
        [6, 7, 8, 9, 10]
    );
    assert_eq!(
        seqs(&store.after_seq(&a, 10, 5).await.expect("q")),
        [11, 12]
    );
    assert_eq!(seqs(&store.after_seq(&a, 11, 1).await.expect("q")), [12]);
    // At or past the head, a limit of 0, an unknown room: nothing.
    assert!(store.after_seq(&a, 12, 5).await.expect("q").is_empty());
    assert!(store.after_seq(&a, 1_000, 5).await.expect("q").is_empty());
    assert!(
        store
            .after_seq(&a, Seq::MAX, 5)
            .await
            .expect("q")
            .is_empty()
    );
    assert!(store.after_seq(&a, 0, 0).await.expect("q").is_empty());
    assert!(
        store
            .after_seq(&room_id("nowhere"), 0, 5)
            .await
            .expect("q")
            .is_empty()
    );
    // Same messages whichever way they are read.
    let by_id = store.after(&a, 0, 100).await.expect("after");
    assert_eq!(store.after_seq(&a, 0, 100).await.expect("q"), by_id);
}

/// Asking for more than the store's clamp (`max_query_limit`, its `MAX_QUERY_LIMIT`) gets
/// exactly the clamp, from every read.
pub async fn limits_are_clamped<S: Store>(store: S, max_query_limit: usize) {
    create_rooms(&store, &["big"]).await;
    let count = max_query_limit + 5;
    let big = room_id("big");
    // In batches: one append per message would make this the slowest check by far.
    let mut written = 0;
    while written < count {
        let size = (count - written).min(100);
        let batch = (written..written + size)
            .map(|n| new_message("big", &n.to_string()))
            .collect();
        store.append(&big, batch).await.expect("bulk append");
        written += size;
    }
    assert_eq!(store.head(&big).await, Ok(count as Seq));
    assert_eq!(
        store.newest(&big, usize::MAX).await.expect("q").len(),
        max_query_limit
    );
    assert_eq!(
        store.after(&big, 0, 5_000).await.expect("q").len(),
        max_query_limit
    );
    assert_eq!(
        store
            .before(&big, MessageId::MAX, 5_000)
            .await
            .expect("q")
            .len(),
        max_query_limit
    );
    let from_start = store.after_seq(&big, 0, usize::MAX).await.expect("q");
    assert_eq!(from_start.len(), max_query_limit);
    assert_complete_log(&from_start, max_query_limit);
    // The next append continues the log.
    assert_eq!(
        append_one(&store, new_message("big", "next")).await.seq,
        count as Seq + 1
    );
}

/// A batch for a room that does not exist fails, and leaves nothing behind.
///
/// `message_rows` counts the messages the store holds, whatever their room: the traits cannot
/// see those of a room that does not exist.
pub async fn a_batch_for_an_unknown_room_fails_and_stores_nothing<S, Rows, Counted>(
    store: S,
    message_rows: Rows,
) where
    S: Store,
    Rows: Fn(S) -> Counted,
    Counted: Future<Output = u64>,
{
    let ghost = room_id("ghost");
    let batch = vec![new_message("ghost", "boo"), new_message("ghost", "boo!")];
    match store.append(&ghost, batch).await {
        Err(error) => assert!(error.to_string().contains("append"), "{error}"),
        Ok(stored) => panic!("stored messages for an unknown room: {stored:?}"),
    }
    assert_eq!(message_rows(store.clone()).await, 0);
    // Once the room exists, its log starts at 1.
    create_rooms(&store, &["ghost"]).await;
    assert_eq!(store.head(&ghost).await, Ok(0));
    let message = append_one(&store, new_message("ghost", "boo")).await;
    assert_eq!(message.seq, 1);
    assert_eq!(ids(&whole_log(&store, "ghost").await), [message.id]);
}

/// A batch holding a message for another room fails as a whole.
///
/// `message_rows` counts the messages the store holds, whatever their room: the traits cannot
/// see those of a room that does not exist.
pub async fn a_batch_naming_another_room_is_refused<S, Rows, Counted>(store: S, message_rows: Rows)
where
    S: Store,
    Rows: Fn(S) -> Counted,
    Counted: Future<Output = u64>,
{
    create_rooms(&store, &["a", "b"]).await;
    let batch = vec![new_message("a", "fine"), new_message("b", "stray")];
    match store.append(&room_id("a"), batch).await {
        Err(error) => assert!(error.to_string().contains("room b"), "{error}"),
        Ok(stored) => panic!("stored a mixed batch: {stored:?}"),
    }
    assert_eq!(store.head(&room_id("a")).await, Ok(0));
    assert_eq!(store.head(&room_id("b")).await, Ok(0));
    assert_eq!(message_rows(store.clone()).await, 0);
}

/// A retry (same key, author and room) gets the original back and stores nothing; the same
/// key from another author or in another room is another message.
pub async fn a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate<S: Store>(store: S) {
    create_rooms(&store, &["a", "b"]).await;
    let a = room_id("a");
    let original = append_one(&store, keyed_message("a", "#A1B2C3", key("k-1"), "first")).await;
    append_one(&store, new_message("a", "in between")).await;

    // The retry may even carry other text: the original wins, and nothing is stored.
    let retry = keyed_message("a", "#A1B2C3", key("k-1"), "second try");
    assert_eq!(
        store.append(&a, vec![retry]).await,
        Ok(vec![Appended::Duplicate(original.clone())])
    );
    assert_eq!(store.head(&a).await, Ok(2));

    // The same key from someone else, or in another room, is another message.
    let other_author = append_one(
        &store,
        keyed_message("a", "#FFFFFF", key("k-1"), "other author"),
    )
    .await;
    assert_eq!(other_author.seq, 3);
    let other_room = append_one(
        &store,
        keyed_message("b", "#A1B2C3", key("k-1"), "other room"),
    )
    .await;
    assert_eq!(other_room.seq, 1);

    // A batch mixing duplicates and new messages: the duplicates take no seq.
    let batch = vec![
        keyed_message("a", "#A1B2C3", key("k-2"), "new"),
        keyed_message("a", "#A1B2C3", key("k-1"), "old again"),
        keyed_message("a", "#FFFFFF", key("k-1"), "other author again"),
        keyed_message("a", "#A1B2C3", key("k-3"), "new too"),
    ];
    let results = store.append(&a, batch.clone()).await.expect("append");
    assert_eq!(results.len(), 4);
    let new = results[0].message().clone();
    let new_too = results[3].message().clone();
    assert_eq!(
        results,
        [
            Appended::Stored(ChatMessage::stored(new.id, 4, batch[0].clone())),
            Appended::Duplicate(original.clone()),
            Appended::Duplicate(other_author.clone()),
            Appended::Stored(ChatMessage::stored(new_too.id, 5, batch[3].clone())),
        ]
    );
    assert!(new.id < new_too.id);
    let log = whole_log(&store, "a").await;
    assert_complete_log(&log, 5);
    assert_eq!(log[0], original);
    assert_eq!(store.head(&a).await, Ok(5));
    assert_eq!(store.head(&room_id("b")).await, Ok(1));
}

/// A key repeated within one batch, or across batches, is stored once.
pub async fn a_key_repeated_within_one_batch_is_stored_once<S: Store>(store: S) {
    create_rooms(&store, &["a"]).await;
    let a = room_id("a");
    let batch = vec![
        keyed_message("a", "#A1B2C3", key("x"), "first x"),
        keyed_message("a", "#A1B2C3", key("y"), "first y"),
        keyed_message("a", "#A1B2C3", key("x"), "second x"),
        keyed_message("a", "#000001", key("x"), "x of someone else"),
        keyed_message("a", "#A1B2C3", key("y"), "second y"),
    ];
    let results = store.append(&a, batch.clone()).await.expect("append");
    let x = ChatMessage::stored(results[0].message().id, 1, batch[0].clone());
    let y = ChatMessage::stored(results[1].message().id, 2, batch[1].clone());
    let other_x = ChatMessage::stored(results[3].message().id, 3, batch[3].clone());
    assert_eq!(
        results,
        [
            Appended::Stored(x.clone()),
            Appended::Stored(y.clone()),
            Appended::Duplicate(x.clone()),
            Appended::Stored(other_x.clone()),
            Appended::Duplicate(y.clone()),
        ]
    );
    assert_eq!(whole_log(&store, "a").await, [x.clone(), y, other_x]);
    assert_eq!(store.head(&a).await, Ok(3));

    // A stored key repeated in a later batch: every occurrence gets the original.
    let later = vec![
        keyed_message("a", "#A1B2C3", key("x"), "x, third time"),
        keyed_message("a", "#A1B2C3", key("z"), "z"),
        keyed_message("a", "#A1B2C3", key("x"), "x, fourth time"),
    ];
    let results = store.append(&a, later.clone()).await.expect("append");
    let z = ChatMessage::stored(results[1].message().id, 4, later[1].clone());
    assert_eq!(
        results,
        [
            Appended::Duplicate(x.clone()),
            Appended::Stored(z),
            Appended::Duplicate(x),
        ]
    );
    assert_eq!(store.head(&a).await, Ok(4));
}
