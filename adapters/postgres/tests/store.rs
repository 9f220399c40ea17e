//! The PostgreSQL store against a real PostgreSQL: the one `DATABASE_URL` names (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), or else a throwaway server that
//! `rtchat-test-services` starts for this test binary from the installed binaries. Only
//! without either do these tests skip, with a notice `cargo test` shows, and fail instead
//! under `RTCHAT_REQUIRE_SERVICES=1`.
//!
//! Each test works in a schema of its own (`rtchat_test_<random>`, dropped at the end), so
//! tests run in parallel with each other and with anyone else's runs on the same database.

use rtchat_core::{
    BackendError, ChatMessage, CreateRoomError, Identity, MessageId, MessageStore, NewMessage,
    Room, RoomId, RoomStore,
};
use rtchat_memory::{MemoryMessageStore, MemoryRoomStore};
use rtchat_postgres::{MAX_QUERY_LIMIT, PostgresStore};
use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    let Some(url) = database_url() else { return };
    let schema = format!(
        "rtchat_test_{:016x}",
        RandomState::new().hash_one(std::process::id())
    );
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate");
    let pool = store.pool().clone();
    let outcome = tokio::spawn(test(store)).await;
    pool.close().await;
    // Best effort: a leftover schema only costs disk.
    if let Ok(admin) = PostgresStore::connect(&url).await {
        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        if let Err(error) = sqlx::query(&drop).execute(admin.pool()).await {
            eprintln!("could not drop test schema {schema}: {error}");
        }
        admin.pool().close().await;
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

fn new_message(room: &str, text: &str) -> NewMessage {
    NewMessage {
        room_id: room_id(room),
        message: text.to_owned(),
        author: Identity {
            rand_id: "Wren42".to_owned(),
            name_tag: "#A1B2C3".to_owned(),
        },
        created_at: "2026-11-22T10:00:00.123Z".to_owned(),
        ip_address: "192.168".to_owned(),
    }
}

fn ids(messages: &[ChatMessage]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

async fn create_rooms(store: &PostgresStore, ids: &[&str]) {
    for id in ids {
        store.create(room(id, id)).await.expect("create room");
    }
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
        assert_eq!(applied, 1);
    })
    .await;
}

#[tokio::test]
async fn append_assigns_increasing_ids_and_keeps_every_field() {
    with_store(|store| async move {
        create_rooms(&store, &["a", "b"]).await;
        let mut last = 0;
        for n in 0..6 {
            let posted = new_message(
                if n % 2 == 0 { "a" } else { "b" },
                &format!("m{n} <b>é</b>"),
            );
            let stored = store.append(posted.clone()).await.expect("append");
            assert!(stored.id > last, "ids increase across rooms");
            last = stored.id;
            assert_eq!(stored, ChatMessage::stored(stored.id, posted));
        }
        // Read back exactly as stored.
        let newest = store.newest(&room_id("b"), 1).await.expect("newest");
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].id, last);
        assert_eq!(
            newest[0],
            ChatMessage::stored(last, new_message("b", "m5 <b>é</b>"))
        );
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
                store
                    .append(new_message("a", &format!("{n}")))
                    .await
                    .expect("append")
                    .id,
            );
            if n % 3 == 0 {
                store
                    .append(new_message("b", "other"))
                    .await
                    .expect("append");
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
async fn limits_are_clamped() {
    with_store(|store| async move {
        create_rooms(&store, &["big"]).await;
        sqlx::query(
            "INSERT INTO messages (room_id, message, rand_id, name_tag, created_at, ip_address) \
             SELECT 'big', n::text, 'W', '#000000', 't', '10.0' FROM generate_series(1, $1) n",
        )
        .bind((MAX_QUERY_LIMIT + 5) as i32)
        .execute(store.pool())
        .await
        .expect("bulk insert");
        let big = room_id("big");
        assert_eq!(
            store.newest(&big, usize::MAX).await.expect("q").len(),
            MAX_QUERY_LIMIT
        );
        assert_eq!(
            store.after(&big, 0, 5_000).await.expect("q").len(),
            MAX_QUERY_LIMIT
        );
    })
    .await;
}

/// The same appends on the memory store and here give the same answers to every query: the
/// conformance suite compares snapshots of the two (a fresh schema's ids start at 1, as the
/// memory store's do).
#[tokio::test]
async fn answers_match_the_memory_store() {
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

        let pattern = [
            "a",
            "a",
            "b",
            "a",
            "private-0123456789abcdef",
            "a",
            "b",
            "a",
            "a",
        ];
        for (n, room) in pattern.iter().enumerate() {
            let posted = new_message(room, &format!("message {n}"));
            assert_eq!(
                store.append(posted.clone()).await,
                memory.append(posted).await
            );
        }
        let bounds = [0, 1, 2, 3, 5, 8, 9, 10, 100, MessageId::MAX];
        for room in ["a", "b", "private-0123456789abcdef", "c", "zzz"] {
            let room = room_id(room);
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
                }
            }
        }
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
async fn a_message_for_an_unknown_room_is_a_backend_error() {
    with_store(|store| async move {
        let refused = store.append(new_message("ghost", "boo")).await;
        match refused {
            Err(BackendError(text)) => assert!(text.contains("append"), "{text}"),
            Ok(stored) => panic!("stored a message for an unknown room: {stored:?}"),
        }
        // The store still works, and ids still increase after the failure.
        create_rooms(&store, &["ghost"]).await;
        let stored = store
            .append(new_message("ghost", "boo"))
            .await
            .expect("append");
        assert!(stored.id >= 1);
        assert_eq!(
            ids(&store.after(&room_id("ghost"), 0, 10).await.expect("q")),
            [stored.id]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_distinct_increasing_ids() {
    with_store(|store| async move {
        create_rooms(&store, &["busy"]).await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for task in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..25 {
                    let text = format!("task {task} message {n}");
                    mine.push(
                        store
                            .append(new_message("busy", &text))
                            .await
                            .expect("append")
                            .id,
                    );
                }
                mine
            }));
        }
        let mut all = BTreeSet::new();
        for task in tasks {
            let mine = task.await.expect("task");
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "one task's ids increase"
            );
            all.extend(mine);
        }
        assert_eq!(all.len(), 8 * 25, "ids are distinct");
        let stored = ids(&store
            .after(&room_id("busy"), 0, 1_000)
            .await
            .expect("after"));
        assert_eq!(
            stored,
            all.into_iter().collect::<Vec<_>>(),
            "after(0) is in id order"
        );
    })
    .await;
}

/// What `since-id` replay relies on: a reader that repeatedly reads `after` its last seen id
/// while several writers append to the room never skips a message (the per-room lock in
/// `append` makes ids commit in order within a room).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_after_never_misses_a_message() {
    with_store(|store| async move {
        create_rooms(&store, &["live", "other"]).await;
        let store = Arc::new(store);
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
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
        let mut writers = Vec::new();
        for writer in 0..6 {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                for n in 0..40 {
                    let room = if n % 4 == 0 { "other" } else { "live" };
                    let text = format!("writer {writer} message {n}");
                    store
                        .append(new_message(room, &text))
                        .await
                        .expect("append");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.await.expect("reader");
        let stored = ids(&store
            .after(&room_id("live"), 0, 1_000)
            .await
            .expect("after"));
        assert_eq!(stored.len(), 6 * 30);
        assert_eq!(seen, stored, "the reader saw every message, once, in order");
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
