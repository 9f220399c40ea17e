//! The PostgreSQL store against a real PostgreSQL: the one `DATABASE_URL` names (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), or else a throwaway server that
//! `rtchat-test-services` starts for this test binary from the installed binaries. Only
//! without either do these tests skip, with a notice `cargo test` shows, and fail instead
//! under `RTCHAT_REQUIRE_SERVICES=1`.
//!
//! Each test works in a schema of its own (`rtchat_test_<random>`, dropped at the end), so
//! tests run in parallel with each other and with anyone else's runs on the same database.

use rtchat_core::{
    Appended, BackendError, ChatMessage, CreateRoomError, Identity, MessageId, MessageKey,
    MessageStore, NewMessage, Room, RoomId, RoomStore, Seq,
};
use rtchat_postgres::{MAX_QUERY_LIMIT, PostgresStore};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The database for the running test (see the file's documentation); `None` to skip.
fn database_url() -> Option<String> {
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    rtchat_test_services::shared_database_url(thread.name().unwrap_or("a PostgreSQL store test"))
}

/// Runs `test` on a migrated store in a fresh schema, then drops the schema (also when the
/// test panics, whose panic is then resumed). Skips when there is no database.
async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    in_fresh_schema(true, test).await;
}

/// Like [`with_store`], but the schema is empty: the test migrates (or not) itself.
async fn in_fresh_schema<F, Fut>(migrate: bool, test: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = database_url() else { return };
    let schema = format!(
        "rtchat_test_{:016x}",
        RandomState::new().hash_one(std::process::id())
    );
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect to the test database");
    if migrate {
        store.migrate().await.expect("migrate");
    }
    let pool = store.pool().clone();
    let outcome = tokio::spawn(test(store)).await;
    pool.close().await;
    // Best effort: a leftover schema only costs disk.
    if let Err(error) = PostgresStore::drop_schema(&url, &schema).await {
        eprintln!("could not drop test schema {schema}: {error}");
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn room_id(id: &str) -> RoomId {
    RoomId::parse(id).expect("room id")
}

fn room(id: &str, name: &str) -> Room {
    Room {
        room_id: room_id(id),
        name: name.to_owned(),
    }
}

fn key(key: &str) -> MessageKey {
    MessageKey::parse(key).expect("message key")
}

/// A key no other message of this test run has.
fn fresh_key() -> MessageKey {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    key(&format!("k{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A message from `name_tag` with the given key.
fn keyed_message(room: &str, name_tag: &str, message_key: MessageKey, text: &str) -> NewMessage {
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
fn new_message(room: &str, text: &str) -> NewMessage {
    keyed_message(room, "#A1B2C3", fresh_key(), text)
}

fn ids(messages: &[ChatMessage]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

fn seqs(messages: &[ChatMessage]) -> Vec<Seq> {
    messages.iter().map(|m| m.seq).collect()
}

async fn create_rooms(store: &PostgresStore, ids: &[&str]) {
    for id in ids {
        store.create(room(id, id)).await.expect("create room");
    }
}

/// The message `append` stored, failing the test on a duplicate.
fn stored(appended: Appended) -> ChatMessage {
    match appended {
        Appended::Stored(message) => message,
        Appended::Duplicate(original) => {
            panic!("expected a new message, got duplicate {original:?}")
        }
    }
}

/// Appends `message` alone and returns it as stored.
async fn append_one(store: &PostgresStore, message: NewMessage) -> ChatMessage {
    let room = message.room_id.clone();
    let mut results = store.append(&room, vec![message]).await.expect("append");
    assert_eq!(results.len(), 1);
    stored(results.remove(0))
}

/// Every message of `room`, oldest first (at most [`MAX_QUERY_LIMIT`]).
async fn whole_log(store: &PostgresStore, room: &str) -> Vec<ChatMessage> {
    store
        .after_seq(&room_id(room), 0, MAX_QUERY_LIMIT)
        .await
        .expect("after_seq")
}

/// Seqs 1..=n with no hole, and ids increasing with them.
fn assert_complete_log(log: &[ChatMessage], n: usize) {
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

#[tokio::test]
async fn migrations_are_idempotent() {
    with_store(|store| async move {
        // `with_store` migrated once already.
        store.migrate().await.expect("second run");
        store.migrate().await.expect("third run");
        assert_eq!(store.count().await, Ok(0));
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .expect("migrations table");
        // 0001 init, 0002 room log, 0003 log epoch.
        assert_eq!(applied, 3);
    })
    .await;
}

#[tokio::test]
async fn append_assigns_ids_and_seqs_and_keeps_every_field() {
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn seqs_are_contiguous_per_room_and_ids_increase_with_them() {
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn an_empty_batch_stores_nothing() {
    with_store(|store| async move {
        create_rooms(&store, &["a"]).await;
        assert_eq!(
            store.append(&room_id("a"), Vec::new()).await,
            Ok(Vec::new())
        );
        assert_eq!(store.head(&room_id("a")).await, Ok(0));
    })
    .await;
}

#[tokio::test]
async fn newest_before_and_after_page_through_three_pages() {
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn head_and_after_seq() {
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn limits_are_clamped() {
    with_store(|store| async move {
        create_rooms(&store, &["big"]).await;
        let count = (MAX_QUERY_LIMIT + 5) as i32;
        sqlx::query(
            "INSERT INTO messages (room_id, seq, message_key, message, rand_id, name_tag, \
             created_at, ip_address) \
             SELECT 'big', n, 'bulk-' || n, n::text, 'W', '#000000', 't', '10.0' \
             FROM generate_series(1, $1) n",
        )
        .bind(count)
        .execute(store.pool())
        .await
        .expect("bulk insert");
        sqlx::query("UPDATE rooms SET last_seq = $1 WHERE room_id = 'big'")
            .bind(i64::from(count))
            .execute(store.pool())
            .await
            .expect("bulk head");
        let big = room_id("big");
        assert_eq!(
            store.newest(&big, usize::MAX).await.expect("q").len(),
            MAX_QUERY_LIMIT
        );
        assert_eq!(
            store.after(&big, 0, 5_000).await.expect("q").len(),
            MAX_QUERY_LIMIT
        );
        assert_eq!(
            store
                .before(&big, MessageId::MAX, 5_000)
                .await
                .expect("q")
                .len(),
            MAX_QUERY_LIMIT
        );
        let from_start = store.after_seq(&big, 0, usize::MAX).await.expect("q");
        assert_eq!(from_start.len(), MAX_QUERY_LIMIT);
        assert_complete_log(&from_start, MAX_QUERY_LIMIT);
    })
    .await;
}

#[tokio::test]
async fn rooms_create_duplicate_get_list_and_count() {
    with_store(|store| async move {
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
        // Creation order, private rooms left out; the duplicate changed nothing.
        assert_eq!(
            store.list().await,
            Ok(vec![
                room("zeta", "Z"),
                room("alpha", "A"),
                room("mid", "M")
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
        assert_eq!(store.count().await, Ok(4));
        let long = "x".repeat(64);
        assert_eq!(
            store.create(room(&long, "long")).await,
            Ok(room(&long, "long"))
        );
        assert_eq!(store.count().await, Ok(5));
    })
    .await;
}

#[tokio::test]
async fn a_batch_for_an_unknown_room_fails_and_stores_nothing() {
    with_store(|store| async move {
        let ghost = room_id("ghost");
        let batch = vec![new_message("ghost", "boo"), new_message("ghost", "boo!")];
        match store.append(&ghost, batch).await {
            Err(BackendError(text)) => assert!(text.contains("append"), "{text}"),
            Ok(stored) => panic!("stored messages for an unknown room: {stored:?}"),
        }
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(rows, 0);
        // Once the room exists, its log starts at 1.
        create_rooms(&store, &["ghost"]).await;
        assert_eq!(store.head(&ghost).await, Ok(0));
        let message = append_one(&store, new_message("ghost", "boo")).await;
        assert_eq!(message.seq, 1);
        assert_eq!(ids(&whole_log(&store, "ghost").await), [message.id]);
    })
    .await;
}

#[tokio::test]
async fn a_batch_naming_another_room_is_refused() {
    with_store(|store| async move {
        create_rooms(&store, &["a", "b"]).await;
        let batch = vec![new_message("a", "fine"), new_message("b", "stray")];
        match store.append(&room_id("a"), batch).await {
            Err(BackendError(text)) => assert!(text.contains("room b"), "{text}"),
            Ok(stored) => panic!("stored a mixed batch: {stored:?}"),
        }
        assert_eq!(store.head(&room_id("a")).await, Ok(0));
        assert_eq!(store.head(&room_id("b")).await, Ok(0));
    })
    .await;
}

/// Makes the database refuse any message whose text is `poison`, so a batch can fail in the
/// middle, after some of its rows were inserted (only in this test's schema).
async fn refuse_poison(store: &PostgresStore) {
    sqlx::query("ALTER TABLE messages ADD CONSTRAINT test_no_poison CHECK (message <> 'poison')")
        .execute(store.pool())
        .await
        .expect("add check");
}

#[tokio::test]
async fn a_batch_failing_midway_stores_nothing_and_burns_no_seq() {
    with_store(|store| async move {
        create_rooms(&store, &["a"]).await;
        refuse_poison(&store).await;
        let a = room_id("a");
        let before: Vec<_> = (0..3)
            .map(|n| new_message("a", &format!("ok {n}")))
            .collect();
        store.append(&a, before).await.expect("append");

        let failing = vec![
            new_message("a", "would be 4"),
            new_message("a", "would be 5"),
            new_message("a", "poison"),
            new_message("a", "would be 6"),
        ];
        let retried_key = failing[0].key.clone();
        match store.append(&a, failing).await {
            Err(BackendError(text)) => assert!(text.contains("append"), "{text}"),
            Ok(stored) => panic!("stored a poisoned batch: {stored:?}"),
        }
        assert_eq!(store.head(&a).await, Ok(3), "the head did not move");
        assert_eq!(
            whole_log(&store, "a").await.len(),
            3,
            "nothing of the batch stayed"
        );

        // The next append continues at 4, and a key of the failed batch is free to use.
        let after = vec![
            keyed_message("a", "#A1B2C3", retried_key, "now 4"),
            new_message("a", "now 5"),
        ];
        let results = store.append(&a, after).await.expect("append");
        let messages: Vec<_> = results.into_iter().map(stored).collect();
        assert_eq!(seqs(&messages), [4, 5]);
        let log = whole_log(&store, "a").await;
        assert_complete_log(&log, 5);
        // The failed inserts drew ids (sequences are not transactional): ids have a hole
        // where seqs have none.
        assert!(log[3].id > log[2].id + 1, "ids {:?}", ids(&log));
        assert_eq!(store.head(&a).await, Ok(5));
    })
    .await;
}

#[tokio::test]
async fn a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate() {
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_is_stored_once() {
    with_store(|store| async move {
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
        assert_eq!(whole_log(&store, "a").await, [x, y, other_x]);
        assert_eq!(store.head(&a).await, Ok(3));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_a_complete_log() {
    const SINGLE_TASKS: usize = 8;
    const SINGLES_PER_TASK: usize = 50;
    const BATCH_TASKS: usize = 4;
    const BATCHES_PER_TASK: usize = 10;
    const BATCH_SIZE: usize = 5;
    with_store(|store| async move {
        create_rooms(&store, &["busy"]).await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for task in 0..SINGLE_TASKS {
            let store = Arc::clone(&store);
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
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..BATCHES_PER_TASK {
                    let batch = (0..BATCH_SIZE)
                        .map(|m| new_message("busy", &format!("batcher {task} batch {n} #{m}")))
                        .collect();
                    let results = store.append(&room_id("busy"), batch).await.expect("append");
                    let messages: Vec<_> = results.into_iter().map(stored).collect();
                    // A batch is one transaction under the room lock: its seqs are adjacent.
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
    })
    .await;
}

/// Several nodes retrying the same SENDs at once: each key is stored once, and everyone
/// gets that one message back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_the_same_keys_store_each_once() {
    const KEYS: usize = 40;
    with_store(|store| async move {
        create_rooms(&store, &["busy"]).await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for task in 0..6 {
            let store = Arc::clone(&store);
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
    })
    .await;
}

/// What replay relies on: while several writers append, a reader that takes the head and
/// reads `after_seq` up to it always gets that whole prefix, and a reader following `after`
/// by id never skips a message (the room row lock makes ids and seqs commit in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_following_the_log_never_miss_a_message() {
    with_store(|store| async move {
        create_rooms(&store, &["live", "other"]).await;
        let store = Arc::new(store);
        let done = Arc::new(AtomicBool::new(false));
        let by_id = {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
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
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
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
                        .after_seq(&live, cursor, missing.min(MAX_QUERY_LIMIT))
                        .await
                        .expect("after_seq");
                    assert_eq!(
                        seqs(&page),
                        (cursor + 1..=cursor + page.len() as Seq).collect::<Vec<_>>()
                    );
                    assert_eq!(page.len(), missing.min(MAX_QUERY_LIMIT), "prefix complete");
                    seen.extend(page);
                    if finished && missing == 0 {
                        return seen;
                    }
                }
            })
        };
        let mut writers = Vec::new();
        for writer in 0..6 {
            let store = Arc::clone(&store);
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
    })
    .await;
}

/// Migration 0001 alone, as a database created before the room log has it.
#[derive(Debug)]
struct FirstMigrationOnly;

impl<'s> MigrationSource<'s> for FirstMigrationOnly {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(vec![Migration::new(
                1,
                "init".into(),
                MigrationType::Simple,
                include_str!("../migrations/0001_init.sql").into(),
                false,
            )])
        })
    }
}

#[tokio::test]
async fn the_room_log_migration_numbers_existing_messages() {
    in_fresh_schema(false, |store| async move {
        let version_one = Migrator::new(FirstMigrationOnly).await.expect("migrator");
        version_one
            .run(store.pool())
            .await
            .expect("migrate to 0001");
        for (id, private) in [
            ("a", false),
            ("b", false),
            ("private-x", true),
            ("empty", false),
        ] {
            sqlx::query("INSERT INTO rooms (room_id, name, private) VALUES ($1, $1, $2)")
                .bind(id)
                .bind(private)
                .execute(store.pool())
                .await
                .expect("room");
        }
        // Interleaved rooms, and a hole in the ids as a failed insert would leave.
        let mut expected: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for n in 0..14 {
            if n == 7 {
                sqlx::query("SELECT nextval('messages_id_seq')")
                    .execute(store.pool())
                    .await
                    .expect("burn an id");
            }
            let room = ["a", "b", "a", "private-x"][n % 4];
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (room_id, message, rand_id, name_tag, created_at, \
                 ip_address) VALUES ($1, $2, 'W', '#A1B2C3', 't', '10.0') RETURNING id",
            )
            .bind(room)
            .bind(format!("old {n}"))
            .fetch_one(store.pool())
            .await
            .expect("old message");
            expected.entry(room).or_default().push(id);
        }

        store.migrate().await.expect("migrate to the room log");

        for (room, old_ids) in &expected {
            let log = whole_log(&store, room).await;
            assert_complete_log(&log, old_ids.len());
            assert_eq!(
                log.iter().map(|m| m.id as i64).collect::<Vec<_>>(),
                *old_ids,
                "seqs follow ids in {room}"
            );
            assert_eq!(store.head(&room_id(room)).await, Ok(old_ids.len() as Seq));
            let keys: Vec<String> = sqlx::query_scalar(
                "SELECT message_key FROM messages WHERE room_id = $1 ORDER BY seq",
            )
            .bind(room)
            .fetch_all(store.pool())
            .await
            .expect("keys");
            assert_eq!(
                keys,
                old_ids
                    .iter()
                    .map(|id| format!("~legacy-{id}"))
                    .collect::<Vec<_>>()
            );
        }
        assert_eq!(store.head(&room_id("empty")).await, Ok(0));

        // New messages continue each log, with ids above the old ones.
        let newest_old_id = expected.values().flatten().max().copied().expect("old ids");
        let next = append_one(&store, new_message("a", "new")).await;
        assert_eq!(next.seq, expected["a"].len() as Seq + 1);
        assert!(next.id as i64 > newest_old_id);
        assert_eq!(
            append_one(&store, new_message("empty", "first")).await.seq,
            1
        );

        // The constraints hold for the old rows too.
        let clash = sqlx::query(
            "INSERT INTO messages (room_id, seq, message_key, message, rand_id, name_tag, \
             created_at, ip_address) VALUES ('b', 1, 'fresh', 'm', 'W', '#A1B2C3', 't', '10.0')",
        )
        .execute(store.pool())
        .await;
        assert!(clash.is_err(), "a second seq 1 in room b was accepted");
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .expect("migrations table");
        // 0001 init, 0002 room log, 0003 log epoch.
        assert_eq!(applied, 3);
    })
    .await;
}

/// Needs no database: nothing listens on port 1.
#[tokio::test]
async fn connecting_to_a_database_that_is_down_fails_fast() {
    let started = Instant::now();
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
    assert!(result.is_err(), "connected to nothing?");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(PostgresStore::connect("not a url").await.is_err());
}

#[tokio::test]
async fn schema_names_are_checked_before_connecting() {
    for bad in [
        "",
        "Upper",
        "1digit",
        "semi;colon",
        "quote\"",
        &"x".repeat(64),
    ] {
        let result = PostgresStore::connect_in_schema("postgres://127.0.0.1:1/test", bad).await;
        match result {
            Err(BackendError(text)) => assert!(text.contains("schema"), "{bad}: {text}"),
            Ok(_) => panic!("{bad} accepted"),
        }
    }
}

/// Rough throughput of `append` into one room from one writer, by batch size. Not a timed
/// assertion: run it by hand and read the output,
/// `cargo test -p rtchat-postgres --test store -- --ignored --nocapture throughput` (the
/// database does the work, so the debug build measures the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn append_throughput_by_batch_size() {
    with_store(|store| async move {
        create_rooms(&store, &["bench"]).await;
        let bench = room_id("bench");
        for batch_size in [1usize, 16, 64, 256] {
            // About two seconds' worth at each size.
            let mut appended = 0usize;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                let batch = (0..batch_size)
                    .map(|n| {
                        new_message("bench", &format!("benchmark message number {n} of a batch"))
                    })
                    .collect();
                store.append(&bench, batch).await.expect("append");
                appended += batch_size;
            }
            let elapsed = started.elapsed();
            println!(
                "batch {batch_size:>3}: {appended:>7} messages in {:.2?}: {:>8.0} messages/s, \
                 {:.2} ms per batch",
                elapsed,
                appended as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64() * 1e3 / (appended / batch_size) as f64
            );
        }
        let head = store.head(&bench).await.expect("head");
        assert_complete_log(
            &store
                .after_seq(&bench, 0, MAX_QUERY_LIMIT)
                .await
                .expect("q"),
            (head as usize).min(MAX_QUERY_LIMIT),
        );
    })
    .await;
}

/// The same appends on the memory store and here give the same answers to every query: the
/// conformance suite compares snapshots of the two (a fresh schema's ids start at 1, as the
/// memory store's do).
#[tokio::test]
async fn answers_match_the_memory_store() {
    use rtchat_memory::{MemoryMessageStore, MemoryRoomStore};
    with_store(|store| async move {
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
    })
    .await;
}

#[tokio::test]
async fn the_log_epoch_is_drawn_once_per_schema() {
    with_store(|store| async move {
        let first = store.epoch().await.expect("epoch");
        assert_eq!(first.as_str().len(), 32, "a UUID without dashes: {first}");
        // Migrating again (another node starting) keeps it.
        store.migrate().await.expect("migrate again");
        assert_eq!(store.epoch().await.expect("epoch"), first);
        // Another schema (another store) has another.
        in_fresh_schema(true, move |other| async move {
            assert_ne!(other.epoch().await.expect("epoch"), first);
        })
        .await;
    })
    .await;
}
