//! The PostgreSQL store against a real PostgreSQL: the one `DATABASE_URL` names (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), or else a throwaway server that
//! `rtchat-test-services` starts for this test binary from the installed binaries. Only
//! without either do these tests skip, with a notice `cargo test` shows, and fail instead
//! under `RTCHAT_REQUIRE_SERVICES=1`.
//!
//! Each test works in a schema of its own (`rtchat_test_<random>`, dropped at the end), so
//! tests run in parallel with each other and with anyone else's runs on the same database.

use rtchat_chat::{MessageStore, RoomStore, Seq};
use rtchat_postgres::{MAX_QUERY_LIMIT, PostgresStore};
use rtchat_store_contract as contract;
use rtchat_store_contract::helpers::{
    append_one, assert_complete_log, create_rooms, ids, keyed_message, new_message, room_id, seqs,
    stored, whole_log,
};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
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

/// How many rows `messages` has, whatever their room.
async fn message_rows(store: PostgresStore) -> u64 {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .expect("count messages");
    u64::try_from(rows).expect("a count is never negative")
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
        // 0001 init, 0002 room log, 0003 log epoch, 0004 room expiry.
        assert_eq!(applied, 4);
    })
    .await;
}

#[tokio::test]
async fn append_assigns_ids_and_seqs_and_keeps_every_field() {
    with_store(contract::append_assigns_ids_and_seqs_and_keeps_every_field).await;
}

#[tokio::test]
async fn seqs_are_contiguous_per_room_and_ids_increase_with_them() {
    with_store(contract::seqs_are_contiguous_per_room_and_ids_increase_with_them).await;
}

#[tokio::test]
async fn an_empty_batch_stores_nothing() {
    with_store(contract::an_empty_batch_stores_nothing).await;
}

#[tokio::test]
async fn newest_before_and_after_page_through_three_pages() {
    with_store(contract::newest_before_and_after_page_through_three_pages).await;
}

#[tokio::test]
async fn head_and_after_seq() {
    with_store(contract::head_and_after_seq).await;
}

#[tokio::test]
async fn limits_are_clamped() {
    with_store(|store| contract::limits_are_clamped(store, MAX_QUERY_LIMIT)).await;
}

#[tokio::test]
async fn rooms_create_duplicate_get_list_and_count() {
    with_store(contract::rooms_create_duplicate_get_list_and_count).await;
}

#[tokio::test]
async fn idle_rooms_are_those_with_no_recent_creation_or_message() {
    with_store(contract::idle_rooms_are_those_with_no_recent_creation_or_message).await;
}

#[tokio::test]
async fn removing_idle_rooms_takes_their_messages_and_nothing_else() {
    with_store(|store| async move {
        contract::removing_idle_rooms_takes_their_messages_and_nothing_else(store.clone()).await;
        assert_eq!(message_rows(store).await, 3, "kept: 1, talked: 2");
    })
    .await;
}

#[tokio::test]
async fn a_room_created_again_goes_on_from_its_last_seq() {
    with_store(contract::a_room_created_again_goes_on_from_its_last_seq).await;
}

#[tokio::test]
async fn a_batch_for_an_unknown_room_fails_and_stores_nothing() {
    with_store(|store| {
        contract::a_batch_for_an_unknown_room_fails_and_stores_nothing(store, message_rows)
    })
    .await;
}

#[tokio::test]
async fn a_batch_naming_another_room_is_refused() {
    with_store(|store| contract::a_batch_naming_another_room_is_refused(store, message_rows)).await;
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
            Err(error) => assert!(error.to_string().contains("append"), "{error}"),
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
    with_store(contract::a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate).await;
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_is_stored_once() {
    with_store(contract::a_key_repeated_within_one_batch_is_stored_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_a_complete_log() {
    with_store(contract::concurrent_appenders_get_a_complete_log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_the_same_keys_store_each_once() {
    with_store(contract::concurrent_retries_of_the_same_keys_store_each_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_following_the_log_never_miss_a_message() {
    with_store(|store| {
        contract::readers_following_the_log_never_miss_a_message(store, MAX_QUERY_LIMIT)
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
        // 0001 init, 0002 room log, 0003 log epoch, 0004 room expiry.
        assert_eq!(applied, 4);
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
            Err(error) => assert!(error.to_string().contains("schema"), "{bad}: {error}"),
            Ok(_) => panic!("{bad} accepted"),
        }
    }
}

#[tokio::test]
async fn answers_match_the_memory_store() {
    with_store(contract::answers_match_the_memory_store).await;
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
