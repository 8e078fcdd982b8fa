-- The commit journal's positions, one row per node: PostgreSQL version of
-- ../0005_journal_nodes.sql (read the comments there). Each node sharing
-- this database adds its row when it first opens its journal.
CREATE TABLE journal_nodes (
	node           TEXT   PRIMARY KEY,
	checkpoint_lsn BIGINT NOT NULL DEFAULT 0 CHECK (checkpoint_lsn >= 0),
	catalog_lsn    BIGINT NOT NULL DEFAULT 0 CHECK (catalog_lsn >= 0)
);
INSERT INTO journal_nodes (node, checkpoint_lsn, catalog_lsn) SELECT '', lsn, lsn FROM journal_checkpoint;
DROP TABLE journal_checkpoint;
