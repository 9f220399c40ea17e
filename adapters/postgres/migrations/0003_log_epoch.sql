-- rtchat schema, version 3: the log epoch.
-- One random id made when this database's log began (this migration runs once per schema).
-- Clients compare it across reconnects: another epoch means a wiped or replaced store, whose
-- ids and seqs are not the ones they hold.

CREATE TABLE log_epoch (
    -- At most one row.
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     text    NOT NULL CHECK (epoch ~ '^[A-Za-z0-9_-]{1,64}$')
);

INSERT INTO log_epoch (epoch) VALUES (replace(gen_random_uuid()::text, '-', ''));
