-- Admin index of the cold segments of all streams, mirrored from the
-- streams' own hot logs (which stay authoritative).
--
-- There is deliberately no foreign key to streams: a stream's segment rows
-- outlive its catalog row until the GC worker has removed its objects.
CREATE TABLE segments (
	stream_id  INTEGER NOT NULL,
	seg        INTEGER NOT NULL,
	first_pos  INTEGER NOT NULL,
	end_pos    INTEGER NOT NULL,
	bytes      INTEGER NOT NULL,
	messages   INTEGER NOT NULL,
	object_key TEXT    NOT NULL,
	checksum   INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	state      TEXT    NOT NULL,
	PRIMARY KEY (stream_id, seg)
);
CREATE INDEX segments_state ON segments (state);
CREATE INDEX segments_object_key ON segments (object_key);
