package catalog

// The PostgreSQL backend: the same catalog on a database that several
// nodes share (cluster mode). Every method runs the same SQL as on SQLite;
// the catalog's SQL is written once, in the subset both engines accept,
// with ? and ?N placeholders that the PostgreSQL connection numbers ($N)
// before pgx sees them. What differs is listed here and next to the code
// that checks c.pg:
//
//  1. Writes do not group-commit. Each runs in its own READ COMMITTED
//     transaction, concurrently with the node's other writes and with other
//     nodes'; PostgreSQL shares WAL flushes between concurrent commits by
//     itself.
//  2. Rows a write decides on are locked first (SELECT ... FOR UPDATE), and
//     every UPDATE re-reads the row it locks, so refcounts stay exact when
//     nodes create and delete forks of the same stream at once. A deadlock
//     or serialization failure retries the whole write.
//  3. Path uniqueness is the UNIQUE constraint's: a concurrent insert of
//     the same path on another node fails there and maps to [ErrExists].
//  4. Ids come from the shared id_alloc row, reserved in blocks with one
//     atomic UPDATE ... RETURNING, so nodes never hand out the same id.
//  5. Text must be valid UTF-8, so prefix ranges end at a valid string.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/streamtier/durable-streams/migrations"
)

// maxPostgresConns bounds the connection pool of one node. Writes run
// concurrently on PostgreSQL, so the pool is larger than SQLite's.
const maxPostgresConns = 16

// writeAttempts bounds how often a PostgreSQL write is retried after a
// deadlock or serialization failure.
const writeAttempts = 5

// OpenPostgres opens the catalog in the PostgreSQL database at dsn (a
// postgres:// URL or key=value string as libpq takes it) and brings its
// schema up to date. Several processes may open the same database; they
// then share one stream directory and segment index.
func OpenPostgres(ctx context.Context, dsn string) (*Catalog, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: only pgx's message, which does not
		// repeat it.
		return nil, fmt.Errorf("catalog: postgres: %w", err)
	}
	where := fmt.Sprintf("postgres %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if cfg.ConnectTimeout == 0 {
		// A database cut off mid-handshake must not hold a caller
		// without a deadline forever; connect_timeout in the DSN wins.
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	c, err := openPostgres(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", where, err)
	}
	return c, nil
}

// defaultConnectTimeout bounds a new connection to PostgreSQL when the
// DSN sets no connect_timeout.
const defaultConnectTimeout = 5 * time.Second

func openPostgres(ctx context.Context, cfg *pgx.ConnConfig) (*Catalog, error) {
	db := sql.OpenDB(numberingConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(maxPostgresConns)
	db.SetMaxIdleConns(maxPostgresConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := migrations.ApplyPostgres(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return newCatalog(ctx, db, true)
}

// writePostgres runs fn in its own transaction and commits it, retrying
// the whole write when PostgreSQL aborts it to break a deadlock or a
// serialization conflict (nothing of it was committed then).
func (c *Catalog) writePostgres(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := c.writeOnce(ctx, fn)
		if err == nil || attempt == writeAttempts || !retryable(err) {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Catalog) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// PostgreSQL error codes the catalog acts on.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected)
}

// isPostgresPathConflict reports whether err is PostgreSQL refusing a
// second row with the same path.
func isPostgresPathConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUniqueViolation && pe.ConstraintName == "streams_path_key"
}

// forUpdate is appended to a SELECT whose row a write goes on to change:
// on PostgreSQL it locks the row until the transaction ends, so a
// concurrent write on another node cannot change it in between. SQLite
// has no row locks and needs none: its writers are serialized.
func (c *Catalog) forUpdate() string {
	if c.pg {
		return " FOR UPDATE"
	}
	return ""
}

// validPrefixEnd is prefixEnd for a database whose text must be valid
// UTF-8: the prefix with its last code point incremented (dropping
// trailing U+10FFFF), which bounds every string starting with prefix
// because UTF-8 orders byte-wise as code points do.
func validPrefixEnd(prefix string) (string, bool) {
	if !utf8.ValidString(prefix) {
		return prefixEnd(prefix)
	}
	rs := []rune(prefix)
	for i := len(rs) - 1; i >= 0; i-- {
		switch r := rs[i]; {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // surrogates are not valid in UTF-8
			rs[i] = 0xE000
		default:
			rs[i] = r + 1
		}
		return string(rs[:i+1]), true
	}
	return "", false
}

// numberingConnector hands database/sql connections that number the
// catalog's ? and ?N placeholders as PostgreSQL's $N.
type numberingConnector struct{ driver.Connector }

func (n numberingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := n.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return numberingConn{conn.(*stdlib.Conn)}, nil
}

// numberingConn is a pgx connection that rewrites placeholders in every
// statement it prepares or runs; everything else is pgx's.
type numberingConn struct{ *stdlib.Conn }

func (c numberingConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(numberPlaceholders(query))
}

func (c numberingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, numberPlaceholders(query))
}

func (c numberingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, numberPlaceholders(query), args)
}

func (c numberingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, numberPlaceholders(query), args)
}

// numberPlaceholders turns the SQLite placeholders of query into
// PostgreSQL's: ?N becomes $N and each bare ? the next number, as SQLite
// numbers them (one past the largest so far). Quoted strings and
// identifiers are copied unchanged.
func numberPlaceholders(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	largest := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch ch {
		case '\'', '"':
			end := strings.IndexByte(query[i+1:], ch)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case '?':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n := largest + 1
			if j > i+1 {
				n, _ = strconv.Atoi(query[i+1 : j])
			}
			largest = max(largest, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
