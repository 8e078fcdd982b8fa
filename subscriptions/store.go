package subscriptions

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/migrations"
)

// The schema, one set of files per backend describing the same versions
// under the same names (migrations/*.sql for SQLite, migrations/postgres
// for PostgreSQL, where the versions are recorded in a table of their own
// beside the catalog's).
var (
	//go:embed migrations/*.sql
	sqliteFiles embed.FS
	//go:embed migrations/postgres/*.sql
	postgresFiles embed.FS
)

// postgresVersions is the table recording the applied PostgreSQL files.
const postgresVersions = "subscription_migrations"

// store is where subscriptions live: SQLite in <data dir>/subscriptions.db
// for a single node, or PostgreSQL shared by the nodes of a cluster. Only
// this file runs SQL on these tables. Every method commits before it
// returns, so a change the manager acts on or answers is durable.
//
// The methods' meaning is the same on both backends (contract_test.go);
// what differs is whether other processes share the data (shared):
//
//   - lock excludes the holders of the same id in every process sharing
//     the store until unlock, and releases by itself if its process dies;
//     without sharing, the manager's own mutex is all the exclusion there
//     is, and lock only returns;
//   - version changes whenever a subscription is created or removed, or an
//     update says its explicit streams changed, so a process caching the
//     definitions knows when to reload them.
type store interface {
	// shared reports whether other processes use the same data.
	shared() bool
	// keys returns the signing and token keys, oldest first.
	keys(ctx context.Context) ([]keyRow, error)
	// ensureKey stores k unless a key of its kind exists; either way the
	// caller reads the keys again, since another process may have won.
	ensureKey(ctx context.Context, k keyRow) error
	// load returns every subscription with its links, in id order.
	load(ctx context.Context) ([]*subRow, error)
	// loadOne returns one subscription with its links, or nil if there is
	// none.
	loadOne(ctx context.Context, id string) (*subRow, error)
	// create inserts r with its links; it fails with errExists if the id
	// is taken.
	create(ctx context.Context, r *subRow) error
	// update writes id's state, upserts links and deletes the links named
	// in removed, atomically; defs bumps the version (explicit streams
	// were linked or unlinked). It fails if id is not stored.
	update(ctx context.Context, id string, st state, links []link, removed []string, defs bool) error
	// remove deletes id and its links; an absent id is no error.
	remove(ctx context.Context, id string) error
	// version returns the definitions' version.
	version(ctx context.Context) (int64, error)
	// due returns the ids whose due_at (state.dueAt) is at or before t.
	due(ctx context.Context, t time.Time) ([]string, error)
	// lock takes id's lock (see above); unlock must be called once.
	lock(ctx context.Context, id string) (unlock func(), err error)
	close() error
}

// errExists is returned by store.create for an id that is taken.
var errExists = errors.New("subscription id exists")

// keyRow is a row of subscription_keys.
type keyRow struct {
	kid    string
	kind   string
	secret []byte
}

// subRow is a subscription as stored.
type subRow struct {
	id        string
	cfg       Config
	hash      string
	baseURL   string
	createdAt time.Time
	state     state
	links     []link
}

// dueAt is when st needs attention (Unix ms), 0 if never: the next
// attempt of an undelivered wake, or the end of a running attempt's
// claim, or the end of a delivered wake's lease.
func (st *state) dueAt() int64 {
	switch {
	case st.WakeID == "":
		return 0
	case st.SendingUntil != 0:
		return st.SendingUntil
	case !st.Delivered:
		return max(st.NextTry, 1) // 0: written before issuing set it
	}
	return st.LeaseUntil
}

// sqlStore is both backends: the statements ($N placeholders) run on
// SQLite and PostgreSQL alike; postgres marks what differs.
type sqlStore struct {
	db       *sql.DB
	postgres bool
	// locks bounds the held locks, each on a connection of its own, to
	// half the pool: the holders' reads and writes need the other half.
	locks chan struct{}
}

