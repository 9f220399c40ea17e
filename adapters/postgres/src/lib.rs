//! PostgreSQL adapters for rtchat: [`PostgresStore`] implements both
//! [`MessageStore`](rtchat_chat::MessageStore) and [`RoomStore`](rtchat_chat::RoomStore) over
//! one sqlx connection pool, so several server nodes share rooms and history.
//!
//! ```no_run
//! # async fn assemble() -> Result<(), rtchat_chat::BackendError> {
//! use rtchat_postgres::PostgresStore;
//! use std::sync::Arc;
//!
//! let store = PostgresStore::connect("postgres://rtchat@db.internal/rtchat").await?;
//! store.migrate().await?;
//! let messages: Arc<dyn rtchat_chat::MessageStore> = Arc::new(store.clone());
//! let rooms: Arc<dyn rtchat_chat::RoomStore> = Arc::new(store);
//! # let _ = (messages, rooms);
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//! The queries return what the in-memory store (`rtchat-memory`) returns for the same calls,
//! so conformance transcripts give the same snapshots on both: `newest` and `before` are
//! newest first, `after` and `after_seq` are oldest first, a `before`/`after` id or an
//! `after_seq` seq need not exist in the room (it is only a bound), an unknown room has no
//! messages and a head of 0, and a limit of 0 returns nothing. Two differences: PostgreSQL
//! keeps every message (the memory store keeps the newest 10,000 per room), and a batch for a
//! room that does not exist is refused with a [`BackendError`], storing nothing, where the
//! memory store accepts it (the chat service checks the room first, so the service never sees
//! the difference).
//!
//! Every read has a `LIMIT`: callers' limits are clamped to [`MAX_QUERY_LIMIT`], and the room
//! list to [`MAX_LISTED_ROOMS`].
//!
//! # Seqs, ids and ordering across nodes
//! Every room is a log: its messages have seqs 1, 2, 3, ... with no holes, so "everything up
//! to seq N" is a complete prefix of the room, which replay and gap repair rely on. `append`
//! sends a whole batch of one room in one statement (one round trip, one transaction) to the
//! PL/pgSQL function `rtchat_append` (migration `0002_room_log.sql`), which:
//!
//! 1. locks the room's row (`SELECT last_seq ... FOR UPDATE`), so appends to one room run one
//!    after the other, whichever node or connection they come from, until commit;
//! 2. for each message in batch order, looks up its `(room_id, name_tag, message_key)`: when a
//!    stored message (or an earlier one of the same batch) has it, the result is that
//!    original, [`Appended::Duplicate`](rtchat_chat::Appended::Duplicate), and nothing is
//!    stored; otherwise it inserts the message with seq `last_seq + 1`;
//! 3. writes the new `last_seq` back to the room row.
//!
//! **Seqs are contiguous** because they come from a counter on the room row, not from a
//! PostgreSQL sequence: the counter and the messages are written in the same transaction, so
//! a failed or rolled-back append moves neither, and the row lock means no two appends read
//! the same `last_seq`. A unique constraint on `(room_id, seq)` guards it anyway.
//!
//! **Ids increase with seq within a room.** Ids still come from the store-wide `bigserial`
//! sequence, so they increase across the whole store and may have holes (a failed insert
//! burns its number; nothing relies on ids being dense). Each id is drawn after the room row
//! is locked, and the lock is held until commit, so within one room ids are drawn, and
//! committed, in seq order: a reader that sees id N or seq N of a room also sees every
//! earlier message of that room, and `since-id` replay (which reads `after` the last id a
//! client saw) never misses one. Across rooms ids may commit out of order, which nothing
//! relies on. (Before the room log, a per-room advisory lock gave this order; the row lock
//! now does, so there is no advisory lock any more.)
//!
//! **Keys make retries idempotent**: a unique index on `(room_id, name_tag, message_key)`
//! answers the lookup and guarantees a message is never stored twice, so a batch whose commit
//! outcome was lost with the connection can be sent again. Messages stored before migration
//! 0002 got the key `~legacy-<id>` (and seqs in id order), which no new message uses.
//!
//! `head` reads the room's `last_seq`, and `after_seq` is a range scan of the `(room_id, seq)`
//! index, whatever the depth.
//!
//! # Migrations
//! The schema lives in `migrations/*.sql`, embedded in the binary with `include_str!` and run by
//! sqlx's runtime [`Migrator`](sqlx::migrate::Migrator) (see [`PostgresStore::migrate`]). We
//! don't use `sqlx::migrate!()`: that macro needs sqlx's `macros` feature, whose proc-macro
//! crate compiles a second (host) copy of sqlx-core, sqlx-postgres and tokio; handing the
//! embedded files to the runtime migrator costs a few lines and keeps what the macro would
//! give: the `_sqlx_migrations` table, checksums of applied files, and an advisory lock so
//! nodes starting together migrate once.
//!
//! Migration 0002 (the room log) makes `seq` and `message_key` mandatory, so a build from
//! before it can still read a migrated database but no longer append to it: upgrade every
//! node at once rather than one by one.

mod messages;
mod migrations;
mod rooms;

use rtchat_chat::BackendError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use sqlx::PgPool;

/// Largest `limit` a message query honours; larger limits are clamped to it (the chat's own
/// limits are far below: 100 for history by default).
pub const MAX_QUERY_LIMIT: usize = 1_000;

