//! SQLite adapters for rtchat: [`SqliteStore`] implements both
//! [`MessageStore`](rtchat_chat::MessageStore) and [`RoomStore`](rtchat_chat::RoomStore) over
//! one local database file, so a single node keeps its rooms and history across restarts
//! without any service to run.
//!
//! ```no_run
//! # async fn assemble() -> Result<(), rtchat_chat::BackendError> {
//! use rtchat_sqlite::SqliteStore;
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! let store = SqliteStore::open(Path::new("/var/lib/rtchat/rtchat.db")).await?;
//! store.migrate().await?;
//! let messages: Arc<dyn rtchat_chat::MessageStore> = Arc::new(store.clone());
//! let rooms: Arc<dyn rtchat_chat::RoomStore> = Arc::new(store.clone());
//! # let _ = (messages, rooms);
//! // On shutdown, after the last append:
//! store.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//! The same as the PostgreSQL store (`rtchat-postgres`), call for call, so conformance
//! transcripts give the same snapshots on SQLite, PostgreSQL and memory: `newest` and
//! `before` are newest first, `after` and `after_seq` are oldest first, a `before`/`after` id
//! or an `after_seq` seq need not exist in the room (it is only a bound), an unknown room has
//! no messages and a head of 0, and a limit of 0 returns nothing. As with PostgreSQL, every
//! message is kept (the memory store keeps the newest 10,000 per room), and a batch for a
//! room that does not exist is refused with a [`BackendError`], storing nothing, where the
//! memory store accepts it (the chat service checks the room first, so the service never sees
//! the difference).
//!
//! Every read has a `LIMIT`: callers' limits are clamped to [`MAX_QUERY_LIMIT`], and the room
//! list to [`MAX_LISTED_ROOMS`] (the PostgreSQL store's values).
//!
//! # How it differs from PostgreSQL: one process, so one node
//! The database is a file that one server process opens. SQLite's own locking would keep two
//! processes on one file correct, but nothing else is shared between them (each node's hub
//! hears only its own appends), and file locks do not work on network file systems: run one
//! node per file, and use PostgreSQL and Redis for several nodes.
//!
//! # Connections: one writer, several readers
//! SQLite lets one transaction write at a time. Writes (appends, room creation, migrations)
//! therefore go through a pool of exactly one connection, [`SqliteStore::pool`]: writers wait
//! their turn in the pool's queue, in order, instead of polling SQLite's lock, and that
//! connection's prepared statements stay warm. Reads go through a pool of up to
//! [`READ_CONNECTIONS`] connections, [`SqliteStore::read_pool`], which in WAL mode read
//! alongside the writer, each statement seeing the last commit before it began.
//!
//! # Durability: WAL with `synchronous = NORMAL`
//! The journal is a write-ahead log, and `synchronous = NORMAL` syncs it to disk at
//! checkpoints rather than at every commit. A commit is durable against a crash of the
//! application (the log is in the operating system's hands once the commit returns); a power
//! loss or an operating-system crash can lose at most the last commits before it, never
//! corrupt the database or leave a partial batch. That is what makes one small transaction per
//! batch cheap; `FULL` would add an fsync to every append.
//!
//! # Seqs, ids and ordering
//! Every room is a log: its messages have seqs 1, 2, 3, ... with no holes, so "everything up
//! to seq N" is a complete prefix of the room, which replay and gap repair rely on. `append`
//! stores a whole batch of one room in one `BEGIN IMMEDIATE` transaction (the write lock is
//! taken at the start, so two writers, even in two processes, run one after the other) of a
//! few statements whatever the batch size, the batch being one JSON text bind:
//!
//! 1. looks up the batch's `(room_id, name_tag, message_key)`s among the stored messages: a
//!    message that has a stored one's (or an earlier one's of the same batch) gets that
//!    original, [`Appended::Duplicate`](rtchat_chat::Appended::Duplicate), and nothing is
//!    stored for it;
//! 2. adds the number of new messages to the room's `last_seq` and reads it back (no room: the
//!    batch fails);
//! 3. inserts the new messages with the seqs that follow the old `last_seq`, in batch order.
//!
//! **Seqs are contiguous** because they come from the counter on the room row, written in the
//! same transaction as the messages: a failed or rolled-back append moves neither. A unique
//! constraint on `(room_id, seq)` guards it anyway.
//!
//! **Ids increase with seq within a room**, and across the store: they come from the
//! `messages` table's `AUTOINCREMENT` key, drawn inside the write transaction, so in commit
//! order; `append` checks that each batch's ids follow its seqs. An id is never handed out
//! twice (`AUTOINCREMENT`); unlike PostgreSQL's sequence, a rolled-back append gives its ids
//! back, so ids have no holes here, which nothing relies on. A reader that sees id N or seq N
//! of a room sees every earlier message of that room, so `since-id` replay never misses one.
//!
//! **Keys make retries idempotent**: a unique index on `(room_id, name_tag, message_key)`
//! answers the lookup and guarantees a message is never stored twice.
//!
//! # Migrations
//! The schema lives in `migrations/*.sql`, embedded in the binary with `include_str!` and run
//! by sqlx's runtime [`Migrator`](sqlx::migrate::Migrator) (see [`SqliteStore::migrate`]), as
//! in `rtchat-postgres` and for the same reason: `sqlx::migrate!()` needs sqlx's `macros`
//! feature and its proc-macro crate. The first migration also draws the log epoch.

