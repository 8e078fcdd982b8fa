package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
)

// advisoryLockKey is the PostgreSQL advisory lock that serializes
// ApplyPostgres across the nodes sharing a database ("dsmigrat" in ASCII).
const advisoryLockKey int64 = 0x64736d6967726174

// createTablePostgresSQL creates a versions table (%s: its name).
const createTablePostgresSQL = `CREATE TABLE IF NOT EXISTS %s (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL
)`

// validTable is the form of a versions table's name given to
// [ApplyPostgresFS]: an unquoted SQL identifier.
var validTable = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// PostgresVersions is [Versions] for the PostgreSQL files.
func PostgresVersions() []int { return versions(loadFrom(postgresFiles, "postgres")) }

// ApplyPostgres is [Apply] for a PostgreSQL database: it brings db up to
// the newest PostgreSQL file, each file in its own transaction together
// with its schema_migrations row, and fails with [ErrNewerSchema] if db
// records a newer version.
//
// Nodes starting together may run it at the same time: every transaction
// first takes a transaction-scoped advisory lock, so one node applies a
// file while the others wait and then find it applied. (CREATE TABLE IF
// NOT EXISTS alone is not safe against a concurrent twin in PostgreSQL.)
func ApplyPostgres(ctx context.Context, db *sql.DB) error {
	if err := applyPostgres(ctx, db, postgresFiles, "postgres", versionsTable); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// ApplyPostgresFS is [ApplyPostgres] for another owner's tables in the
// same PostgreSQL database: the files at the root of fsys (named
// NNNN_name.sql, as here), with their versions recorded in table (an
// unquoted lower-case identifier other than schema_migrations), so that
// each owner's files are numbered on their own.
func ApplyPostgresFS(ctx context.Context, db *sql.DB, fsys fs.FS, table string) error {
	if !validTable.MatchString(table) || table == versionsTable {
		return fmt.Errorf("migrations: versions table %q is not a lower-case identifier of its own", table)
	}
	if err := applyPostgres(ctx, db, fsys, ".", table); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

func applyPostgres(ctx context.Context, db *sql.DB, fsys fs.FS, dir, table string) error {
	ms, err := loadFrom(fsys, dir)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	err = inLockedTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, fmt.Sprintf(createTablePostgresSQL, table))
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	for _, m := range ms {
		err := inLockedTx(ctx, db, func(tx *sql.Tx) error { return applyFile(ctx, tx, table, m, latest) })
		if err != nil {
			return fmt.Errorf("apply postgres/%s: %w", m.name, err)
		}
	}
	return nil
}

// inLockedTx runs fn in a transaction that holds the migrations advisory
// lock, and commits it if fn succeeds.
func inLockedTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryLockKey); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
