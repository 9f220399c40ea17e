//! [`MessageStore`] over the `messages` table and the rooms' `last_seq`.

use crate::{MAX_QUERY_LIMIT, PostgresStore, backend, sql_limit};
use async_trait::async_trait;
use rtchat_chat::{
    Appended, BackendError, ChatMessage, LogEpoch, MessageId, MessageStore, NewMessage, RoomId, Seq,
};

/// Stores a batch in one statement (one round trip, one implicit transaction): the
/// `rtchat_append` function of migration 0002 locks the room row, skips known keys, and
/// gives each new message the room's next seq and an id (see the crate docs, "Seqs, ids
/// and ordering across nodes"). The binds are the room and one array per field, element i of
/// each being message i of the batch.
const APPEND: &str = "\
SELECT ord, duplicate, id, seq, message, rand_id, name_tag, created_at, ip_address
FROM rtchat_append($1, $2, $3, $4, $5, $6, $7) ORDER BY ord";

const HEAD: &str = "SELECT last_seq FROM rooms WHERE room_id = $1";

const NEWEST: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 ORDER BY id DESC LIMIT $2";

const BEFORE: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

const AFTER: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3";

const AFTER_SEQ: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3";

/// A `messages` row as selected above.
type Row = (i64, i64, String, String, String, String, String, String);

/// A row of [`APPEND`]: `(ord, duplicate, id, seq, message, rand_id, name_tag, created_at,
/// ip_address)`; the text fields are only filled for duplicates (the caller has the rest).
type AppendRow = (
    i32,
    bool,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A message id read from the database (a `bigserial`, so never negative unless damaged).
fn message_id(id: i64) -> Result<MessageId, BackendError> {
    MessageId::try_from(id)
        .map_err(|_| BackendError::new(format!("postgres: negative message id {id}")))
}

/// A seq read from the database (checked `>= 0` by the schema).
fn seq(seq: i64) -> Result<Seq, BackendError> {
    Seq::try_from(seq).map_err(|_| BackendError::new(format!("postgres: negative seq {seq}")))
}

/// The message of a row.
fn message(
    (id, seq_in_room, room_id, message, rand_id, name_tag, created_at, ip_address): Row,
) -> Result<ChatMessage, BackendError> {
    Ok(ChatMessage {
        id: message_id(id)?,
        seq: seq(seq_in_room)?,
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

/// What became of `posted`, from its row of [`APPEND`].
fn appended(
    room: &RoomId,
    posted: NewMessage,
    (_, duplicate, id, seq_in_room, message, rand_id, name_tag, created_at, ip_address): AppendRow,
) -> Result<Appended, BackendError> {
    let (id, seq_in_room) = (message_id(id)?, seq(seq_in_room)?);
    if !duplicate {
        return Ok(Appended::Stored(ChatMessage::stored(
            id,
            seq_in_room,
            posted,
        )));
    }
    match (message, rand_id, name_tag, created_at, ip_address) {
        (Some(message), Some(rand_id), Some(name_tag), Some(created_at), Some(ip_address)) => {
            Ok(Appended::Duplicate(ChatMessage {
                id,
                seq: seq_in_room,
                room_id: room.as_str().to_owned(),
                message,
                rand_id,
                name_tag,
                created_at,
                ip_address,
            }))
        }
        _ => Err(BackendError::new(format!(
            "postgres append: duplicate {id} came back without its fields"
        ))),
    }
}

/// The batch as the parallel text arrays [`APPEND`] binds, field by field.
struct Columns<'a> {
    messages: Vec<&'a str>,
    rand_ids: Vec<&'a str>,
    name_tags: Vec<&'a str>,
    created_at: Vec<&'a str>,
    ip_addresses: Vec<&'a str>,
    keys: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a [NewMessage]) -> Self {
        Columns {
            messages: batch.iter().map(|m| m.message.as_str()).collect(),
            rand_ids: batch.iter().map(|m| m.author.rand_id.as_str()).collect(),
            name_tags: batch.iter().map(|m| m.author.name_tag.as_str()).collect(),
            created_at: batch.iter().map(|m| m.created_at.as_str()).collect(),
            ip_addresses: batch.iter().map(|m| m.ip_address.as_str()).collect(),
            keys: batch.iter().map(|m| m.key.as_str()).collect(),
        }
    }
}

impl PostgresStore {
    /// Runs a message query whose last two binds are the bound (if any) and the limit.
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
    /// Stores `batch` in `room` in one round trip and one transaction: every new message gets
    /// the room's next seq and an id above every id of the room; a known (room, author tag,
    /// key) gives [`Appended::Duplicate`] with the original, also within the batch.
    ///
    /// Errors: [`BackendError`], with nothing stored, when the database is unreachable, the
    /// room does not exist, or a message of the batch names another room than `room`; or
    /// when the connection is lost during commit (then retrying the batch is safe).
    async fn append(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, BackendError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The stored message's room is `room`: a message claiming another would come back
        // with a room it was not stored in.
        if let Some(stray) = batch.iter().find(|m| &m.room_id != room) {
            return Err(BackendError::new(format!(
                "postgres append: a message for room {} in a batch for room {room}",
                stray.room_id
            )));
        }
        let columns = Columns::of(&batch);
        let rows = sqlx::query_as::<_, AppendRow>(APPEND)
            .bind(room.as_str())
            .bind(&columns.messages)
            .bind(&columns.rand_ids)
            .bind(&columns.name_tags)
            .bind(&columns.created_at)
            .bind(&columns.ip_addresses)
            .bind(&columns.keys)
            .fetch_all(&self.pool)
            .await
            .map_err(backend("append messages"))?;
        // One row per message, in batch order: anything else means the function and this
        // code disagree, and the batch's outcome cannot be told apart.
        let in_order = rows.len() == batch.len()
            && rows
                .iter()
                .enumerate()
                .all(|(index, row)| usize::try_from(row.0).is_ok_and(|ord| ord == index + 1));
        if !in_order {
            return Err(BackendError::new(format!(
                "postgres append: {} result rows for a batch of {}, or out of order",
                rows.len(),
                batch.len()
            )));
        }
        batch
            .into_iter()
            .zip(rows)
            .map(|(posted, row)| appended(room, posted, row))
            .collect()
    }

    /// The room's `last_seq`: 0 for a room without messages or an unknown room.
    ///
    /// Errors: [`BackendError`] when the database is unreachable.
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        let last_seq: Option<i64> = sqlx::query_scalar(HEAD)
            .bind(room.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend("read room head"))?;
        last_seq.map_or(Ok(0), seq)
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

    /// The first `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with a seq above
    /// `after`, oldest first: seqs `after + 1 ..`, a range scan of `(room_id, seq)`.
    ///
    /// Errors: [`BackendError`] when the database is unreachable.
    async fn after_seq(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        match i64::try_from(after) {
            Ok(after) => self.select(AFTER_SEQ, room, Some(after), limit).await,
            // Above every seq a room can reach.
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The epoch migration 0003 drew when this schema's log began.
    ///
    /// Errors: [`BackendError`] when the database is unreachable or not migrated.
    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
        let epoch: String = sqlx::query_scalar("SELECT epoch FROM log_epoch")
            .fetch_one(&self.pool)
            .await
            .map_err(backend("read the log epoch"))?;
        LogEpoch::parse(&epoch)
            .ok_or_else(|| BackendError::new(format!("postgres: malformed log epoch {epoch:?}")))
    }
}
