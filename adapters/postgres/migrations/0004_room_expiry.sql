-- rtchat schema, version 4: rooms that stay idle are removed (`--room-idle-ttl`).
-- Never edit this file once released: add 0005_*.sql.

-- A room's last activity: its creation, or the last append that stored a message in it. The
-- rooms there now count as active now, so an upgrade removes nothing at once.
ALTER TABLE rooms ADD COLUMN active_at timestamptz NOT NULL DEFAULT now();

-- The idle rooms, longest idle first.
CREATE INDEX rooms_active_at ON rooms (active_at);

-- The last seq of every removed room: a room created again with its id goes on from there,
-- so within the log epoch a room's seq never names two messages.
CREATE TABLE removed_rooms (
    room_id  text   PRIMARY KEY,
    last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- rtchat_append of version 2, which now also sets the room's `active_at` when it stores a
-- message (in the same update as `last_seq`, on the row the append has locked).
CREATE OR REPLACE FUNCTION rtchat_append(
    p_room_id      text,
    p_messages     text[],
    p_rand_ids     text[],
    p_name_tags    text[],
    p_created_at   text[],
    p_ip_addresses text[],
    p_keys         text[]
) RETURNS TABLE (
    ord        integer,
    duplicate  boolean,
    id         bigint,
    seq        bigint,
    message    text,
    rand_id    text,
    name_tag   text,
    created_at text,
    ip_address text
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    batch_size integer := coalesce(cardinality(p_messages), 0);
    room_last_seq bigint;
    room_seq_before bigint;
    original messages%ROWTYPE;
BEGIN
    IF coalesce(cardinality(p_rand_ids), 0) <> batch_size
        OR coalesce(cardinality(p_name_tags), 0) <> batch_size
        OR coalesce(cardinality(p_created_at), 0) <> batch_size
        OR coalesce(cardinality(p_ip_addresses), 0) <> batch_size
        OR coalesce(cardinality(p_keys), 0) <> batch_size
    THEN
        RAISE EXCEPTION 'rtchat_append: the batch arrays differ in length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT r.last_seq INTO room_last_seq FROM rooms AS r WHERE r.room_id = p_room_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rtchat_append: room % does not exist', p_room_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    room_seq_before := room_last_seq;

    -- Each statement below sees what the previous ones inserted, so a key repeated within
    -- the batch finds its first occurrence.
    FOR i IN 1 .. batch_size LOOP
        SELECT m.* INTO original FROM messages AS m
        WHERE m.room_id = p_room_id AND m.name_tag = p_name_tags[i] AND m.message_key = p_keys[i];
        ord := i;
        IF FOUND THEN
            duplicate := true;
            id := original.id;
            seq := original.seq;
            message := original.message;
            rand_id := original.rand_id;
            name_tag := original.name_tag;
            created_at := original.created_at;
            ip_address := original.ip_address;
        ELSE
            room_last_seq := room_last_seq + 1;
            INSERT INTO messages AS m
                (room_id, seq, message_key, message, rand_id, name_tag, created_at, ip_address)
            VALUES (p_room_id, room_last_seq, p_keys[i], p_messages[i], p_rand_ids[i],
                    p_name_tags[i], p_created_at[i], p_ip_addresses[i])
            RETURNING m.id INTO id;
            duplicate := false;
            seq := room_last_seq;
            message := NULL;
            rand_id := NULL;
            name_tag := NULL;
            created_at := NULL;
            ip_address := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;

    -- A batch of duplicates only leaves the row as it was (no new row version); a stored
    -- message makes the room active now.
    IF room_last_seq <> room_seq_before THEN
        UPDATE rooms AS r SET last_seq = room_last_seq, active_at = now()
        WHERE r.room_id = p_room_id;
    END IF;
END;
$$;
