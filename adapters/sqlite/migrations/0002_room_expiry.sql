-- rtchat SQLite schema, version 2: rooms that stay idle are removed (`--room-idle-ttl`).
-- Never edit this file once released: add 0003_*.sql.
--
-- Rooms can now be deleted. `creation_order` (the rowid) stays creation order: SQLite gives a
-- new row the largest rowid plus one, so a new room still sorts after every room left.

-- A room's last activity: its creation, or the last append that stored a message in it, in
-- milliseconds since the Unix epoch by SQLite's clock. The rooms there now count as active
-- now, so an upgrade removes nothing at once.
ALTER TABLE rooms ADD COLUMN active_at INTEGER NOT NULL DEFAULT 0;
UPDATE rooms SET active_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);

-- The idle rooms, longest idle first.
CREATE INDEX rooms_active_at ON rooms (active_at);

-- The last seq of every removed room: a room created again with its id goes on from there,
-- so within the log epoch a room's seq never names two messages.
CREATE TABLE removed_rooms (
    room_id  TEXT    PRIMARY KEY,
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
) STRICT, WITHOUT ROWID;