mod messages;
mod migrations;
mod rooms;

use rtchat_chat::BackendError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use sqlx::SqlitePool;

/// Largest `limit` a message query honours; larger limits are clamped to it (as in the
/// PostgreSQL store; the chat's own limits are far below: 100 for history by default).
pub const MAX_QUERY_LIMIT: usize = 1_000;

/// Most rooms [`RoomStore::list`](rtchat_chat::RoomStore::list) returns (the oldest first),
/// as in the PostgreSQL store; the chat caps the number of rooms at 10,000 by default.
pub const MAX_LISTED_ROOMS: usize = 100_000;

/// Connections of the read pool, [`SqliteStore::read_pool`]: reads run alongside each other
/// and the writer, each on a worker thread of its own.
pub const READ_CONNECTIONS: u32 = 4;

/// How long a statement waits for a lock SQLite's own (another process's transaction, a
/// checkpoint) before failing with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation waits for its pooled connection before failing: for a write, its
/// turn behind the writes queued before it, so an overloaded store fails sends instead of
/// queueing them without end.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The message store and the room store over one SQLite database. Cloning is cheap and shares
/// the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write goes through it, one at a time.
    writer: SqlitePool,
    /// Reads only (`query_only`); the writer pool itself for an in-memory database.
    readers: SqlitePool,
    /// False for an in-memory database: no file, no write-ahead log, one pool.
    on_file: bool,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it (not its directory) when missing, in WAL
    /// mode with `synchronous = NORMAL` (see the crate docs, "Durability"), foreign keys on and
    /// a [`BUSY_TIMEOUT`]: one write connection and up to [`READ_CONNECTIONS`] read
    /// connections, one of each opened now to check the file. Does not migrate: call
    /// [`SqliteStore::migrate`].
    ///
    /// Errors: [`BackendError`] when the file cannot be created or opened (a missing
    /// directory, no permission, not a SQLite database, a path that is not UTF-8).
    pub async fn open(path: &Path) -> Result<Self, BackendError> {
        let failed = |error: sqlx::Error| {
            BackendError::caused_by(format!("sqlite open {}", path.display()), error)
        };
        let common = SqliteConnectOptions::new()
            .filename(plain_file_name(path))
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The writer opens the file first: it creates it, and switches a new database to WAL
        // (which needs the file to itself). The mode is stored in the file, so the readers
        // find it set.
        let writer_options = common
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Why NORMAL: see the crate docs, "Durability". It only matters where commits
            // happen, on the writer.
            .synchronous(SqliteSynchronous::Normal);
        let writer = pool_options(1)
            .connect_with(writer_options)
            .await
            .map_err(failed)?;
        // A read connection that tried to write would take the write lock behind the writer
        // pool's back: `query_only` makes that an error.
        let reader_options = common.pragma("query_only", "ON");
        let readers = match pool_options(READ_CONNECTIONS)
            .connect_with(reader_options)
            .await
        {
            Ok(readers) => readers,
            Err(error) => {
                writer.close().await;
                return Err(failed(error));
            }
        };
        Ok(SqliteStore {
            writer,
            readers,
            on_file: true,
        })
    }

    /// A new, empty database in memory, gone when the store is closed or dropped: for tests.
    /// It lives in one connection, which serves reads and writes alike (each connection to
    /// `:memory:` would be a database of its own), and which the pool never closes for being
    /// idle or old. Not migrated: call [`SqliteStore::migrate`].
    ///
    /// Errors: [`BackendError`] when SQLite cannot open it (out of memory).
    pub async fn open_in_memory() -> Result<Self, BackendError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = pool_options(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(backend("open in memory"))?;
        Ok(SqliteStore {
            writer: pool.clone(),
            readers: pool,
            on_file: false,
        })
    }

    /// The pool of the one connection that writes: statements of your own that change the
    /// database go here, where they queue with the store's writes (through the read pool they
    /// would fail).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The pool the store's reads go through (for an in-memory store, the same as
    /// [`SqliteStore::pool`]).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.readers
    }

    /// Closes the store (every clone's): the read pool, then a checkpoint that copies the
    /// write-ahead log into the database file and empties it, then the write connection,
    /// each waiting for the operations under way. Afterwards the database file holds every
    /// commit on its own (a copy of it alone is a complete backup), and operations fail.
    /// Call it on shutdown, after the last append.
    ///
    /// Errors: [`BackendError`] when the checkpoint failed (the pools are closed anyway, and
    /// nothing is lost: the next open reads the log).
    pub async fn close(&self) -> Result<(), BackendError> {
        if !self.on_file {
            self.writer.close().await;
            return Ok(());
        }
        self.readers.close().await;
        let checkpoint = self.checkpoint().await;
        self.writer.close().await;
        checkpoint
    }

    /// Copies the whole write-ahead log into the database file and empties the log.
    async fn checkpoint(&self) -> Result<(), BackendError> {
        // One row: whether another connection (another process's) kept it from completing,
        // the log's pages, and the pages copied.
        let (blocked, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.writer)
            .await
            .map_err(backend("checkpoint on close"))?;
        if blocked != 0 {
            return Err(BackendError::new(
                "sqlite checkpoint on close: another connection is reading the log".to_owned(),
            ));
        }
        Ok(())
    }

    /// Brings the schema up to date: runs the embedded migrations (`migrations/*.sql`) not yet
    /// applied, in version order, each in a transaction, on the write connection. Idempotent.
    ///
    /// Errors: [`BackendError`] when a migration fails, or the database has a migration
    /// applied that this build does not know or whose file changed since (a newer build ran
    /// against it, or a released migration was edited).
    pub async fn migrate(&self) -> Result<(), BackendError> {
        migrations::run(&self.writer).await
    }
}

/// Pool settings for a pool of at most `connections` connections.
fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx would ping every connection it hands out: a round trip to the connection's
        // worker thread for a local file that cannot have gone away like a network peer.
        .test_before_acquire(false)
}

/// `path` as SQLite should read it: sqlx opens files with URI names allowed, so a relative
/// path starting with `file:` would be read as a URI; `./` keeps it a file name.
fn plain_file_name(path: &Path) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    }
}

/// Maps a sqlx error to a [`BackendError`] whose text says what was being done (for logs).
fn backend<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
) -> impl Fn(E) -> BackendError {
    move |error| BackendError::caused_by(format!("sqlite {doing}"), error)
}

/// A caller's limit as a SQL `LIMIT`, clamped to `max`.
fn sql_limit(limit: usize, max: usize) -> i64 {
    // `max` is one of our constants, far below i64::MAX.
    limit.min(max) as i64
}
