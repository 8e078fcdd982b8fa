-- The commit journal's checkpoint: every journal record up to lsn has been
-- applied to the hot logs and the catalog and made durable there, so
-- recovery replays only the records after it, and the journal may delete
-- the files holding none after it.
CREATE TABLE journal_checkpoint (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	lsn INTEGER NOT NULL CHECK (lsn >= 0)
);
INSERT INTO journal_checkpoint (id, lsn) VALUES (1, 0);
