-- The PostgreSQL twin of ../0001_subscriptions.sql (see that file).
CREATE TABLE keys (
	kid        TEXT   PRIMARY KEY,
	kind       TEXT   NOT NULL,
	secret     BYTEA  NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE subscriptions (
	id          TEXT   PRIMARY KEY,
	config      TEXT   NOT NULL,
	config_hash TEXT   NOT NULL,
	base_url    TEXT   NOT NULL,
	created_at  BIGINT NOT NULL,
	state       TEXT   NOT NULL
);

CREATE TABLE links (
	sub_id   TEXT    NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
	path     TEXT    NOT NULL,
	explicit BOOLEAN NOT NULL,
	glob     BOOLEAN NOT NULL,
	acked    TEXT    NOT NULL,
	PRIMARY KEY (sub_id, path)
);
