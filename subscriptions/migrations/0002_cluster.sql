-- Shared by the nodes of a cluster (the PostgreSQL files), the tables get
-- names of their own beside the catalog's.
ALTER TABLE keys RENAME TO subscription_keys;
ALTER TABLE links RENAME TO subscription_links;

-- due_at (Unix ms) is when a subscription's wake needs attention: the
-- next delivery attempt of an undelivered wake, the end of a running
-- attempt's claim or the end of its lease; NULL when idle. A node that
-- finds it well past (its scheduler died with it) takes the wake over.
ALTER TABLE subscriptions ADD COLUMN due_at INTEGER;
CREATE INDEX subscriptions_due ON subscriptions (due_at) WHERE due_at IS NOT NULL;

-- version changes whenever the set of subscriptions or of their explicit
-- streams changes, so that nodes caching them know to reload.
CREATE TABLE subscription_defs (
	one     INTEGER PRIMARY KEY CHECK (one = 1),
	version INTEGER NOT NULL
);
INSERT INTO subscription_defs (one, version) VALUES (1, 0);
