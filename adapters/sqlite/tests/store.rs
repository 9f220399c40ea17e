//! The SQLite store, each test on a fresh database file in a temporary directory of its own
//! (removed at the end), so tests run in parallel. The store contract every store adapter runs
//! (`rtchat-store-contract`, with its cross-check against the memory store), and what only
//! SQLite or a file has: pragmas, JSON batches, reopening, a crash, two stores on one file.

use rtchat_chat::{Appended, ChatMessage, CreateRoomError, MessageStore, RoomStore, Seq};
use rtchat_sqlite::{MAX_QUERY_LIMIT, SqliteStore};
use rtchat_store_contract as contract;
use rtchat_store_contract::helpers::{
    append_one, assert_complete_log, create_rooms, key, keyed_message, new_message, room, room_id,
    seqs, stored, whole_log,
};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A directory for one test's database files, removed when dropped.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The path of the database file `name` in this directory.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Opens (creating it when missing) and migrates the database file `name`.
    async fn store(&self, name: &str) -> SqliteStore {
        open_migrated(&self.file(name)).await
    }
}

async fn open_migrated(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path).await.expect("open the database");
    store.migrate().await.expect("migrate");
    store
}

/// A migrated store on a fresh file, and the directory that holds it (keep it alive).
async fn fresh_store() -> (Scratch, SqliteStore) {
    let scratch = Scratch::new();
    let store = scratch.store("rtchat.db").await;
    (scratch, store)
}

/// How many rows `messages` has, whatever their room.
async fn message_rows(store: SqliteStore) -> u64 {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .expect("count messages");
    u64::try_from(rows).expect("a count is never negative")
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let (_scratch, store) = fresh_store().await;
    // `fresh_store` migrated once already.
    store.migrate().await.expect("second run");
    store.migrate().await.expect("third run");
    assert_eq!(store.count().await, Ok(0));
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .expect("migrations table");
    assert_eq!(applied, 2);
}

#[tokio::test]
async fn open_sets_wal_normal_sync_and_foreign_keys() {
    let (scratch, store) = fresh_store().await;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal_mode");
    assert_eq!(journal, "wal");
    // 1 is NORMAL (FULL, SQLite's default, is 2).
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .expect("synchronous");
    assert_eq!(synchronous, 1);
    for pool in [store.pool(), store.read_pool()] {
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .expect("foreign_keys");
        assert_eq!(foreign_keys, 1);
    }
    assert!(scratch.file("rtchat.db").is_file(), "the file was created");
    assert!(scratch.file("rtchat.db-wal").exists(), "a write-ahead log");
}

#[tokio::test]
async fn the_read_pool_cannot_write() {
    let (_scratch, store) = fresh_store().await;
    let write = sqlx::query("INSERT INTO rooms (room_id, name, private) VALUES ('x', 'x', 0)")
        .execute(store.read_pool())
        .await;
    assert!(write.is_err(), "a read connection wrote");
    assert_eq!(store.count().await, Ok(0));
}

