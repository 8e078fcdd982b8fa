-- The commit journal's positions, one row per node (docs/journal.md). A
-- single node on SQLite uses the row with node ''; nodes sharing a
-- PostgreSQL catalog each keep their own journal and so their own row.
--
-- checkpoint_lsn: every record of the node's journal up to it is applied
-- to the hot logs and the catalog and durable there; recovery replays
-- only the records after it, and the journal may delete the files
-- holding none after it (this was journal_checkpoint's single row).
--
-- catalog_lsn: every record up to it that changes the catalog is applied
-- to the catalog by a transaction at or before the one that wrote it. It
-- is written in the same transaction as those changes, which SQLite
-- commits without a sync of their own: a crash that loses them loses the
-- position with them, and recovery replays the catalog's records after
-- it. PostgreSQL commits are durable by themselves and leave it alone.
CREATE TABLE journal_nodes (
	node           TEXT    PRIMARY KEY,
	checkpoint_lsn INTEGER NOT NULL DEFAULT 0 CHECK (checkpoint_lsn >= 0),
	catalog_lsn    INTEGER NOT NULL DEFAULT 0 CHECK (catalog_lsn >= 0)
);
INSERT INTO journal_nodes (node, checkpoint_lsn, catalog_lsn) SELECT '', lsn, lsn FROM journal_checkpoint;
DROP TABLE journal_checkpoint;
