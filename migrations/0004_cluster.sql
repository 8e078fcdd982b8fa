-- Cluster membership and stream ownership (docs/cluster.md). A single node
-- on SQLite never uses these tables; they exist in both backends so that
-- one schema version means the same tables everywhere. (Version 0003 is
-- taken by another change.)
--
-- Times are unix milliseconds, judged by the clock of the node that writes
-- or compares them: nodes' clocks must agree to well within a lease's
-- safety margin.

-- The nodes that have registered, with their last heartbeat. A node whose
-- row was removed (it stopped heartbeating) must register again and assume
-- it lost every lease.
CREATE TABLE nodes (
	id            TEXT    PRIMARY KEY,
	advertise_url TEXT    NOT NULL,
	started_at    INTEGER NOT NULL,
	heartbeat_at  INTEGER NOT NULL
);

-- One row per stream that was ever leased. node is '' while the lease is
-- free (released). epoch only grows: it increases by one each time the
-- lease passes to a holder (after a release or expiry), never on renewal,
-- so a write carrying an older epoch is known to come from a node that
-- lost the stream. Rows are removed with the stream's GC queue entry.
CREATE TABLE stream_leases (
	stream_id  INTEGER PRIMARY KEY,
	node       TEXT    NOT NULL,
	epoch      INTEGER NOT NULL CHECK (epoch >= 0),
	expires_at INTEGER NOT NULL
);
CREATE INDEX stream_leases_node ON stream_leases (node);