#[tokio::test]
async fn opening_what_is_not_a_database_fails() {
    let scratch = Scratch::new();
    match SqliteStore::open(&scratch.file("no/such/directory/rtchat.db")).await {
        Err(error) => assert!(error.to_string().contains("sqlite open"), "{error}"),
        Ok(_) => panic!("opened a file in a missing directory"),
    }
    let garbage = scratch.file("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).expect("write garbage");
    match SqliteStore::open(&garbage).await {
        Ok(store) => {
            // SQLite may only look at the file at the first statement.
            assert!(store.migrate().await.is_err(), "migrated a garbage file");
        }
        Err(error) => assert!(error.to_string().contains("garbage.db"), "{error}"),
    }
}

#[tokio::test]
async fn append_assigns_ids_and_seqs_and_keeps_every_field() {
    let (_scratch, store) = fresh_store().await;
    contract::append_assigns_ids_and_seqs_and_keeps_every_field(store).await;
}

/// The batch travels as JSON inside SQLite: text that JSON escapes, or that looks like JSON or
/// a number, must come back byte for byte, in every field.
#[tokio::test]
async fn awkward_text_comes_back_byte_for_byte() {
    let (_scratch, store) = fresh_store().await;
    create_rooms(&store, &["a"]).await;
    let texts = [
        "nul \0 inside",
        "quote \" backslash \\ slash /",
        "line\nbreak\ttab\r\u{1}\u{1f}",
        "emoji 🦀 and \u{2028}\u{fffd}",
        "[\"looks\", \"like\", \"json\"]",
        "{\"a\": 1}",
        "12345",
        "-0.5e10",
        "null",
        "true",
        " ",
    ];
    let batch: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(n, text)| {
            let mut message =
                keyed_message("a", &format!("#{text}"), key(&format!("awk-{n}")), text);
            message.author.rand_id = (*text).to_owned();
            message.created_at = (*text).to_owned();
            message.ip_address = (*text).to_owned();
            message
        })
        .collect();
    let results = store
        .append(&room_id("a"), batch.clone())
        .await
        .expect("append");
    let messages: Vec<_> = results.into_iter().map(stored).collect();
    let log = whole_log(&store, "a").await;
    assert_eq!(log, messages);
    for (message, posted) in log.iter().zip(batch.iter().cloned()) {
        assert_eq!(
            *message,
            ChatMessage::stored(message.id, message.seq, posted)
        );
    }
    // And the keys of such authors are found again.
    let again = store
        .append(&room_id("a"), batch)
        .await
        .expect("append again");
    assert_eq!(
        again,
        log.into_iter().map(Appended::Duplicate).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn seqs_are_contiguous_per_room_and_ids_increase_with_them() {
    let (_scratch, store) = fresh_store().await;
    contract::seqs_are_contiguous_per_room_and_ids_increase_with_them(store).await;
}

#[tokio::test]
async fn an_empty_batch_stores_nothing() {
    let (_scratch, store) = fresh_store().await;
    contract::an_empty_batch_stores_nothing(store).await;
}

#[tokio::test]
async fn newest_before_and_after_page_through_three_pages() {
    let (_scratch, store) = fresh_store().await;
    contract::newest_before_and_after_page_through_three_pages(store).await;
}

#[tokio::test]
async fn head_and_after_seq() {
    let (_scratch, store) = fresh_store().await;
    contract::head_and_after_seq(store).await;
}

#[tokio::test]
async fn limits_are_clamped() {
    let (_scratch, store) = fresh_store().await;
    contract::limits_are_clamped(store, MAX_QUERY_LIMIT).await;
}

#[tokio::test]
async fn rooms_create_duplicate_get_list_and_count() {
    let (_scratch, store) = fresh_store().await;
    contract::rooms_create_duplicate_get_list_and_count(store).await;
}

#[tokio::test]
async fn idle_rooms_are_those_with_no_recent_creation_or_message() {
    let (_scratch, store) = fresh_store().await;
    contract::idle_rooms_are_those_with_no_recent_creation_or_message(store).await;
}

#[tokio::test]
async fn removing_idle_rooms_takes_their_messages_and_nothing_else() {
    let (_scratch, store) = fresh_store().await;
    contract::removing_idle_rooms_takes_their_messages_and_nothing_else(store.clone()).await;
    assert_eq!(message_rows(store).await, 3, "kept: 1, talked: 2");
}

#[tokio::test]
async fn a_room_created_again_goes_on_from_its_last_seq() {
    let (_scratch, store) = fresh_store().await;
    contract::a_room_created_again_goes_on_from_its_last_seq(store).await;
}

#[tokio::test]
async fn a_batch_for_an_unknown_room_fails_and_stores_nothing() {
    let (_scratch, store) = fresh_store().await;
    contract::a_batch_for_an_unknown_room_fails_and_stores_nothing(store, message_rows).await;
}

#[tokio::test]
async fn a_batch_naming_another_room_is_refused() {
    let (_scratch, store) = fresh_store().await;
    contract::a_batch_naming_another_room_is_refused(store, message_rows).await;
}

/// Makes the database refuse any message whose text is `poison`, so a batch fails in the
/// middle of its insert, after the room's `last_seq` was moved on and some of its rows were
/// inserted.
async fn refuse_poison(store: &SqliteStore) {
    sqlx::query(
        "CREATE TRIGGER test_no_poison BEFORE INSERT ON messages \
         WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(store.pool())
    .await
    .expect("add trigger");
}

#[tokio::test]
async fn a_batch_failing_midway_stores_nothing_and_burns_no_seq() {
    let (_scratch, store) = fresh_store().await;
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
        Err(error) => assert!(error.to_string().contains("append"), "{error}"),
        Ok(stored) => panic!("stored a poisoned batch: {stored:?}"),
    }
    assert_eq!(store.head(&a).await, Ok(3), "the head did not move");
    assert_eq!(
        whole_log(&store, "a").await.len(),
        3,
        "nothing of the batch stayed"
    );
    assert_eq!(message_rows(store.clone()).await, 3);

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
    assert_eq!(store.head(&a).await, Ok(5));
}

#[tokio::test]
async fn a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate() {
    let (_scratch, store) = fresh_store().await;
    contract::a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate(store).await;
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_is_stored_once() {
    let (_scratch, store) = fresh_store().await;
    contract::a_key_repeated_within_one_batch_is_stored_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_a_complete_log() {
    let (_scratch, store) = fresh_store().await;
    contract::concurrent_appenders_get_a_complete_log(store).await;
}

/// Two stores on one file, as two processes would be: their transactions serialise on
/// SQLite's write lock (`BEGIN IMMEDIATE` takes it before reading `last_seq`), and the log
/// stays complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_append_one_after_the_other() {
    const PER_TASK: usize = 60;
    let scratch = Scratch::new();
    let first = scratch.store("shared.db").await;
    let second = scratch.store("shared.db").await;
    create_rooms(&first, &["busy"]).await;
    let mut tasks = Vec::new();
    for task in 0..6 {
        let store = if task % 2 == 0 { &first } else { &second }.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_TASK {
                // Batches of 1 to 3.
                let batch = (0..1 + n % 3)
                    .map(|m| new_message("busy", &format!("task {task} {n}.{m}")))
                    .collect();
                store.append(&room_id("busy"), batch).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let total = 6 * (PER_TASK / 3) * (1 + 2 + 3);
    for store in [&first, &second] {
        assert_complete_log(&whole_log(store, "busy").await, total);
        assert_eq!(store.head(&room_id("busy")).await, Ok(total as Seq));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_the_same_keys_store_each_once() {
    let (_scratch, store) = fresh_store().await;
    contract::concurrent_retries_of_the_same_keys_store_each_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_following_the_log_never_miss_a_message() {
    let (_scratch, store) = fresh_store().await;
    contract::readers_following_the_log_never_miss_a_message(store, MAX_QUERY_LIMIT).await;
}

#[tokio::test]
async fn everything_survives_closing_and_reopening_the_file() {
    let scratch = Scratch::new();
    let path = scratch.file("persist.db");
    let store = open_migrated(&path).await;
    create_rooms(&store, &["a", "private-0123456789abcdef", "b"]).await;
    let kept_key = keyed_message("a", "#A1B2C3", key("kept"), "kept");
    let mut batch = vec![kept_key.clone()];
    batch.extend((0..4).map(|n| new_message("a", &format!("a{n}"))));
    store.append(&room_id("a"), batch).await.expect("append");
    append_one(&store, new_message("b", "b0")).await;
    append_one(&store, new_message("private-0123456789abcdef", "p0")).await;
    let epoch = store.epoch().await.expect("epoch");
    let rooms = store.list().await.expect("list");
    let log_a = whole_log(&store, "a").await;
    let log_b = whole_log(&store, "b").await;
    // Another store on the file keeps its connections open, so the closing store's are never
    // the last ones, which SQLite would checkpoint anyway: only `close`'s checkpoint counts.
    let bystander = SqliteStore::open(&path).await.expect("open again");
    store.close().await.expect("close");
    assert!(
        store.head(&room_id("a")).await.is_err(),
        "a closed store still answers"
    );
    drop(store);

    // Closing left every commit in the database file itself: a copy of it alone has them.
    let copy = scratch.file("copy.db");
    std::fs::copy(&path, &copy).expect("copy the database file");
    let from_copy = open_migrated(&copy).await;
    assert_eq!(whole_log(&from_copy, "a").await, log_a);
    assert_eq!(from_copy.list().await.as_ref(), Ok(&rooms));
    from_copy.close().await.expect("close the copy");
    bystander.close().await.expect("close the bystander");

    // Migrating again on reopen (as every start does) changes nothing.
    let reopened = open_migrated(&path).await;
    assert_eq!(reopened.epoch().await, Ok(epoch));
    assert_eq!(reopened.list().await, Ok(rooms));
    assert_eq!(reopened.count().await, Ok(3));
    assert_eq!(
        reopened.get(&room_id("private-0123456789abcdef")).await,
        Ok(Some(room(
            "private-0123456789abcdef",
            "private-0123456789abcdef"
        )))
    );
    assert_eq!(whole_log(&reopened, "a").await, log_a);
    assert_eq!(whole_log(&reopened, "b").await, log_b);
    assert_eq!(reopened.head(&room_id("a")).await, Ok(5));
    assert_eq!(
        reopened.head(&room_id("private-0123456789abcdef")).await,
        Ok(1)
    );

    // The logs go on where they stopped, ids above every earlier one, and keys still count.
    let next = append_one(&reopened, new_message("a", "a after reopen")).await;
    assert_eq!(next.seq, 6);
    let newest_before = log_a.iter().chain(&log_b).map(|m| m.id).max();
    assert!(Some(next.id) > newest_before, "id {} reused", next.id);
    assert_eq!(
        reopened.append(&room_id("a"), vec![kept_key]).await,
        Ok(vec![Appended::Duplicate(log_a[0].clone())])
    );
    assert_eq!(
        reopened.create(room("b", "again")).await,
        Err(CreateRoomError::AlreadyExists)
    );
}

/// What a crash of the process leaves: the database file and its write-ahead log as they
/// are while the store is open, never checkpointed or closed. Every commit is in them.
#[tokio::test]
async fn commits_survive_a_crash_of_the_process() {
    let scratch = Scratch::new();
    let store = scratch.store("live.db").await;
    create_rooms(&store, &["a"]).await;
    let batch = (0..3).map(|n| new_message("a", &format!("{n}"))).collect();
    store.append(&room_id("a"), batch).await.expect("append");
    let log = whole_log(&store, "a").await;
    let epoch = store.epoch().await.expect("epoch");
    // The files as the crash leaves them (the shared-memory index is rebuilt from the log).
    for suffix in ["", "-wal"] {
        std::fs::copy(
            scratch.file(&format!("live.db{suffix}")),
            scratch.file(&format!("crashed.db{suffix}")),
        )
        .expect("copy the files");
    }
    assert!(
        std::fs::metadata(scratch.file("crashed.db-wal"))
            .expect("the log")
            .len()
            > 0,
        "the commits are in the write-ahead log, not yet in the file"
    );

    let restarted = scratch.store("crashed.db").await;
    assert_eq!(whole_log(&restarted, "a").await, log);
    assert_eq!(restarted.epoch().await, Ok(epoch));
    assert_eq!(append_one(&restarted, new_message("a", "3")).await.seq, 4);
    store.close().await.expect("close");
}

#[tokio::test]
async fn the_log_epoch_is_drawn_once_per_database() {
    let scratch = Scratch::new();
    let store = scratch.store("one.db").await;
    let first = store.epoch().await.expect("epoch");
    assert_eq!(first.as_str().len(), 32, "128 bits in hex: {first}");
    assert!(
        first
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lower-case hex: {first}"
    );
    // Migrating again (a restart) keeps it.
    store.migrate().await.expect("migrate again");
    assert_eq!(store.epoch().await.expect("epoch"), first);
    // The table holds one epoch at most.
    let second_row = sqlx::query("INSERT INTO log_epoch (singleton, epoch) VALUES (2, 'ab')")
        .execute(store.pool())
        .await;
    assert!(second_row.is_err(), "a second epoch row was accepted");
    // Another database has another.
    let other = scratch.store("two.db").await;
    assert_ne!(other.epoch().await.expect("epoch"), first);
}

#[tokio::test]
async fn an_unmigrated_database_fails_with_a_backend_error() {
    let scratch = Scratch::new();
    let store = SqliteStore::open(&scratch.file("empty.db"))
        .await
        .expect("open");
    match store.epoch().await {
        Err(error) => assert!(error.to_string().contains("epoch"), "{error}"),
        Ok(epoch) => panic!("an epoch without a log: {epoch}"),
    }
    assert!(store.count().await.is_err());
}

#[tokio::test]
async fn an_in_memory_store_works_and_is_its_own() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    store.migrate().await.expect("migrate");
    let other = SqliteStore::open_in_memory().await.expect("open");
    other.migrate().await.expect("migrate");
    store.create(room("a", "A")).await.expect("create");
    let batch = vec![new_message("a", "one"), new_message("a", "two")];
    let results = store.append(&room_id("a"), batch).await.expect("append");
    let messages: Vec<_> = results.into_iter().map(stored).collect();
    assert_eq!(seqs(&messages), [1, 2]);
    assert_eq!(whole_log(&store, "a").await, messages);
    assert_eq!(store.head(&room_id("a")).await, Ok(2));
    assert_eq!(
        other.count().await,
        Ok(0),
        "each in-memory store is its own"
    );
    assert_ne!(
        store.epoch().await.expect("epoch"),
        other.epoch().await.expect("epoch")
    );
}

#[tokio::test]
async fn answers_match_the_memory_store() {
    let (_scratch, store) = fresh_store().await;
    contract::answers_match_the_memory_store(store).await;
}