// openSQLite opens (creating) the SQLite store at path.
func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	q := url.Values{}
	q.Set("mode", "rwc")
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	if memdb.Is(path) {
		// In memory (serve --storage memory) the database lives until the
		// server drops it; there is no WAL without a file.
		if err := memdb.Keep(ctx, path); err != nil {
			return nil, err
		}
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Add("_pragma", "synchronous(FULL)")
	name, err := memdb.URI(path, q)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	// One connection: writes are serialized anyway, and the state is small.
	db.SetMaxOpenConns(1)
	sub, err := fs.Sub(sqliteFiles, "migrations")
	if err == nil {
		err = migrations.ApplyFS(ctx, db, sub)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &sqlStore{db: db}, nil
}

// postgresConns bounds a node's connections to PostgreSQL for
// subscriptions; a lock holds one for its duration.
const postgresConns = 16

// openPostgres opens the store in the PostgreSQL database at dsn (the
// cluster's), creating its tables.
func openPostgres(ctx context.Context, dsn string) (*sqlStore, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message leaves out a password the DSN may hold.
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(4)
	sub, err := fs.Sub(postgresFiles, "migrations/postgres")
	if err == nil {
		err = migrations.ApplyPostgresFS(ctx, db, sub, postgresVersions)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &sqlStore{db: db, postgres: true, locks: make(chan struct{}, postgresConns/2)}, nil
}

func (s *sqlStore) shared() bool { return s.postgres }

func (s *sqlStore) close() error { return s.db.Close() }

func (s *sqlStore) keys(ctx context.Context) ([]keyRow, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT kid, kind, secret FROM subscription_keys ORDER BY created_at, kid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keyRow
	for rows.Next() {
		var k keyRow
		if err := rows.Scan(&k.kid, &k.kind, &k.secret); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *sqlStore) ensureKey(ctx context.Context, k keyRow) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.postgres {
			// Nodes starting together: one inserts, the others see it.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1, 0)", lockClass); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO subscription_keys (kid, kind, secret, created_at)
			SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM subscription_keys WHERE kind = $5)`,
			k.kid, k.kind, k.secret, time.Now().UnixMilli(), k.kind)
		return err
	})
}

const selectSubs = "SELECT id, config, config_hash, base_url, created_at, state FROM subscriptions"
const selectLinks = "SELECT sub_id, path, explicit, glob, acked FROM subscription_links"

func (s *sqlStore) load(ctx context.Context) ([]*subRow, error) {
	return s.query(ctx, selectSubs+" ORDER BY id", selectLinks+" ORDER BY sub_id, path")
}

func (s *sqlStore) loadOne(ctx context.Context, id string) (*subRow, error) {
	rs, err := s.query(ctx, selectSubs+" WHERE id = $1", selectLinks+" WHERE sub_id = $1 ORDER BY path", id)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	return rs[0], nil
}

// query reads subscriptions and their links with the two statements, in
// one transaction so that they agree.
func (s *sqlStore) query(ctx context.Context, subsSQL, linksSQL string, args ...any) ([]*subRow, error) {
	var out []*subRow
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, subsSQL, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		byID := map[string]*subRow{}
		for rows.Next() {
			var r subRow
			var cfg, st string
			var created int64
			if err := rows.Scan(&r.id, &cfg, &r.hash, &r.baseURL, &created, &st); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(cfg), &r.cfg); err != nil {
				return fmt.Errorf("subscription %q: config: %w", r.id, err)
			}
			if err := json.Unmarshal([]byte(st), &r.state); err != nil {
				return fmt.Errorf("subscription %q: state: %w", r.id, err)
			}
			r.createdAt = time.UnixMilli(created).UTC()
			byID[r.id] = &r
			out = append(out, &r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		lrows, err := tx.QueryContext(ctx, linksSQL, args...)
		if err != nil {
			return err
		}
		defer lrows.Close()
		for lrows.Next() {
			var id string
			var l link
			if err := lrows.Scan(&id, &l.path, &l.explicit, &l.glob, &l.acked); err != nil {
				return err
			}
			if r := byID[id]; r != nil {
				r.links = append(r.links, l)
			}
		}
		return lrows.Err()
	})
	return out, err
}

func (s *sqlStore) create(ctx context.Context, r *subRow) error {
	cfg, err := json.Marshal(r.cfg)
	if err != nil {
		return err
	}
	st, err := json.Marshal(r.state)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (id, config, config_hash, base_url, created_at, state, due_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			r.id, string(cfg), r.hash, r.baseURL, r.createdAt.UnixMilli(), string(st), nullable(r.state.dueAt()))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("subscription %q: %w", r.id, errExists)
		}
		if err := putLinks(ctx, tx, r.id, r.links, nil); err != nil {
			return err
		}
		return bumpVersion(ctx, tx)
	})
}

func (s *sqlStore) update(ctx context.Context, id string, st state, links []link, removed []string, defs bool) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE subscriptions SET state = $1, due_at = $2 WHERE id = $3",
			string(b), nullable(st.dueAt()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscription %q is not stored", id)
		}
		if err := putLinks(ctx, tx, id, links, removed); err != nil {
			return err
		}
		if defs {
			return bumpVersion(ctx, tx)
		}
		return nil
	})
}

// nullable is t as due_at: NULL for never.
func nullable(t int64) sql.NullInt64 { return sql.NullInt64{Int64: t, Valid: t != 0} }

func putLinks(ctx context.Context, tx *sql.Tx, id string, links []link, removed []string) error {
	for _, l := range links {
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscription_links (sub_id, path, explicit, glob, acked) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (sub_id, path) DO UPDATE SET explicit = excluded.explicit, glob = excluded.glob, acked = excluded.acked`,
			id, l.path, l.explicit, l.glob, l.acked); err != nil {
			return err
		}
	}
	for _, p := range removed {
		if _, err := tx.ExecContext(ctx, "DELETE FROM subscription_links WHERE sub_id = $1 AND path = $2", id, p); err != nil {
			return err
		}
	}
	return nil
}

