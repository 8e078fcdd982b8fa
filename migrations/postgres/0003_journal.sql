-- The commit journal's checkpoint, PostgreSQL version of ../0003_journal.sql
-- (read the comments there). One row: one node uses a database (see
-- docs/cluster.md); nodes sharing one will need a row each.
CREATE TABLE journal_checkpoint (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	lsn BIGINT  NOT NULL CHECK (lsn >= 0)
);
INSERT INTO journal_checkpoint (id, lsn) VALUES (1, 0);