/// Most rooms [`RoomStore::list`](rtchat_chat::RoomStore::list) returns (the oldest first);
/// the chat caps the number of rooms at 10,000 by default, well below.
pub const MAX_LISTED_ROOMS: usize = 100_000;

/// Connections [`PostgresStore::connect`] opens at most.
pub const MAX_CONNECTIONS: u32 = 10;

/// How long [`PostgresStore::connect`] and each query wait for a pooled connection (or to
/// open one) before failing, so a database that is down fails requests fast.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one statement may run on connections opened by [`PostgresStore::connect`]
/// (PostgreSQL's `statement_timeout`); every query here is an index lookup, so this only
/// bounds a sick database.
pub const STATEMENT_TIMEOUT: &str = "10s";

/// The message store and the room store over one PostgreSQL connection pool. Cloning is
/// cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Connections the pool has opened (the first, and each one after PostgreSQL came back).
    opened: Arc<AtomicU64>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`) with a pool of at
    /// most [`MAX_CONNECTIONS`] connections and an acquire timeout of [`ACQUIRE_TIMEOUT`], and
    /// opens one connection to check the database is reachable. Does not migrate: call
    /// [`PostgresStore::migrate`].
    ///
    /// Errors: [`BackendError`] when the URL is malformed or the database cannot be reached or
    /// refuses the login within the timeout. No TLS: connect to a local or private-network
    /// database (an `sslmode=require` URL fails).
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let options = PgConnectOptions::from_str(url).map_err(backend("invalid database URL"))?;
        Self::connect_with(options).await
    }

    /// Like [`PostgresStore::connect`], but every table lives in the schema `schema`, which is
    /// created when missing (the connections' `search_path` is set to it). For separate
    /// deployments or test runs sharing one database.
    ///
    /// Errors: [`BackendError`] when `schema` is not 1 to 63 characters of `[a-z0-9_]`
    /// starting with a letter or `_`, and as for [`PostgresStore::connect`], or when the schema
    /// cannot be created.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, BackendError> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(backend("invalid database URL"))?;
        // Create the schema on a connection of its own: the pool's connections look only in it.
        let create = Self::connect_with(options.clone()).await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&create.pool)
            .await
            .map_err(backend("create schema"))?;
        create.pool.close().await;
        Self::connect_with(options.options([("search_path", schema)])).await
    }

    /// Drops the schema `schema` and everything in it: the end of a test run that used
    /// [`PostgresStore::connect_in_schema`]. Close the stores that use it first.
    ///
    /// Errors: [`BackendError`] for an invalid schema name or when the statement fails.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), BackendError> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(backend("invalid database URL"))?;
        let admin = Self::connect_with(options).await?;
        let result = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&admin.pool)
            .await
            .map(|_| ())
            .map_err(backend("drop schema"));
        admin.pool.close().await;
        result
    }

    /// Uses connections opened with `options` (the pool settings of
    /// [`PostgresStore::connect`], plus [`STATEMENT_TIMEOUT`]).
    async fn connect_with(options: PgConnectOptions) -> Result<Self, BackendError> {
        let options = options
            .application_name("rtchat")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let opened = Arc::new(AtomicU64::new(0));
        let counted = opened.clone();
        let pool = PgPoolOptions::new()
            .after_connect(move |_, _| {
                counted.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(()) })
            })
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(backend("connect"))?;
        Ok(PostgresStore { pool, opened })
    }

    /// A store over a pool configured by the caller (its size, timeouts, `search_path`).
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStore {
            pool,
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Connections the pool has opened since the start (reconnects after an outage
    /// included), as a shared count that goes on growing; always 0 for a pool given to
    /// [`PostgresStore::from_pool`].
    pub fn connections_opened(&self) -> Arc<AtomicU64> {
        self.opened.clone()
    }

    /// The pool, e.g. to close it on shutdown (`store.pool().close().await`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the schema up to date: runs the embedded migrations (`migrations/*.sql`) not yet
    /// applied, in version order, each in a transaction. Idempotent, and safe when several
    /// nodes start at once (sqlx's migrator holds an advisory lock while it runs). Runs on one
    /// pooled connection, without [`STATEMENT_TIMEOUT`].
    ///
    /// Errors: [`BackendError`] when the database is unreachable, a migration fails, or the
    /// database has a migration applied that this build does not know or whose file changed
    /// since (a newer build ran against it, or a released migration was edited).
    pub async fn migrate(&self) -> Result<(), BackendError> {
        migrations::run(&self.pool).await
    }
}

/// Maps a sqlx error to a [`BackendError`] whose text says what was being done (for logs).
fn backend<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
) -> impl Fn(E) -> BackendError {
    move |error| BackendError::caused_by(format!("postgres {doing}"), error)
}

/// A caller's limit as a SQL `LIMIT`, clamped to `max`.
fn sql_limit(limit: usize, max: usize) -> i64 {
    // `max` is one of our constants, far below i64::MAX.
    limit.min(max) as i64
}

/// Schema names are spliced into SQL, so only plain identifiers pass: 1 to 63 characters of
/// `[a-z0-9_]`, not starting with a digit.
fn check_schema_name(schema: &str) -> Result<(), BackendError> {
    let valid = (1..=63).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(BackendError::new(format!("invalid schema name {schema:?}")))
    }
}