func bumpVersion(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "UPDATE subscription_defs SET version = version + 1 WHERE one = 1")
	return err
}

func (s *sqlStore) remove(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM subscriptions WHERE id = $1", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return bumpVersion(ctx, tx)
	})
}

func (s *sqlStore) version(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, "SELECT version FROM subscription_defs WHERE one = 1").Scan(&v)
	return v, err
}

func (s *sqlStore) due(ctx context.Context, t time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM subscriptions WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at", t.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// lockClass is the first key of the subscriptions' advisory locks
// ("dsub"); the second is a hash of the id. Two ids of one hash share a
// lock, which costs waiting, never correctness.
const lockClass int32 = 0x64737562

func (s *sqlStore) lock(ctx context.Context, id string) (func(), error) {
	if !s.postgres {
		return func() {}, nil
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	key := int32(h.Sum32())
	select {
	case s.locks <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		<-s.locks
		return nil, err
	}
	// A session lock, not a transaction's: the holder commits its changes
	// as it goes, and the lock goes with the session if the node dies.
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, key); err != nil {
		conn.Close()
		<-s.locks
		return nil, fmt.Errorf("lock subscription %q: %w", id, err)
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1, $2)", lockClass, key); err != nil {
			// The session may still hold the lock: end it rather than
			// return it to the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		<-s.locks
	}, nil
}

func (s *sqlStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		err = fn(tx)
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		// Two nodes inserting the same link or bumping the version
		// together: PostgreSQL may fail one with a serialization error
		// or deadlock, which a second try resolves.
		if err == nil || !s.postgres || attempt == 2 || !retryable(err) {
			return err
		}
	}
}

// retryable reports a PostgreSQL error that a new try of the same
// transaction can succeed after.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}
