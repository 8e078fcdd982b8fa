-- The stream directory.
--
-- Times are unix milliseconds; NULL means "none" (no TTL, no absolute
-- expiry, not deleted), so the zero time.Time round-trips exactly.
--
-- id is allocated from id_alloc, never by SQLite: an id must not be reused
-- even after its row is gone, because the stream's files and objects are
-- named after it and may still exist until the GC worker removes them.
--
-- refcount counts the rows (live or soft-deleted) whose parent_id is this
-- row; a row is hard-deleted only when it reaches 0, so the foreign key can
-- never dangle. Enforcing it anyway turns a refcount bug into an error
-- instead of a fork that silently lost its inherited data.
--
-- deadline is derived, never written: as a generated column it cannot drift
-- from last_access, ttl_ms and expires_at whoever updates them.
CREATE TABLE streams (
	id              INTEGER PRIMARY KEY,
	path            TEXT    NOT NULL UNIQUE,
	content_type    TEXT    NOT NULL,
	ttl_ms          INTEGER CHECK (ttl_ms > 0),
	expires_at      INTEGER,
	last_access     INTEGER NOT NULL,
	closed          INTEGER NOT NULL DEFAULT 0 CHECK (closed IN (0, 1)),
	parent_id       INTEGER REFERENCES streams (id),
	fork_offset     TEXT    NOT NULL DEFAULT '',
	fork_sub_offset INTEGER NOT NULL DEFAULT 0,
	refcount        INTEGER NOT NULL DEFAULT 0 CHECK (refcount >= 0),
	deleted_at      INTEGER,
	created_at      INTEGER NOT NULL,
	deadline        INTEGER GENERATED ALWAYS AS (
		CASE
			WHEN ttl_ms IS NULL THEN expires_at
			WHEN expires_at IS NULL THEN last_access + ttl_ms
			ELSE min(expires_at, last_access + ttl_ms)
		END
	) STORED
);

-- Soft-deleted rows never expire (they are already deleted) but may sit
-- with an old deadline for a long time; leaving them out of the index keeps
-- the expiry scan from stepping over them on every run.
CREATE INDEX streams_deadline ON streams (deadline)
	WHERE deadline IS NOT NULL AND deleted_at IS NULL;

-- Serves Children and the foreign key check on hard delete.
CREATE INDEX streams_parent ON streams (parent_id);

-- One row: the first id not yet handed out (or reserved) by AllocateID.
CREATE TABLE id_alloc (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	next INTEGER NOT NULL CHECK (next > 0)
);
INSERT INTO id_alloc (id, next) VALUES (1, 1);

-- Hard-deleted streams whose files and objects still have to be removed.
CREATE TABLE gc_queue (
	stream_id INTEGER PRIMARY KEY,
	queued_at INTEGER NOT NULL
);
CREATE INDEX gc_queue_queued ON gc_queue (queued_at, stream_id);
