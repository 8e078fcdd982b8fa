package reclaim_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/reclaim"
)

// deletedStream creates a stream with a hot log (database and WAL), one
// index row and, with a store, its object; then deletes it for real.
func deletedStream(t *testing.T, cat *catalog.Catalog, store coldstore.Store, dir string) int64 {
	t.Helper()
	ctx := t.Context()
	id, err := cat.AllocateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Insert(ctx, catalog.Stream{ID: id, Path: "s", ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	key := segment.ObjectKey(id, 0)
	if err := cat.RecordSealed(ctx, catalog.Segment{StreamID: id, ObjectKey: key}); err != nil {
		t.Fatal(err)
	}
	if store != nil {
		if err := store.Put(ctx, key, strings.NewReader("obj"), 3); err != nil {
			t.Fatal(err)
		}
	}
	p := hotlog.StreamPath(dir, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, p + "-wal"} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cat.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

type forgetter []string

func (f *forgetter) Forget(key string) { *f = append(*f, key) }

func TestCollect(t *testing.T) {
	for _, withStore := range []bool{false, true} {
		t.Run(map[bool]string{false: "no store", true: "store"}[withStore], func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			var store coldstore.Store
			if withStore {
				if store, err = coldstore.NewLocal(filepath.Join(dir, "cold")); err != nil {
					t.Fatal(err)
				}
			}
			cache := &forgetter{}
			cfg := reclaim.Config{Catalog: cat, Store: store, HotPath: func(id int64) string { return hotlog.StreamPath(dir, id) }}
			if withStore {
				cfg.Cache = cache
			}
			c, err := reclaim.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id := deletedStream(t, cat, store, dir)
			c.Collect(ctx, []int64{id})
			// The hot files go before Collect returns.
			if files, err := c.HotFiles(id); err != nil || len(files) != 0 {
				t.Fatalf("hot files after Collect: %v, %v", files, err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				pending, err := cat.PendingGC(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(pending) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GC entry not finished: %v (stats %+v)", pending, c.Stats())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if left, err := cat.HasSegments(ctx, id); err != nil || left {
				t.Fatalf("index rows left: %t, %v", left, err)
			}
			if withStore {
				key := segment.ObjectKey(id, 0)
				if _, err := store.Head(ctx, key); !errors.Is(err, coldstore.ErrNotFound) {
					t.Fatalf("object after collection: %v", err)
				}
				if len(*cache) != 1 || (*cache)[0] != key {
					t.Fatalf("cache told to forget %v", *cache)
				}
				if st := c.Stats(); st.Collected != 1 || st.Queued != 0 {
					t.Fatalf("stats %+v", st)
				}
			}
			if _, err := os.Stat(hotlog.StreamPath(dir, id)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("hot log: %v", err)
			}
		})
	}
}
