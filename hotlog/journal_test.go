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

// TestImage makes a hot log from the image and writes its real contents
// with the first commit.
func TestImage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	im, err := NewImage(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x", "9.db")
	if err := im.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	meta := rootMeta()
	meta.Tail, meta.AppliedLSN = 5, 3
	if err := l.Commit(ctx, &Batch{Messages: msgs(0, 0, 5), Meta: meta}); err != nil {
		t.Fatal(err)
	}
	got, prods, segs, err := l.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.StreamID != meta.StreamID || got.Tail != 5 || got.AppliedLSN != 3 || len(prods) != 0 || len(segs) != 0 {
		t.Errorf("loaded %+v, %d producers, %d segments", got, len(prods), len(segs))
	}
	var page, vacuum int
	l.wdb.QueryRow("PRAGMA page_size").Scan(&page)
	l.wdb.QueryRow("PRAGMA auto_vacuum").Scan(&vacuum)
	if page != 16384 || vacuum != 2 {
		t.Errorf("page_size %d, auto_vacuum %d", page, vacuum)
	}
}
