-- rtchat schema, version 2: every room is a log. Each message gets the room's next seq
-- (1, 2, 3, ... with no holes) and an idempotency key, and `rtchat_append` stores a whole
-- batch of a room in one statement. Never edit this file once released: add 0003_*.sql.

-- The room's last seq. A counter on the room row, not a PostgreSQL sequence: it moves only
-- when an append commits, so a failed or rolled-back append leaves no hole. Appends lock
-- this row, which also orders them within the room (see rtchat_append).
ALTER TABLE rooms ADD COLUMN last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0);

-- Nullable until the backfill below has filled them.
ALTER TABLE messages ADD COLUMN seq bigint, ADD COLUMN message_key text;

-- Existing messages: the room's order so far is id order (the 0001 appends committed ids in
-- order within a room). Their keys, `~legacy-<id>`, start with `~`, which client keys cannot,
-- and end in digits only, which server-made keys (`~<node>-<nonce>-p<n>`) never do, so they
-- never match a new message's key.
UPDATE messages AS m
SET seq = numbered.seq, message_key = '~legacy-' || m.id
FROM (
    SELECT id, row_number() OVER (PARTITION BY room_id ORDER BY id) AS seq FROM messages
) AS numbered
WHERE m.id = numbered.id;

UPDATE rooms AS r
SET last_seq = logs.last_seq
FROM (SELECT room_id, max(seq) AS last_seq FROM messages GROUP BY room_id) AS logs
WHERE r.room_id = logs.room_id;

ALTER TABLE messages
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN message_key SET NOT NULL,
    ADD CONSTRAINT messages_seq_positive CHECK (seq >= 1),
    -- Also the index of `after_seq` (a range scan at any depth) and of `head`'s readers.
    ADD CONSTRAINT messages_room_id_seq UNIQUE (room_id, seq);

-- A key names one message of one author in one room: the duplicate lookup of rtchat_append,
-- and a guarantee that a retry can never be stored twice.
CREATE UNIQUE INDEX messages_room_id_name_tag_message_key
    ON messages (room_id, name_tag, message_key);

-- Appends the batch given as parallel arrays (element i of every array is message i) to the
-- room, in order, in the caller's transaction, and returns one row per message in batch
-- order: `ord` (1-based position in the batch), `duplicate`, and the message's id and seq.
-- A message whose (room, name_tag, key) is already stored, or appeared earlier in the batch,
-- is not stored again: its row has `duplicate` and the original's fields. For a stored
-- message the text fields are NULL: the caller sent them and needs them not back.
--
-- Ordering: the room row is locked before any id is drawn and stays locked until commit, so
-- within a room appends are serialised, seqs are contiguous, ids increase with seq, and a
-- reader that sees seq N (or id N) also sees every earlier one. An unknown room raises
-- foreign_key_violation and nothing is stored.
CREATE FUNCTION rtchat_append(
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

    -- A batch of duplicates only leaves the row as it was (no new row version).
    IF room_last_seq <> room_seq_before THEN
        UPDATE rooms AS r SET last_seq = room_last_seq WHERE r.room_id = p_room_id;
    END IF;
END;
$$;
