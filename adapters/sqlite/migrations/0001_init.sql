-- rtchat SQLite schema, version 1: rooms, their message logs, and the log epoch.
-- Applied once by SqliteStore::migrate (sqlx's migrator records it in _sqlx_migrations, with
-- a checksum: never edit this file once released, add 0002_*.sql instead).
-- STRICT tables: SQLite then refuses a value of the wrong type instead of storing it as is.

CREATE TABLE rooms (
    -- Creation order for listing: the rowid, which only grows as rooms are never deleted.
    creation_order INTEGER PRIMARY KEY,
    room_id        TEXT    NOT NULL UNIQUE CHECK (length(room_id) BETWEEN 1 AND 64),
    name           TEXT    NOT NULL,
    -- Rooms for two (ids starting with `private-`) are never listed.
    private        INTEGER NOT NULL CHECK (private IN (0, 1)),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The room's last seq. A counter on the room row, written in the append's transaction:
    -- a failed or rolled-back append moves it no more than it stores messages, so seqs have
    -- no holes.
    last_seq       INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) STRICT;

-- `list` reads public rooms in creation order without stepping over private ones.
CREATE INDEX rooms_public_in_order ON rooms (creation_order) WHERE private = 0;

CREATE TABLE messages (
    -- One counter for the whole store, so ids increase across rooms. AUTOINCREMENT: an id
    -- is never handed out twice, even if the newest message were deleted.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     TEXT    NOT NULL REFERENCES rooms (room_id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    -- The idempotency key: with the room and the author's tag, it names one message.
    message_key TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    rand_id     TEXT    NOT NULL,
    name_tag    TEXT    NOT NULL,
    -- RFC 3339 text exactly as the chat produced it (returned byte for byte).
    created_at  TEXT    NOT NULL,
    ip_address  TEXT    NOT NULL
) STRICT;

-- The log: one message per seq. Also the index of `after_seq`, a range scan at any depth.
CREATE UNIQUE INDEX messages_room_id_seq ON messages (room_id, seq);

-- The duplicate lookup of an append, and a guarantee that a retry is never stored twice.
CREATE UNIQUE INDEX messages_room_id_name_tag_message_key
    ON messages (room_id, name_tag, message_key);

-- Keyset pagination by id (newest, before, after) is a range scan of this index.
CREATE INDEX messages_room_id_id ON messages (room_id, id);

-- One random id made when this database's log began (this migration runs once per file).
-- Clients compare it across reconnects: another epoch means a wiped or replaced store, whose
-- ids and seqs are not the ones they hold.
CREATE TABLE log_epoch (
    -- At most one row.
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch     TEXT    NOT NULL CHECK (length(epoch) = 32 AND NOT epoch GLOB '*[^0-9a-f]*')
) STRICT;

INSERT INTO log_epoch (singleton, epoch) VALUES (1, lower(hex(randomblob(16))));
