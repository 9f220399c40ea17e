//! [`MessageStore`] over the `messages` table and the rooms' `last_seq`.

use crate::{MAX_QUERY_LIMIT, SqliteStore, backend, sql_limit};
use async_trait::async_trait;
use rtchat_chat::{
    Appended, BackendError, ChatMessage, LogEpoch, MessageId, MessageStore, NewMessage, RoomId, Seq,
};
use std::collections::HashMap;

/// The stored messages of room `?1` whose `(name_tag, message_key)` is one of the JSON array
/// `?2` of `[name_tag, message_key]` pairs (one per batch message), each with the position of
/// its pair in the array: one probe of the key index per pair. `CROSS JOIN` makes the pairs
/// the outer loop: left to itself, SQLite may scan the room's messages instead.
const FIND_ORIGINALS: &str = "\
SELECT j.key, m.id, m.seq, m.message, m.rand_id, m.name_tag, m.created_at, m.ip_address
FROM json_each(?2) AS j
CROSS JOIN messages AS m
    ON m.room_id = ?1 AND m.name_tag = j.value ->> 0 AND m.message_key = j.value ->> 1";

/// Moves room `?1`'s `last_seq` on by `?2`, the number of new messages, and returns it: no
/// row when the room does not exist. The room is active now.
const TAKE_SEQS: &str = "\
UPDATE rooms SET last_seq = last_seq + ?2,
    active_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE room_id = ?1 RETURNING last_seq";

/// Inserts the JSON array `?3` of `[key, message, rand_id, name_tag, created_at, ip_address]`
/// into room `?1`, element i with seq `?2 + i`, in array order (so ids are drawn in seq
/// order), and returns each row's id and seq.
const INSERT_NEW: &str = "\
INSERT INTO messages
    (room_id, seq, message_key, message, rand_id, name_tag, created_at, ip_address)
SELECT ?1, ?2 + j.key, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3,
    j.value ->> 4, j.value ->> 5
FROM json_each(?3) AS j
ORDER BY j.key
RETURNING id, seq";

const HEAD: &str = "SELECT last_seq FROM rooms WHERE room_id = ?1";

const NEWEST: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = ?1 ORDER BY id DESC LIMIT ?2";

const BEFORE: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";

const AFTER: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3";

const AFTER_SEQ: &str = "\
SELECT id, seq, room_id, message, rand_id, name_tag, created_at, ip_address FROM messages
WHERE room_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3";

/// A `messages` row as the reads select it.
type Row = (i64, i64, String, String, String, String, String, String);

/// A row of [`FIND_ORIGINALS`]: `(position in the batch, id, seq, message, rand_id, name_tag,
/// created_at, ip_address)`.
type OriginalRow = (i64, i64, i64, String, String, String, String, String);

/// A message id read from the database (an `AUTOINCREMENT` key, so never negative unless
/// damaged).
fn message_id(id: i64) -> Result<MessageId, BackendError> {
    MessageId::try_from(id)
        .map_err(|_| BackendError::new(format!("sqlite: negative message id {id}")))
}

