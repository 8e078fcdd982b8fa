-- Signing and token keys, generated at first start. kind is 'ed25519'
-- (secret: the 64-byte private key; kid: its JWK thumbprint) or 'hmac'
-- (secret: the 32-byte callback-token key).
CREATE TABLE keys (
	kid        TEXT    PRIMARY KEY,
	kind       TEXT    NOT NULL,
	secret     BLOB    NOT NULL,
	created_at INTEGER NOT NULL
);

-- One row per subscription: its normalized configuration and the hash
-- that re-confirmation compares, and its delivery state (generation,
-- wake, lease, retry schedule), both as JSON documents owned by package
-- subscriptions.
CREATE TABLE subscriptions (
	id          TEXT    PRIMARY KEY,
	config      TEXT    NOT NULL,
	config_hash TEXT    NOT NULL,
	base_url    TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	state       TEXT    NOT NULL
);

-- The stream cursors of a subscription.
CREATE TABLE links (
	sub_id   TEXT    NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
	path     TEXT    NOT NULL,
	explicit INTEGER NOT NULL,
	glob     INTEGER NOT NULL,
	acked    TEXT    NOT NULL,
	PRIMARY KEY (sub_id, path)
) WITHOUT ROWID;
