//! [`MessageStore`] over the `messages` table.

use crate::{MAX_QUERY_LIMIT, PostgresStore, backend, sql_limit};
use async_trait::async_trait;
use rtchat_core::{BackendError, ChatMessage, MessageId, MessageStore, NewMessage, RoomId};

/// First key of the advisory locks `append` takes (the second is a hash of the room id):
/// "rtch" in ASCII, so our locks don't meet other users of the two-key advisory lock space.
const ROOM_LOCK_CLASS: i32 = 0x7274_6368;

/// Stores one message in one statement (one round trip, one implicit transaction). The CTE
/// takes the room's transaction-level advisory lock before the INSERT draws an id from the
/// sequence (the row the INSERT consumes comes from the CTE), and the lock is held until the
/// statement commits: within a room, ids are assigned and committed in the same order (see
/// the crate docs, "Ids and ordering across nodes").
const APPEND: &str = "\
WITH room_lock AS (SELECT pg_advisory_xact_lock($1, hashtext($2)))
INSERT INTO messages (room_id, message, rand_id, name_tag, created_at, ip_address)
SELECT $2, $3, $4, $5, $6, $7 FROM room_lock
RETURNING id";

const NEWEST: &str = "\
SELECT id, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 ORDER BY id DESC LIMIT $2";

const BEFORE: &str = "\
SELECT id, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

const AFTER: &str = "\
SELECT id, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3";

/// A `messages` row as selected above.
type Row = (i64, String, String, String, String, String, String);

/// The message of a row.
fn message(
    (id, room_id, message, rand_id, name_tag, created_at, ip_address): Row,
) -> Result<ChatMessage, BackendError> {
    let id = MessageId::try_from(id)
        .map_err(|_| BackendError(format!("postgres: negative message id {id}")))?;
    Ok(ChatMessage {
        id,
        room_id,
        message,
        rand_id,
        name_tag,
        created_at,
        ip_address,
    })
}

fn messages(rows: Vec<Row>) -> Result<Vec<ChatMessage>, BackendError> {
    rows.into_iter().map(message).collect()
}

impl PostgresStore {
    /// Runs a message query whose last two binds are the id bound (if any) and the limit.
    async fn select(
        &self,
        sql: &'static str,
        room: &RoomId,
        bound: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_as::<_, Row>(sql).bind(room.as_str());
        if let Some(bound) = bound {
            query = query.bind(bound);
        }
        let rows = query
            .bind(sql_limit(limit, MAX_QUERY_LIMIT))
            .fetch_all(&self.pool)
            .await
            .map_err(backend("read messages"))?;
        messages(rows)
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    /// Stores `message` and returns it with its id, greater than every id assigned before
    /// (in this room, also committed after every earlier one).
    ///
    /// Errors: [`BackendError`] when the database is unreachable, or the room does not exist
    /// (foreign key violation; the id it drew is skipped).
    async fn append(&self, message: NewMessage) -> Result<ChatMessage, BackendError> {
        let id: i64 = sqlx::query_scalar(APPEND)
            .bind(ROOM_LOCK_CLASS)
            .bind(message.room_id.as_str())
            .bind(&message.message)
            .bind(&message.author.rand_id)
            .bind(&message.author.name_tag)
            .bind(&message.created_at)
            .bind(&message.ip_address)
            .fetch_one(&self.pool)
            .await
            .map_err(backend("append message"))?;
        let id = MessageId::try_from(id)
            .map_err(|_| BackendError(format!("postgres: negative message id {id}")))?;
        Ok(ChatMessage::stored(id, message))
    }

    /// The newest `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room`, newest first;
    /// empty for a room without messages or a limit of 0.
    ///
    /// Errors: [`BackendError`] when the database is unreachable.
    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        self.select(NEWEST, room, None, limit).await
    }

    /// The `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with an id below `before`,
    /// newest first. `before` need not be the id of a message of `room`.
    ///
    /// Errors: [`BackendError`] when the database is unreachable.
    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        match i64::try_from(before) {
            Ok(before) => self.select(BEFORE, room, Some(before), limit).await,
            // Above every id the sequence can give.
            Err(_) => self.select(NEWEST, room, None, limit).await,
        }
    }

    /// The first `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with an id above
    /// `after`, oldest first. `after` need not be the id of a message of `room`.
    ///
    /// Errors: [`BackendError`] when the database is unreachable.
    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        match i64::try_from(after) {
            Ok(after) => self.select(AFTER, room, Some(after), limit).await,
            // Above every id the sequence can give.
            Err(_) => Ok(Vec::new()),
        }
    }
}
