-- rtchat schema, version 1: rooms and messages.
-- Applied once by PostgresStore::migrate (sqlx's migrator records it in _sqlx_migrations,
-- with a checksum: never edit this file once released, add 0002_*.sql instead).

CREATE TABLE rooms (
    room_id    text        PRIMARY KEY CHECK (char_length(room_id) BETWEEN 1 AND 64),
    name       text        NOT NULL,
    -- Rooms for two (ids starting with `private-`) are never listed.
    private    boolean     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Creation order for listing (created_at can tie).
    seq        bigserial   NOT NULL UNIQUE
);

-- `list` reads public rooms in creation order.
CREATE INDEX rooms_public_by_seq ON rooms (seq) WHERE NOT private;

CREATE TABLE messages (
    -- One sequence for the whole store: ids increase across rooms.
    id         bigserial PRIMARY KEY,
    room_id    text      NOT NULL REFERENCES rooms (room_id),
    message    text      NOT NULL,
    rand_id    text      NOT NULL,
    name_tag   text      NOT NULL,
    -- RFC 3339 text exactly as the chat produced it (returned byte for byte).
    created_at text      NOT NULL,
    ip_address text      NOT NULL
);

-- Keyset pagination (newest, before, after) is a range scan of this index at any depth.
CREATE INDEX messages_room_id_desc ON messages (room_id, id DESC);
