package migrations

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestPostgresFilesMatchSQLite checks that both backends describe the same
// schema versions under the same names, so that a migration added for one
// backend without the other is caught here rather than at run time.
func TestPostgresFilesMatchSQLite(t *testing.T) {
	lite, err := load()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadFrom(postgresFiles, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	names := func(ms []migration) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.name
		}
		return out
	}
	if a, b := names(lite), names(pg); !slices.Equal(a, b) {
		t.Errorf("SQLite files %v, PostgreSQL files %v: every version needs a file of the same name in both", a, b)
	}
}

func openPostgres(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestApplyPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()

	t.Run("concurrent, then idempotent", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		// Separate pools stand in for nodes starting together.
		dbs := []*sql.DB{openPostgres(t, dsn), openPostgres(t, dsn), openPostgres(t, dsn)}
		var wg sync.WaitGroup
		errs := make([]error, len(dbs))
		for i, db := range dbs {
			wg.Go(func() { errs[i] = ApplyPostgres(ctx, db) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("ApplyPostgres #%d: %v", i, err)
			}
		}
		if err := ApplyPostgres(ctx, dbs[0]); err != nil {
			t.Errorf("second ApplyPostgres: %v", err)
		}
		var versions []int
		rows, err := dbs[0].QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			versions = append(versions, v)
		}
		rows.Close()
		if want := PostgresVersions(); !slices.Equal(versions, want) || len(want) == 0 {
			t.Errorf("schema_migrations versions = %v, want %v", versions, want)
		}
		for _, table := range []string{"streams", "id_alloc", "gc_queue", "segments", "nodes", "stream_leases"} {
			var n int
			if err := dbs[0].QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table).Scan(&n); err != nil || n != 1 {
				t.Errorf("table %s: count=%d err=%v", table, n, err)
			}
		}
	})

	t.Run("refuses newer schema", func(t *testing.T) {
		db := openPostgres(t, srv.NewDatabase(t))
		if err := ApplyPostgres(ctx, db); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)"); err != nil {
			t.Fatal(err)
		}
		err := ApplyPostgres(ctx, db)
		if !errors.Is(err, ErrNewerSchema) {
			t.Fatalf("ApplyPostgres = %v, want ErrNewerSchema", err)
		}
		if !strings.Contains(err.Error(), "9999") {
			t.Errorf("error %q does not name the database's version", err)
		}
	})

	t.Run("another owner's files in their own table", func(t *testing.T) {
		db := openPostgres(t, srv.NewDatabase(t))
		if err := ApplyPostgres(ctx, db); err != nil {
			t.Fatal(err)
		}
		other := fstest.MapFS{"0001_other.sql": {Data: []byte("CREATE TABLE other_things (x INTEGER)")}}
		for range 2 {
			if err := ApplyPostgresFS(ctx, db, other, "other_migrations"); err != nil {
				t.Fatalf("ApplyPostgresFS: %v", err)
			}
		}
		var own, theirs int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM other_migrations").Scan(&theirs); err != nil || theirs != 1 {
			t.Errorf("other_migrations rows = %d, %v; want 1", theirs, err)
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&own); err != nil || own != len(PostgresVersions()) {
			t.Errorf("schema_migrations rows = %d, %v; want the catalog's %d", own, err, len(PostgresVersions()))
		}
		for _, table := range []string{"schema_migrations", "Bad-Name", ""} {
			if err := ApplyPostgresFS(ctx, db, other, table); err == nil {
				t.Errorf("ApplyPostgresFS with versions table %q succeeded", table)
			}
		}
	})

	t.Run("failed file leaves nothing", func(t *testing.T) {
		db := openPostgres(t, srv.NewDatabase(t))
		bad := migration{version: 1, name: "0001_bad.sql", sql: "CREATE TABLE half (a int); INSERT INTO no_such_table VALUES (1);"}
		err := inLockedTx(ctx, db, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, bad.sql)
			return err
		})
		if err == nil {
			t.Fatal("failing file applied")
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'half'").Scan(&n); err != nil || n != 0 {
			t.Errorf("table of the failed file survived: n=%d err=%v", n, err)
		}
	})
}
