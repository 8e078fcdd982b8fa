-- The stream directory, PostgreSQL version of ../0001_catalog.sql: the
-- same tables, columns and meaning (read the comments there); only the
-- types differ.
--
-- Times are unix milliseconds in BIGINT; NULL means "none".
--
-- path is COLLATE "C" so that it compares byte-wise like SQLite TEXT: List
-- pages and prefix ranges rely on that order, which a locale collation
-- would change.
CREATE TABLE streams (
	id              BIGINT  PRIMARY KEY,
	path            TEXT    COLLATE "C" NOT NULL UNIQUE,
	content_type    TEXT    NOT NULL,
	ttl_ms          BIGINT  CHECK (ttl_ms > 0),
	expires_at      BIGINT,
	last_access     BIGINT  NOT NULL,
	closed          BOOLEAN NOT NULL DEFAULT FALSE,
	parent_id       BIGINT  REFERENCES streams (id),
	fork_offset     TEXT    NOT NULL DEFAULT '',
	fork_sub_offset BIGINT  NOT NULL DEFAULT 0,
	refcount        BIGINT  NOT NULL DEFAULT 0 CHECK (refcount >= 0),
	deleted_at      BIGINT,
	created_at      BIGINT  NOT NULL,
	deadline        BIGINT  GENERATED ALWAYS AS (
		CASE
			WHEN ttl_ms IS NULL THEN expires_at
			WHEN expires_at IS NULL THEN last_access + ttl_ms
			ELSE least(expires_at, last_access + ttl_ms)
		END
	) STORED
);

CREATE INDEX streams_deadline ON streams (deadline)
	WHERE deadline IS NOT NULL AND deleted_at IS NULL;

CREATE INDEX streams_parent ON streams (parent_id);

-- One row: the first id not yet handed out (or reserved) by AllocateID on
-- any node. Nodes reserve blocks with one atomic UPDATE ... RETURNING.
CREATE TABLE id_alloc (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	next BIGINT  NOT NULL CHECK (next > 0)
);
INSERT INTO id_alloc (id, next) VALUES (1, 1);

CREATE TABLE gc_queue (
	stream_id BIGINT PRIMARY KEY,
	queued_at BIGINT NOT NULL
);
CREATE INDEX gc_queue_queued ON gc_queue (queued_at, stream_id);
