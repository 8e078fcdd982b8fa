-- Cluster membership and stream ownership, PostgreSQL version of
-- ../0004_cluster.sql (read the comments there). Node ids are COLLATE "C"
-- so that listings order the same as on SQLite.
CREATE TABLE nodes (
	id            TEXT   COLLATE "C" PRIMARY KEY,
	advertise_url TEXT   NOT NULL,
	started_at    BIGINT NOT NULL,
	heartbeat_at  BIGINT NOT NULL
);

CREATE TABLE stream_leases (
	stream_id  BIGINT PRIMARY KEY,
	node       TEXT   COLLATE "C" NOT NULL,
	epoch      BIGINT NOT NULL CHECK (epoch >= 0),
	expires_at BIGINT NOT NULL
);
CREATE INDEX stream_leases_node ON stream_leases (node);
