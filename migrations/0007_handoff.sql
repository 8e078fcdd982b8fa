-- The handoff state of streams whose owner handed them off (drain, rolling
-- restart; docs/cluster.md "Drain and handoff"). A node saves it after every
-- byte of the stream is in the cold tier; the next owner builds a new hot
-- log from it, so that the stream continues at the same offset with the
-- same producer states, and clears it once that hot log is durable. A row
-- exists only between those two moments. (Versions 0005 and 0006 are taken
-- by other changes.)
--
-- What the catalog's streams row already holds (content type, TTL and
-- expiry, closure for listings) and the segment index (the sealed ranges
-- and their objects) is not repeated here.
--
-- Times are unix milliseconds.

-- One row per handed-off stream: where it continues. open_seg is the
-- number of the segment the next owner writes into, which starts at
-- open_seg_start: the tail, except in a fork that shares its parent's
-- segment and has no data of its own yet. The segments below it are all
-- uploaded. closed_by_* name the producer
-- request that closed the stream (all NULL if none), so that its retry
-- stays a duplicate. fork_* are the fork base of a fork (all NULL for a
-- root stream). complete is set once the node named by node has removed
-- its hot log: only then may another node continue the stream, so no
-- node ever keeps a hot log that could outlive a newer history. Rows go
-- with their stream.
CREATE TABLE stream_handoffs (
	stream_id       INTEGER PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
	node            TEXT    NOT NULL,
	tail            INTEGER NOT NULL CHECK (tail >= 0),
	open_seg        INTEGER NOT NULL CHECK (open_seg >= 0),
	open_seg_start  INTEGER NOT NULL CHECK (open_seg_start BETWEEN 0 AND tail),
	stream_seq      TEXT    NOT NULL,
	closed          INTEGER NOT NULL CHECK (closed IN (0, 1)),
	closed_by_id    TEXT,
	closed_by_epoch INTEGER,
	closed_by_seq   INTEGER,
	fork_parent     INTEGER,
	fork_pos        INTEGER,
	fork_seg        INTEGER,
	fork_seg_start  INTEGER,
	fork_shared     INTEGER CHECK (fork_shared IN (0, 1)),
	complete        INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
	created_at      INTEGER NOT NULL,
	saved_at        INTEGER NOT NULL
);

-- The idempotent producers of a handed-off stream, with the last accepted
-- request of each: a retry of it after the handoff is a duplicate.
CREATE TABLE stream_handoff_producers (
	stream_id  INTEGER NOT NULL REFERENCES stream_handoffs (stream_id) ON DELETE CASCADE,
	producer   TEXT    NOT NULL,
	epoch      INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (stream_id, producer)
);
