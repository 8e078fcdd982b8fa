package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tempDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	return openDB(t, path), path
}

type appliedRow struct {
	version   int
	name      string
	appliedAt int64
}

func appliedRows(t *testing.T, db *sql.DB) []appliedRow {
	t.Helper()
	rows, err := db.Query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []appliedRow
	for rows.Next() {
		var r appliedRow
		if err := rows.Scan(&r.version, &r.name, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func objectExists(t *testing.T, db *sql.DB, typ, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = ? AND name = ?", typ, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestFilesWellFormed(t *testing.T) {
	ms, err := load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got, want := Versions(), []int{1, 2, 3, 4, 5, 7}; !slices.Equal(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
	for _, m := range ms {
		if m.sql == "" {
			t.Errorf("%s is empty", m.name)
		}
	}
}

func TestApplyCreatesSchema(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	if err := Apply(ctx, db); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, o := range []struct{ typ, name string }{
		{"table", "schema_migrations"},
		{"table", "streams"},
		{"index", "streams_deadline"},
		{"index", "streams_parent"},
		{"table", "id_alloc"},
		{"table", "gc_queue"},
		{"table", "segments"},
		{"index", "segments_state"},
		{"index", "segments_object_key"},
		{"table", "journal_nodes"},
		{"table", "nodes"},
		{"table", "stream_leases"},
		{"table", "stream_handoffs"},
		{"table", "stream_handoff_producers"},
	} {
		if !objectExists(t, db, o.typ, o.name) {
			t.Errorf("%s %s missing", o.typ, o.name)
		}
	}
	rows := appliedRows(t, db)
	var versions []int
	for _, r := range rows {
		versions = append(versions, r.version)
	}
	if !slices.Equal(versions, Versions()) || rows[0].name != "0001_catalog.sql" || rows[1].name != "0002_segments.sql" {
		t.Errorf("schema_migrations = %+v", rows)
	}
	for _, r := range rows {
		if r.appliedAt <= 0 {
			t.Errorf("version %d: applied_at = %d", r.version, r.appliedAt)
		}
	}
}

func TestApplyIdempotent(t *testing.T) {
	ctx := context.Background()
	db, path := tempDB(t)
	if err := Apply(ctx, db); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	before := appliedRows(t, db)
	// Data written between runs must survive: a second run that re-created
	// the tables would fail or wipe it.
	if _, err := db.Exec("UPDATE id_alloc SET next = 42"); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, db); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	db.Close()

	db = openDB(t, path)
	if err := Apply(ctx, db); err != nil {
		t.Fatalf("Apply after reopen: %v", err)
	}
	if after := appliedRows(t, db); !slices.Equal(before, after) {
		t.Errorf("schema_migrations changed: before %+v, after %+v", before, after)
	}
	var next int64
	if err := db.QueryRow("SELECT next FROM id_alloc").Scan(&next); err != nil {
		t.Fatal(err)
	}
	if next != 42 {
		t.Errorf("id_alloc.next = %d, want 42", next)
	}
}

func TestApplyPending(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	ms, err := load()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, createTableSQL); err != nil {
		t.Fatal(err)
	}
	if err := applyOne(ctx, conn, ms[0], ms[len(ms)-1].version); err != nil {
		t.Fatalf("applyOne(%s): %v", ms[0].name, err)
	}
	conn.Close()
	if objectExists(t, db, "table", "segments") {
		t.Fatal("segments exists before version 2 is applied")
	}

	if err := Apply(ctx, db); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !objectExists(t, db, "table", "segments") {
		t.Error("segments missing after Apply")
	}
	var versions []int
	for _, r := range appliedRows(t, db) {
		versions = append(versions, r.version)
	}
	if !slices.Equal(versions, Versions()) {
		t.Errorf("applied versions = %v, want %v", versions, Versions())
	}
}

func TestApplyRefusesNewerSchema(t *testing.T) {
	tests := []struct {
		name       string
		applyFirst bool // bring the database to the newest known version before setup
		setup      []string
	}{
		{
			name: "fresh database",
			setup: []string{
				createTableSQL,
				"INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 1)",
			},
		},
		{
			name:       "after known versions",
			applyFirst: true,
			setup: []string{
				fmt.Sprintf("INSERT INTO schema_migrations VALUES (%d, 'future.sql', 1)", slices.Max(Versions())+1),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, _ := tempDB(t)
			if tt.applyFirst {
				if err := Apply(ctx, db); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range tt.setup {
				if _, err := db.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			err := Apply(ctx, db)
			if !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("Apply = %v, want ErrNewerSchema", err)
			}
			if !tt.applyFirst && objectExists(t, db, "table", "streams") {
				t.Error("Apply created tables in a database it refused")
			}
		})
	}
}

func TestApplyOneRollsBackOnError(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, createTableSQL); err != nil {
		t.Fatal(err)
	}
	bad := migration{
		version: 7,
		name:    "0007_bad.sql",
		sql:     "CREATE TABLE half (a INTEGER); INSERT INTO no_such_table VALUES (1);",
	}
	if err := applyOne(ctx, conn, bad, 7); err == nil {
		t.Fatal("applyOne succeeded with a failing statement")
	}
	if objectExists(t, db, "table", "half") {
		t.Error("table from the failed migration survived")
	}
	if rows := appliedRows(t, db); len(rows) != 0 {
		t.Errorf("schema_migrations = %+v, want empty", rows)
	}
	// The connection must be usable (not left inside a transaction).
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK;"); err != nil {
		t.Errorf("connection unusable after failed migration: %v", err)
	}
}

func TestApplyConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	// Separate pools stand in for separate processes.
	dbs := []*sql.DB{openDB(t, path), openDB(t, path), openDB(t, path)}
	// Create the file and switch it to WAL first: concurrent journal-mode
	// changes of a brand-new file fail with SQLITE_BUSY without waiting,
	// which is about opening, not about Apply.
	if err := dbs[0].PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dbs))
	for i, db := range dbs {
		wg.Go(func() { errs[i] = Apply(ctx, db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply #%d: %v", i, err)
		}
	}
	if rows := appliedRows(t, dbs[0]); len(rows) != len(Versions()) {
		t.Errorf("schema_migrations = %+v", rows)
	}
}