/// A seq read from the database (checked `>= 0` by the schema).
fn seq(seq: i64) -> Result<Seq, BackendError> {
    Seq::try_from(seq).map_err(|_| BackendError::new(format!("sqlite: negative seq {seq}")))
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

/// A stored message of `room` found by the key of the batch message at a position: `(position,
/// message)`.
fn original(
    room: &RoomId,
    (position, id, seq_in_room, message, rand_id, name_tag, created_at, ip_address): OriginalRow,
) -> Result<(usize, ChatMessage), BackendError> {
    let position = usize::try_from(position)
        .map_err(|_| BackendError::new(format!("sqlite append: batch position {position}")))?;
    let stored = ChatMessage {
        id: message_id(id)?,
        seq: seq(seq_in_room)?,
        room_id: room.as_str().to_owned(),
        message,
        rand_id,
        name_tag,
        created_at,
        ip_address,
    };
    Ok((position, stored))
}

/// What becomes of one message of a batch.
enum Fate {
    /// Its key was stored before: this is the original.
    Original(ChatMessage),
    /// Stored now, as the n-th new message of the batch.
    New(usize),
    /// Its key came earlier in the batch, in the n-th new message.
    RepeatOf(usize),
}

/// Decides each message's fate in batch order, given the stored originals by batch position;
/// returns the fates and the batch positions of the new messages.
fn fates(
    batch: &[NewMessage],
    mut originals: HashMap<usize, ChatMessage>,
) -> (Vec<Fate>, Vec<usize>) {
    let mut first_new_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut new_positions = Vec::new();
    let fates = batch
        .iter()
        .enumerate()
        .map(|(position, posted)| {
            if let Some(original) = originals.remove(&position) {
                return Fate::Original(original);
            }
            let key = (posted.author.name_tag.as_str(), posted.key.as_str());
            if let Some(&n) = first_new_with_key.get(&key) {
                return Fate::RepeatOf(n);
            }
            let n = new_positions.len();
            new_positions.push(position);
            first_new_with_key.insert(key, n);
            Fate::New(n)
        })
        .collect();
    (fates, new_positions)
}

/// The ids of the `count` rows [`INSERT_NEW`] returned, in seq order, after checking they
/// are seqs `first_seq ..` exactly once each with ids increasing with them: anything else
/// means the statement did not do what this code expects, and the batch must not commit.
fn ids_in_seq_order(
    mut inserted: Vec<(i64, i64)>,
    first_seq: i64,
    count: usize,
) -> Result<Vec<MessageId>, BackendError> {
    inserted.sort_unstable_by_key(|&(_, seq)| seq);
    let expected = inserted.len() == count
        && inserted
            .iter()
            .zip(first_seq..)
            .all(|(&(_, seq), want)| seq == want)
        && inserted.windows(2).all(|pair| pair[0].0 < pair[1].0);
    if !expected {
        return Err(BackendError::new(format!(
            "sqlite append: inserting {count} messages from seq {first_seq} returned {inserted:?}"
        )));
    }
    inserted.into_iter().map(|(id, _)| message_id(id)).collect()
}

impl SqliteStore {
    /// Runs a message query on the read pool whose last two binds are the bound (if any) and
    /// the limit.
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
        query
            .bind(sql_limit(limit, MAX_QUERY_LIMIT))
            .fetch_all(&self.readers)
            .await
            .map_err(backend("read messages"))?
            .into_iter()
            .map(message)
            .collect()
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    /// Stores `batch` in `room` in one `BEGIN IMMEDIATE` transaction of at most five
    /// statements: every new message gets the room's next seq and an id above every id of
    /// the store; a known (room, author tag, key) gives [`Appended::Duplicate`] with the
    /// original, also within the batch.
    ///
    /// Errors: [`BackendError`], with nothing stored, when the room does not exist, a message
    /// of the batch names another room than `room`, the write connection is not free within
    /// [`ACQUIRE_TIMEOUT`](crate::ACQUIRE_TIMEOUT) or SQLite fails (disk full, I/O error);
    /// or when the commit fails (then retrying the batch is safe).
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
                "sqlite append: a message for room {} in a batch for room {room}",
                stray.room_id
            )));
        }
        let keys: Vec<[&str; 2]> = batch
            .iter()
            .map(|m| [m.author.name_tag.as_str(), m.key.as_str()])
            .collect();
        let keys = serde_json::to_string(&keys).map_err(backend("append: encode keys"))?;

        // Dropped without a commit (an error below, or the caller giving up), the
        // transaction rolls back.
        let mut transaction = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend("append: begin"))?;
        let originals = sqlx::query_as::<_, OriginalRow>(FIND_ORIGINALS)
            .bind(room.as_str())
            .bind(keys)
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend("append: look up keys"))?
            .into_iter()
            .map(|row| original(room, row))
            .collect::<Result<HashMap<_, _>, _>>()?;
        let (fates, new_positions) = fates(&batch, originals);

        let mut first_seq = 0;
        let mut new_ids = Vec::new();
        if !new_positions.is_empty() {
            let count = i64::try_from(new_positions.len())
                .map_err(|_| BackendError::new("sqlite append: batch too large".to_owned()))?;
            let last_seq: Option<i64> = sqlx::query_scalar(TAKE_SEQS)
                .bind(room.as_str())
                .bind(count)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(backend("append: take seqs"))?;
            let Some(last_seq) = last_seq else {
                return Err(BackendError::new(format!(
                    "sqlite append: room {room} does not exist"
                )));
            };
            first_seq = last_seq - count + 1;
            let rows: Vec<[&str; 6]> = new_positions
                .iter()
                .map(|&position| {
                    let m = &batch[position];
                    [
                        m.key.as_str(),
                        m.message.as_str(),
                        m.author.rand_id.as_str(),
                        m.author.name_tag.as_str(),
                        m.created_at.as_str(),
                        m.ip_address.as_str(),
                    ]
                })
                .collect();
            let inserted: Vec<(i64, i64)> = sqlx::query_as(INSERT_NEW)
                .bind(room.as_str())
                .bind(first_seq)
                .bind(serde_json::to_string(&rows).map_err(backend("append: encode messages"))?)
                .fetch_all(&mut *transaction)
                .await
                .map_err(backend("append: insert messages"))?;
            new_ids = ids_in_seq_order(inserted, first_seq, new_positions.len())?;
        }
        transaction
            .commit()
            .await
            .map_err(backend("append: commit"))?;

        let first_seq = seq(first_seq)?;
        let mut stored_now: Vec<ChatMessage> = Vec::with_capacity(new_ids.len());
        batch
            .into_iter()
            .zip(fates)
            .map(|(posted, fate)| match fate {
                Fate::Original(original) => Ok(Appended::Duplicate(original)),
                Fate::New(n) => {
                    let id = new_ids.get(n).copied().ok_or_else(|| {
                        BackendError::new(format!("sqlite append: no id for new message {n}"))
                    })?;
                    let message = ChatMessage::stored(id, first_seq + n as Seq, posted);
                    stored_now.push(message.clone());
                    Ok(Appended::Stored(message))
                }
                // The first message with the key came earlier, so it is in `stored_now`.
                Fate::RepeatOf(n) => stored_now
                    .get(n)
                    .cloned()
                    .map(Appended::Duplicate)
                    .ok_or_else(|| {
                        BackendError::new(format!(
                            "sqlite append: repeat of unknown new message {n}"
                        ))
                    }),
            })
            .collect()
    }

    /// The room's `last_seq`: 0 for a room without messages or an unknown room.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn head(&self, room: &RoomId) -> Result<Seq, BackendError> {
        let last_seq: Option<i64> = sqlx::query_scalar(HEAD)
            .bind(room.as_str())
            .fetch_optional(&self.readers)
            .await
            .map_err(backend("read room head"))?;
        last_seq.map_or(Ok(0), seq)
    }

    /// The newest `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room`, newest first;
    /// empty for a room without messages or a limit of 0.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn newest(&self, room: &RoomId, limit: usize) -> Result<Vec<ChatMessage>, BackendError> {
        self.select(NEWEST, room, None, limit).await
    }

    /// The `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with an id below `before`,
    /// newest first. `before` need not be the id of a message of `room`.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn before(
        &self,
        room: &RoomId,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        match i64::try_from(before) {
            Ok(before) => self.select(BEFORE, room, Some(before), limit).await,
            // Above every id SQLite can give.
            Err(_) => self.select(NEWEST, room, None, limit).await,
        }
    }

    /// The first `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with an id above
    /// `after`, oldest first. `after` need not be the id of a message of `room`.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn after(
        &self,
        room: &RoomId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, BackendError> {
        match i64::try_from(after) {
            Ok(after) => self.select(AFTER, room, Some(after), limit).await,
            // Above every id SQLite can give.
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The first `limit` (at most [`MAX_QUERY_LIMIT`]) messages of `room` with a seq above
    /// `after`, oldest first: seqs `after + 1 ..`, a range scan of `(room_id, seq)`.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
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

    /// The epoch the first migration drew when this database's log began.
    ///
    /// Errors: [`BackendError`] when SQLite fails or the database is not migrated.
    async fn epoch(&self) -> Result<LogEpoch, BackendError> {
        let epoch: String = sqlx::query_scalar("SELECT epoch FROM log_epoch")
            .fetch_one(&self.readers)
            .await
            .map_err(backend("read the log epoch"))?;
        LogEpoch::parse(&epoch)
            .ok_or_else(|| BackendError::new(format!("sqlite: malformed log epoch {epoch:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The details of SQLite's plan for `sql`, run with `binds` text binds.
    async fn plan(store: &SqliteStore, sql: &str, binds: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for _ in 0..binds {
            query = query.bind("[]");
        }
        query
            .fetch_all(store.pool())
            .await
            .expect("explain")
            .into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect()
    }

    /// Every query reaches its rows through an index, whatever the room's size: a plan that
    /// scans a room's messages would make appends and reads slow down as rooms grow.
    #[tokio::test]
    async fn every_query_searches_an_index() {
        let store = SqliteStore::open_in_memory().await.expect("open");
        store.migrate().await.expect("migrate");
        let originals = plan(&store, FIND_ORIGINALS, 2).await;
        assert_eq!(
            originals,
            [
                "SCAN j VIRTUAL TABLE INDEX 1:",
                "SEARCH m USING INDEX messages_room_id_name_tag_message_key \
                 (room_id=? AND name_tag=? AND message_key=?)"
            ],
            "the batch's keys, each looked up in the key index"
        );
        for (sql, binds, index) in [
            (NEWEST, 2, "messages_room_id_id (room_id=?)"),
            (BEFORE, 3, "messages_room_id_id (room_id=? AND id<?)"),
            (AFTER, 3, "messages_room_id_id (room_id=? AND id>?)"),
            (AFTER_SEQ, 3, "messages_room_id_seq (room_id=? AND seq>?)"),
        ] {
            let steps = plan(&store, sql, binds).await;
            assert_eq!(
                steps,
                [format!("SEARCH messages USING INDEX {index}")],
                "{sql}"
            );
        }
        assert_eq!(
            plan(&store, HEAD, 1).await,
            ["SEARCH rooms USING INDEX sqlite_autoindex_rooms_1 (room_id=?)"]
        );
    }
}
