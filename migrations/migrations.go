// Package migrations holds the schema of the catalog database as numbered
// SQL files and applies the ones a database has not seen yet. There is one
// set per catalog backend: the SQLite files in this directory ([Apply])
// and the PostgreSQL files in postgres/ ([ApplyPostgres]). Both sets
// describe the same schema version by version: a change to the catalog's
// tables adds a file with the same number and name to each.
// ApplyFS applies another SQLite database's files by the same rules (each
// database has its own files and its own owner package).
//
// A file is named NNNN_name.sql, where NNNN is its version, a positive
// decimal number. Files are applied in version order, each in its own
// transaction together with its row in schema_migrations, so a crash leaves
// the database at exactly one known version. Applied files must never be
// edited: a change is a new file with a higher version.
package migrations

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

//go:embed *.sql
var files embed.FS

//go:embed postgres/*.sql
var postgresFiles embed.FS

// ErrNewerSchema is returned by [Apply] when the database records a
// version that no known file has: it was written by a newer binary, and an
// older one cannot know what it would break.
var ErrNewerSchema = errors.New("migrations: database schema is newer than this program")

const createTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`

// migration is one parsed file.
type migration struct {
	version int
	name    string // file name
	sql     string
}

var fileName = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_-]+\.sql$`)

// load returns the embedded files in version order. It fails on names that
// do not follow the convention and on duplicate versions, both of which
// would make the applied state ambiguous.
func load() ([]migration, error) { return loadFrom(files, ".") }

// loadFrom is load for the files in dir of fsys.
func loadFrom(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("file %q is not named NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("file %q: version must be a positive number", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, errors.New("no migration files")
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("files %q and %q have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Versions returns the versions of the known migration files in ascending
// order. It returns nil if the files are malformed, which [Apply] reports
// as an error.
func Versions() []int { return versions(load()) }

func versions(ms []migration, err error) []int {
	if err != nil {
		return nil
	}
	vs := make([]int, len(ms))
	for i, m := range ms {
		vs[i] = m.version
	}
	return vs
}

// Apply brings db up to the newest known version. It creates the
// schema_migrations table if missing, then applies every file whose version
// is not recorded there, in version order, each in its own transaction
// together with its schema_migrations row. It fails with an error wrapping
// [ErrNewerSchema] if db records a version newer than any known file.
//
// Apply is safe to run concurrently with itself, also from other
// processes: each transaction begins IMMEDIATE (taking the write lock up
// front) and checks again whether its file was applied meanwhile.
func Apply(ctx context.Context, db *sql.DB) error {
	return ApplyFS(ctx, db, files)
}

// ApplyFS is [Apply] with the migration files at the root of fsys (named
// NNNN_name.sql, as here), for SQLite databases other than the catalog.
func ApplyFS(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	if err := apply(ctx, db, fsys); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	ms, err := loadFrom(fsys, ".")
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version

	// One connection for everything, because a raw BEGIN belongs to the
	// connection that ran it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	if _, err := conn.ExecContext(ctx, createTableSQL); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, newest, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	if newest > latest {
		return fmt.Errorf("%w: database is at version %d, newest known version is %d", ErrNewerSchema, newest, latest)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := applyOne(ctx, conn, m, latest); err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *sql.Conn) (map[int]bool, int, error) {
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := make(map[int]bool)
	newest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, 0, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
		newest = max(newest, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, newest, nil
}

func applyOne(ctx context.Context, conn *sql.Conn, m migration, latest int) error {
	return inTx(ctx, conn, func() error { return applyFile(ctx, conn, versionsTable, m, latest) })
}

// execer is what applyFile needs: the connection or transaction that
// holds the lock of the transaction recording the file.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// versionsTable records the applied files of a database that has one
// owner's set (SQLite databases, and the catalog's in PostgreSQL).
const versionsTable = "schema_migrations"

// applyFile runs m and records it in table through e unless it is recorded
// already, and fails with ErrNewerSchema if the database is newer than
// latest. Its statements ($N placeholders) run on SQLite and PostgreSQL
// alike; table is one of this package's constants or a caller's
// identifier checked by validTable, never input.
func applyFile(ctx context.Context, e execer, table string, m migration, latest int) error {
	// Another process may have got here first between the read in apply
	// and taking the lock.
	var newest, done int
	err := e.QueryRowContext(ctx,
		"SELECT coalesce(max(version), 0), count(*) FILTER (WHERE version = $1) FROM "+table,
		m.version).Scan(&newest, &done)
	if err != nil {
		return err
	}
	if newest > latest {
		return fmt.Errorf("%w: database is at version %d, newest known version is %d", ErrNewerSchema, newest, latest)
	}
	if done > 0 {
		return nil
	}
	if _, err := e.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	_, err = e.ExecContext(ctx,
		"INSERT INTO "+table+" (version, name, applied_at) VALUES ($1, $2, $3)",
		m.version, m.name, time.Now().UnixMilli())
	return err
}

// inTx runs fn inside BEGIN IMMEDIATE ... COMMIT on conn. The transaction
// is started by hand rather than with conn.BeginTx because the locking mode
// of BeginTx depends on how the caller opened db; IMMEDIATE avoids the
// deadlock of two deferred transactions both upgrading to write.
func inTx(ctx context.Context, conn *sql.Conn, fn func() error) error {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err := fn()
	if err == nil {
		if _, err = conn.ExecContext(ctx, "COMMIT"); err == nil {
			return nil
		}
	}
	// The rollback must run even if ctx is what failed the transaction.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
		// The connection may still be inside the transaction; returning it
		// to the pool would hand that transaction to an unrelated caller.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}
