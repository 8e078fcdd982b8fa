package subscriptions

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/migrations"
)

//go:embed migrations/*.sql
var schemaFiles embed.FS

// store is the subscriptions database, <data dir>/subscriptions.db. Only
// this file runs SQL on it. Every state change of a subscription is
// committed (WAL, synchronous=FULL) before the request that caused it is
// answered and before a delivery that depends on it is attempted, so a
// restart resumes from exactly what clients were told.
type store struct {
	db *sql.DB
}

func openStore(ctx context.Context, path string) (*store, error) {
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
	sub, err := fs.Sub(schemaFiles, "migrations")
	if err == nil {
		err = migrations.ApplyFS(ctx, db, sub)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// keyRow is a row of keys.
type keyRow struct {
	kid    string
	kind   string
	secret []byte
}

func (s *store) keys(ctx context.Context) ([]keyRow, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT kid, kind, secret FROM keys ORDER BY created_at, kid")
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

func (s *store) addKey(ctx context.Context, k keyRow) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO keys (kid, kind, secret, created_at) VALUES (?, ?, ?, ?)",
		k.kid, k.kind, k.secret, time.Now().UnixMilli())
	return err
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

func (s *store) load(ctx context.Context) ([]*subRow, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, config, config_hash, base_url, created_at, state FROM subscriptions ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[string]*subRow{}
	var out []*subRow
	for rows.Next() {
		var r subRow
		var cfg, st string
		var created int64
		if err := rows.Scan(&r.id, &cfg, &r.hash, &r.baseURL, &created, &st); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(cfg), &r.cfg); err != nil {
			return nil, fmt.Errorf("subscription %q: config: %w", r.id, err)
		}
		if err := json.Unmarshal([]byte(st), &r.state); err != nil {
			return nil, fmt.Errorf("subscription %q: state: %w", r.id, err)
		}
		r.createdAt = time.UnixMilli(created).UTC()
		byID[r.id] = &r
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	lrows, err := s.db.QueryContext(ctx, "SELECT sub_id, path, explicit, glob, acked FROM links ORDER BY sub_id, path")
	if err != nil {
		return nil, err
	}
	defer lrows.Close()
	for lrows.Next() {
		var id string
		var l link
		if err := lrows.Scan(&id, &l.path, &l.explicit, &l.glob, &l.acked); err != nil {
			return nil, err
		}
		if r := byID[id]; r != nil {
			r.links = append(r.links, l)
		}
	}
	return out, lrows.Err()
}

// create inserts a new subscription with its links.
func (s *store) create(ctx context.Context, r *subRow) error {
	cfg, err := json.Marshal(r.cfg)
	if err != nil {
		return err
	}
	st, err := json.Marshal(r.state)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO subscriptions (id, config, config_hash, base_url, created_at, state) VALUES (?, ?, ?, ?, ?, ?)",
			r.id, cfg, r.hash, r.baseURL, r.createdAt.UnixMilli(), st); err != nil {
			return err
		}
		return putLinks(ctx, tx, r.id, r.links, nil)
	})
}

// update writes a subscription's state, upserts links and deletes the
// links named in removed, atomically.
func (s *store) update(ctx context.Context, id string, st state, links []link, removed []string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE subscriptions SET state = ? WHERE id = ?", b, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscription %q is not stored", id)
		}
		return putLinks(ctx, tx, id, links, removed)
	})
}

func putLinks(ctx context.Context, tx *sql.Tx, id string, links []link, removed []string) error {
	for _, l := range links {
		if _, err := tx.ExecContext(ctx, `INSERT INTO links (sub_id, path, explicit, glob, acked) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (sub_id, path) DO UPDATE SET explicit = excluded.explicit, glob = excluded.glob, acked = excluded.acked`,
			id, l.path, l.explicit, l.glob, l.acked); err != nil {
			return err
		}
	}
	for _, p := range removed {
		if _, err := tx.ExecContext(ctx, "DELETE FROM links WHERE sub_id = ? AND path = ?", id, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) remove(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM subscriptions WHERE id = ?", id)
	return err
}

func (s *store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
