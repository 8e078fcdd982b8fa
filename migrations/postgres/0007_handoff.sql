-- The handoff state of handed-off streams, PostgreSQL version of
-- ../0007_handoff.sql (read the comments there). Producer ids are
-- COLLATE "C" so that they order the same as on SQLite.
CREATE TABLE stream_handoffs (
	stream_id       BIGINT  PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
	node            TEXT    NOT NULL,
	tail            BIGINT  NOT NULL CHECK (tail >= 0),
	open_seg        BIGINT  NOT NULL CHECK (open_seg >= 0),
	open_seg_start  BIGINT  NOT NULL CHECK (open_seg_start BETWEEN 0 AND tail),
	stream_seq      TEXT    NOT NULL,
	closed          BOOLEAN NOT NULL,
	closed_by_id    TEXT,
	closed_by_epoch BIGINT,
	closed_by_seq   BIGINT,
	fork_parent     BIGINT,
	fork_pos        BIGINT,
	fork_seg        BIGINT,
	fork_seg_start  BIGINT,
	fork_shared     BOOLEAN,
	complete        BOOLEAN NOT NULL DEFAULT FALSE,
	created_at      BIGINT  NOT NULL,
	saved_at        BIGINT  NOT NULL
);

CREATE TABLE stream_handoff_producers (
	stream_id  BIGINT NOT NULL REFERENCES stream_handoffs (stream_id) ON DELETE CASCADE,
	producer   TEXT   COLLATE "C" NOT NULL,
	epoch      BIGINT NOT NULL,
	last_seq   BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (stream_id, producer)
);
