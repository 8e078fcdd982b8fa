package hotlog

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestAppliedLSN checks that the journal position travels with the meta
// row through Create, Commit and Load, in synced and unsynced files.
func TestAppliedLSN(t *testing.T) {
	for _, tt := range []struct {
		name   string
		create func(context.Context, string, Meta, []Message) error
		opts   Options
	}{
		{"synced", Create, Options{}},
		{"unsynced", CreateUnsynced, Options{NoSync: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "a", "b", "7.db")
			meta := rootMeta()
			meta.AppliedLSN = 41
			if err := tt.create(ctx, path, meta, msgs(0, 0, 10)); err != nil {
				t.Fatal(err)
			}
			l, err := Open(ctx, path, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got, _, _, err := l.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.AppliedLSN != 41 {
				t.Fatalf("AppliedLSN after create = %d, want 41", got.AppliedLSN)
			}
			got.AppliedLSN, got.Tail = 42, 15
			if err := l.Commit(ctx, &Batch{Messages: msgs(10, 0, 5), Meta: got}); err != nil {
				t.Fatal(err)
			}
			if err := SyncFiles(path); err != nil {
				t.Fatal(err)
			}
			again, _, _, err := l.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if again.AppliedLSN != 42 {
				t.Errorf("AppliedLSN after commit = %d, want 42", again.AppliedLSN)
			}
		})
	}
}

// TestUpgradeFromVersion1 opens a file made by the first schema, which
// has no applied_lsn column.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	if err := Create(ctx, path, rootMeta(), msgs(0, 0, 3)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"ALTER TABLE meta DROP COLUMN applied_lsn", "PRAGMA user_version = 1"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	l, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	meta, _, _, err := l.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.AppliedLSN != 0 || meta.Tail != 0 {
		t.Errorf("upgraded meta: %+v", meta)
	}
	var v int
	if err := l.wdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != schemaVersion {
		t.Errorf("user_version = %d (%v), want %d", v, err, schemaVersion)
	}
}
