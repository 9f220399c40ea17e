//! The checks with concurrent appenders and readers: what group commit, retries across nodes
//! and replay rely on. Run them on a multi-threaded runtime, so the tasks really overlap.

use crate::Store;
use crate::helpers::{
    append_one, assert_complete_log, create_rooms, ids, key, keyed_message, new_message, room_id,
    seqs, stored, whole_log,
};
use rtchat_chat::{Appended, ChatMessage, MessageId, Seq};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Many tasks appending singles and batches into one room at once: the log is complete,
/// and what each append returned is what is stored.
pub async fn concurrent_appenders_get_a_complete_log<S: Store>(store: S) {
    const SINGLE_TASKS: usize = 8;
    const SINGLES_PER_TASK: usize = 50;
    const BATCH_TASKS: usize = 4;
    const BATCHES_PER_TASK: usize = 10;
    const BATCH_SIZE: usize = 5;
    create_rooms(&store, &["busy"]).await;
    let mut tasks = Vec::new();
    for task in 0..SINGLE_TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..SINGLES_PER_TASK {
                let text = format!("task {task} message {n}");
                mine.push(append_one(&store, new_message("busy", &text)).await);
            }
            mine
        }));
    }
    for task in 0..BATCH_TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..BATCHES_PER_TASK {
                let batch = (0..BATCH_SIZE)
                    .map(|m| new_message("busy", &format!("batcher {task} batch {n} #{m}")))
                    .collect();
                let results = store.append(&room_id("busy"), batch).await.expect("append");
                let messages: Vec<_> = results.into_iter().map(stored).collect();
                // A batch is one transaction: its seqs are adjacent.
                assert!(
                    messages.windows(2).all(|w| w[1].seq == w[0].seq + 1),
                    "{:?}",
                    seqs(&messages)
                );
                mine.extend(messages);
            }
            mine
        }));
    }
    let mut returned = BTreeMap::new();
    for task in tasks {
        let mine = task.await.expect("task");
        assert!(
            mine.windows(2)
                .all(|w| w[0].seq < w[1].seq && w[0].id < w[1].id),
            "one task's seqs and ids increase"
        );
        for message in mine {
            assert!(
                returned.insert(message.seq, message).is_none(),
                "a seq was given twice"
            );
        }
    }
    let total = SINGLE_TASKS * SINGLES_PER_TASK + BATCH_TASKS * BATCHES_PER_TASK * BATCH_SIZE;
    let log = whole_log(&store, "busy").await;
    assert_complete_log(&log, total);
    assert_eq!(
        log,
        returned.into_values().collect::<Vec<_>>(),
        "what was returned is what is stored"
    );
    assert_eq!(store.head(&room_id("busy")).await, Ok(total as Seq));
}

/// Several writers retrying the same SENDs at once: each key is stored once, and everyone
/// gets that one message back.
pub async fn concurrent_retries_of_the_same_keys_store_each_once<S: Store>(store: S) {
    const KEYS: usize = 40;
    create_rooms(&store, &["busy"]).await;
    let mut tasks = Vec::new();
    for task in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Batches of 4 keys, some tasks going backwards, so batches overlap in both
            // directions.
            let mut order: Vec<_> = (0..KEYS).collect();
            if task % 2 == 1 {
                order.reverse();
            }
            for chunk in order.chunks(4) {
                let batch = chunk
                    .iter()
                    .map(|n| {
                        keyed_message("busy", "#A1B2C3", key(&format!("r{n}")), &format!("{n}"))
                    })
                    .collect();
                let results = store.append(&room_id("busy"), batch).await.expect("append");
                got.extend(chunk.iter().copied().zip(results));
            }
            got
        }));
    }
    let mut by_key: BTreeMap<usize, BTreeSet<(MessageId, Seq)>> = BTreeMap::new();
    let mut stored_count = 0;
    for task in tasks {
        for (n, result) in task.await.expect("task") {
            stored_count += usize::from(matches!(result, Appended::Stored(_)));
            let message = result.into_message();
            assert_eq!(message.message, n.to_string());
            by_key
                .entry(n)
                .or_default()
                .insert((message.id, message.seq));
        }
    }
    assert_eq!(stored_count, KEYS, "each key stored by exactly one append");
    assert!(
        by_key.values().all(|answers| answers.len() == 1),
        "one answer per key"
    );
    assert_complete_log(&whole_log(&store, "busy").await, KEYS);
}

/// What replay relies on: while several writers append, a reader that takes the head and
/// reads `after_seq` up to it always gets that whole prefix, and a reader following `after`
/// by id never skips a message (ids and seqs commit in order).
///
/// `max_query_limit` is the store's clamp of query limits (its `MAX_QUERY_LIMIT`).
pub async fn readers_following_the_log_never_miss_a_message<S: Store>(
    store: S,
    max_query_limit: usize,
) {
    create_rooms(&store, &["live", "other"]).await;
    let done = Arc::new(AtomicBool::new(false));
    let by_id = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let cursor = seen.last().copied().unwrap_or(0);
                let page = store
                    .after(&room_id("live"), cursor, 50)
                    .await
                    .expect("after");
                let empty = page.is_empty();
                seen.extend(ids(&page));
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let by_seq = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let live = room_id("live");
            let mut seen: Vec<ChatMessage> = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let head = store.head(&live).await.expect("head");
                let cursor = seen.len() as Seq;
                assert!(head >= cursor, "the head went back");
                let missing = (head - cursor) as usize;
                let page = store
                    .after_seq(&live, cursor, missing.min(max_query_limit))
                    .await
                    .expect("after_seq");
                assert_eq!(
                    seqs(&page),
                    (cursor + 1..=cursor + page.len() as Seq).collect::<Vec<_>>()
                );
                assert_eq!(page.len(), missing.min(max_query_limit), "prefix complete");
                seen.extend(page);
                if finished && missing == 0 {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for writer in 0..6 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..40 {
                let room = if n % 4 == 0 { "other" } else { "live" };
                // Every third append to "live" is a batch of 3.
                let size = if n % 3 == 0 && room == "live" { 3 } else { 1 };
                let batch = (0..size)
                    .map(|m| new_message(room, &format!("writer {writer} message {n}.{m}")))
                    .collect();
                store.append(&room_id(room), batch).await.expect("append");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let seen_by_id = by_id.await.expect("reader by id");
    let seen_by_seq = by_seq.await.expect("reader by seq");
    let log = whole_log(&store, "live").await;
    // Per writer: 30 appends to "live", 10 of them batches of 3.
    assert_complete_log(&log, 6 * (20 + 10 * 3));
    assert_eq!(
        seen_by_id,
        ids(&log),
        "the id reader saw every message, once, in order"
    );
    assert_eq!(
        seen_by_seq, log,
        "the seq reader saw every message, once, in order"
    );
}
