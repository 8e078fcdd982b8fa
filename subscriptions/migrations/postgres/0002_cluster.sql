-- The PostgreSQL twin of ../0002_cluster.sql (see that file).
ALTER TABLE keys RENAME TO subscription_keys;
ALTER TABLE links RENAME TO subscription_links;

ALTER TABLE subscriptions ADD COLUMN due_at BIGINT;
CREATE INDEX subscriptions_due ON subscriptions (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE subscription_defs (
	one     INTEGER PRIMARY KEY CHECK (one = 1),
	version BIGINT  NOT NULL
);
INSERT INTO subscription_defs (one, version) VALUES (1, 0);
