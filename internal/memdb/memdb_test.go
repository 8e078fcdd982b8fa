package memdb

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeepDrop(t *testing.T) {
	ctx := context.Background()
	root := NewRoot()
	path := filepath.Join(root, "streams", "1.db")
	if !Is(path) || Is("/tmp/x.db") || Exists(path) {
		t.Fatal("Is/Exists before Keep")
	}
	if err := Keep(ctx, path); err != nil {
		t.Fatal(err)
	}
	dsn, err := URI(path, url.Values{"mode": {"rw"}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(q string) error {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	// The table outlives the connection that made it: Keep holds one.
	if err := write("CREATE TABLE t (a)"); err != nil {
		t.Fatal(err)
	}
	if err := write("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if n := Count(root); n != 1 || !Exists(path) {
		t.Fatalf("Count %d", n)
	}
	if err := Drop(path); err != nil {
		t.Fatal(err)
	}
	if err := Keep(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := write("INSERT INTO t VALUES (1)"); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("after Drop: %v, want no such table", err)
	}
	if err := DropAll(root); err != nil {
		t.Fatal(err)
	}
	if Count(root) != 0 || Exists(path) {
		t.Fatal("DropAll left databases")
	}
}

func TestURI(t *testing.T) {
	got, err := URI("memdb:/ds-1/a b?.db", url.Values{"mode": {"rw"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "file:/ds-1/a%20b%3F.db?mode=rw&vfs=memdb"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
	got, err = URI("/data/x.db", url.Values{"mode": {"rw"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "file:/data/x.db?mode=rw"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
}
