//! [`RoomStore`] over the `rooms` table.

use crate::{MAX_LISTED_ROOMS, SqliteStore, backend, sql_limit};
use async_trait::async_trait;
use rtchat_chat::{BackendError, CreateRoomError, Room, RoomId, RoomStore};
use std::time::Duration;

/// Creates room `?1` named `?2` (private when `?3`), active now, going on from the last seq
/// of a removed room with its id.
const CREATE: &str = "\
INSERT INTO rooms (room_id, name, private, active_at, last_seq)
VALUES (?1, ?2, ?3, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    coalesce((SELECT last_seq FROM removed_rooms WHERE room_id = ?1), 0))
ON CONFLICT (room_id) DO NOTHING";

/// The rooms idle for more than `?1` milliseconds, longest idle first, at most `?2`.
const IDLE: &str = "\
SELECT room_id FROM rooms
WHERE active_at < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - ?1
ORDER BY active_at LIMIT ?2";

/// Those of the JSON array `?1` of room ids still idle for more than `?2` milliseconds.
const STILL_IDLE: &str = "\
SELECT room_id FROM rooms
WHERE room_id IN (SELECT value FROM json_each(?1))
    AND active_at < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - ?2";

/// Keeps the last seq of the rooms of the JSON array `?1`.
const KEEP_LAST_SEQS: &str = "\
INSERT INTO removed_rooms (room_id, last_seq)
SELECT room_id, last_seq FROM rooms WHERE room_id IN (SELECT value FROM json_each(?1))
ON CONFLICT (room_id) DO UPDATE SET last_seq = excluded.last_seq";

const REMOVE_MESSAGES: &str =
    "DELETE FROM messages WHERE room_id IN (SELECT value FROM json_each(?1))";

const REMOVE_ROOMS: &str = "DELETE FROM rooms WHERE room_id IN (SELECT value FROM json_each(?1))";

/// `duration` in whole milliseconds, for SQL.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A `rooms` row as selected: `(room_id, name)`.
type Row = (String, String);

/// The room of a row; the id was valid when stored, so a bad one means a damaged table.
fn room((room_id, name): Row) -> Result<Room, BackendError> {
    Ok(Room {
        room_id: stored_room_id(&room_id)?,
        name,
    })
}

/// A room id read from the table; it was valid when stored, so a bad one means damage.
fn stored_room_id(id: &str) -> Result<RoomId, BackendError> {
    RoomId::parse(id).ok_or_else(|| BackendError::new(format!("sqlite: malformed room id {id:?}")))
}

#[async_trait]
impl RoomStore for SqliteStore {
    /// Creates `room` (private when [`Room::is_private`], so never listed) and returns it.
    ///
    /// Errors: [`CreateRoomError::AlreadyExists`] when a room has this id (whatever its name);
    /// [`CreateRoomError::Backend`] when SQLite fails.
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError> {
        let inserted = sqlx::query(CREATE)
            .bind(room.room_id.as_str())
            .bind(&room.name)
            .bind(room.is_private())
            .execute(&self.writer)
            .await
            .map_err(backend("create room"))?;
        if inserted.rows_affected() == 0 {
            return Err(CreateRoomError::AlreadyExists);
        }
        Ok(room)
    }

    /// The room with this id, if any (private rooms too).
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn get(&self, id: &RoomId) -> Result<Option<Room>, BackendError> {
        sqlx::query_as::<_, Row>("SELECT room_id, name FROM rooms WHERE room_id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.readers)
            .await
            .map_err(backend("get room"))?
            .map(room)
            .transpose()
    }

    /// Every public room in creation order (the first [`MAX_LISTED_ROOMS`]).
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn list(&self) -> Result<Vec<Room>, BackendError> {
        sqlx::query_as::<_, Row>(
            "SELECT room_id, name FROM rooms WHERE private = 0 ORDER BY creation_order LIMIT ?1",
        )
        .bind(sql_limit(MAX_LISTED_ROOMS, MAX_LISTED_ROOMS))
        .fetch_all(&self.readers)
        .await
        .map_err(backend("list rooms"))?
        .into_iter()
        .map(room)
        .collect()
    }

    /// How many rooms there are, public and private.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn count(&self) -> Result<u64, BackendError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms")
            .fetch_one(&self.readers)
            .await
            .map_err(backend("count rooms"))?;
        Ok(count.unsigned_abs())
    }

    /// The rooms idle for more than `idle_for` by SQLite's clock, longest idle first.
    ///
    /// Errors: [`BackendError`] when SQLite fails.
    async fn idle(&self, idle_for: Duration, limit: usize) -> Result<Vec<RoomId>, BackendError> {
        sqlx::query_scalar::<_, String>(IDLE)
            .bind(millis(idle_for))
            .bind(sql_limit(limit, MAX_LISTED_ROOMS))
            .fetch_all(&self.readers)
            .await
            .map_err(backend("find idle rooms"))?
            .into_iter()
            .map(|id| stored_room_id(&id))
            .collect()
    }

    /// Removes those of `rooms` still idle, their messages, and keeps their last seqs, in one
    /// write transaction.
    ///
    /// Errors: [`BackendError`], with nothing removed, when SQLite fails.
    async fn remove_idle(
        &self,
        rooms: &[RoomId],
        idle_for: Duration,
    ) -> Result<Vec<RoomId>, BackendError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let named: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
        let named = serde_json::to_string(&named).map_err(backend("remove rooms: encode"))?;
        let mut transaction = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend("remove rooms: begin"))?;
        let idle: Vec<String> = sqlx::query_scalar(STILL_IDLE)
            .bind(named)
            .bind(millis(idle_for))
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend("remove rooms: find idle"))?;
        if idle.is_empty() {
            return Ok(Vec::new());
        }
        let idle_json = serde_json::to_string(&idle).map_err(backend("remove rooms: encode"))?;
        for (statement, what) in [
            (KEEP_LAST_SEQS, "remove rooms: keep last seqs"),
            (REMOVE_MESSAGES, "remove rooms: messages"),
            (REMOVE_ROOMS, "remove rooms"),
        ] {
            sqlx::query(statement)
                .bind(&idle_json)
                .execute(&mut *transaction)
                .await
                .map_err(backend(what))?;
        }
        transaction
            .commit()
            .await
            .map_err(backend("remove rooms: commit"))?;
        idle.into_iter().map(|id| stored_room_id(&id)).collect()
    }
}
