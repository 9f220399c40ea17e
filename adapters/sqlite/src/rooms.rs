//! [`RoomStore`] over the `rooms` table.

use crate::{MAX_LISTED_ROOMS, SqliteStore, backend, sql_limit};
use async_trait::async_trait;
use rtchat_core::{BackendError, CreateRoomError, Room, RoomId, RoomStore};

/// A `rooms` row as selected: `(room_id, name)`.
type Row = (String, String);

/// The room of a row; the id was valid when stored, so a bad one means a damaged table.
fn room((room_id, name): Row) -> Result<Room, BackendError> {
    let room_id = RoomId::parse(&room_id)
        .ok_or_else(|| BackendError(format!("sqlite: malformed room id {room_id:?}")))?;
    Ok(Room { room_id, name })
}

#[async_trait]
impl RoomStore for SqliteStore {
    /// Creates `room` (private when [`Room::is_private`], so never listed) and returns it.
    ///
    /// Errors: [`CreateRoomError::AlreadyExists`] when a room has this id (whatever its name);
    /// [`CreateRoomError::Backend`] when SQLite fails.
    async fn create(&self, room: Room) -> Result<Room, CreateRoomError> {
        let inserted = sqlx::query(
            "INSERT INTO rooms (room_id, name, private) VALUES (?1, ?2, ?3) \
             ON CONFLICT (room_id) DO NOTHING",
        )
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
}
