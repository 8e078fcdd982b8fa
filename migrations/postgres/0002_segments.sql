-- Admin index of the cold segments of all streams, PostgreSQL version of
-- ../0002_segments.sql (read the comments there).
--
-- object_key is COLLATE "C": SegmentsByKey pages in the byte-wise order in
-- which object stores list keys.
CREATE TABLE segments (
	stream_id  BIGINT NOT NULL,
	seg        BIGINT NOT NULL,
	first_pos  BIGINT NOT NULL,
	end_pos    BIGINT NOT NULL,
	bytes      BIGINT NOT NULL,
	messages   BIGINT NOT NULL,
	object_key TEXT   COLLATE "C" NOT NULL,
	checksum   BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	state      TEXT   NOT NULL,
	PRIMARY KEY (stream_id, seg)
);
CREATE INDEX segments_state ON segments (state);
CREATE INDEX segments_object_key ON segments (object_key);
