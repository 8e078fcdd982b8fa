package sequencer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/protocol"
)

func TestRowCache(t *testing.T) {
	row := func(id int64, path string) catalog.Stream { return catalog.Stream{ID: id, Path: path} }
	tests := []struct {
		name string
		run  func(c *rowCache)
		want map[string]int64 // path to cached id
	}{
		{"fill", func(c *rowCache) {
			_, _, g := c.get("a")
			c.put(row(1, "a"), g)
		}, map[string]int64{"a": 1}},
		{"fill after a change is dropped", func(c *rowCache) {
			_, _, g := c.get("a")
			c.forgetPath("b") // any change, even of another row
			c.put(row(1, "a"), g)
		}, map[string]int64{}},
		{"forget by path", func(c *rowCache) {
			_, _, g := c.get("a")
			c.put(row(1, "a"), g)
			c.put(row(2, "b"), g)
			c.forgetPath("a")
		}, map[string]int64{"b": 2}},
		{"forget by id", func(c *rowCache) {
			_, _, g := c.get("a")
			c.put(row(1, "a"), g)
			c.put(row(2, "b"), g)
			c.forgetIDs(2, 3)
		}, map[string]int64{"a": 1}},
		{"re-created path", func(c *rowCache) {
			_, _, g := c.get("a")
			c.put(row(1, "a"), g)
			c.put(row(2, "a"), g)
			c.forgetIDs(1) // the old id no longer names the path
		}, map[string]int64{"a": 2}},
		{"forget all", func(c *rowCache) {
			_, _, g := c.get("a")
			c.put(row(1, "a"), g)
			c.forgetAll()
		}, map[string]int64{}},
		{"bounded", func(c *rowCache) {
			_, _, g := c.get("a")
			for i, p := range []string{"a", "b", "c", "d"} {
				c.put(row(int64(i+1), p), g)
			}
		}, nil}, // checked by size below
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newRowCache(3)
			tc.run(c)
			if len(c.byPath) != len(c.pathOf) || len(c.byPath) > 3 {
				t.Fatalf("%d paths, %d ids; want the same number, at most 3", len(c.byPath), len(c.pathOf))
			}
			if tc.want == nil {
				return
			}
			got := map[string]int64{}
			for p, r := range c.byPath {
				got[p] = r.ID
				if c.pathOf[r.ID] != p {
					t.Errorf("pathOf[%d] = %q, want %q", r.ID, c.pathOf[r.ID], p)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("cached %v, want %v", got, tc.want)
			}
			for p, id := range tc.want {
				if got[p] != id {
					t.Errorf("cached %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestRowCacheTouched(t *testing.T) {
	c := newRowCache(10)
	t0 := time.UnixMilli(1_700_000_000_000)
	_, _, g := c.get("a")
	c.put(catalog.Stream{ID: 1, Path: "a", LastAccess: t0}, g)
	c.touched(map[int64]time.Time{1: t0.Add(1500 * time.Microsecond), 2: t0.Add(time.Hour)})
	if r, _, _ := c.get("a"); !r.LastAccess.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("LastAccess = %v, want %v (milliseconds, as stored)", r.LastAccess, t0.Add(time.Millisecond))
	}
	c.touched(map[int64]time.Time{1: t0}) // older: ignored, as by the catalog
	if r, _, _ := c.get("a"); !r.LastAccess.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("LastAccess = %v after an older touch", r.LastAccess)
	}
	if len(c.byPath) != 1 {
		t.Errorf("touch of an uncached id cached %d rows", len(c.byPath))
	}
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestRegistry(t *testing.T, now func() time.Time) (*Registry, *catalog.Catalog) {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(context.Background(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry(Config{DataDir: dir, Catalog: cat, Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cat.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(context.Background()); err != nil {
			t.Error(err)
		}
		cat.Close()
	})
	return reg, cat
}

// checkRowCache fails unless every cached row equals its catalog row.
func checkRowCache(t *testing.T, r *Registry, cat *catalog.Catalog) {
	t.Helper()
	r.rows.mu.RLock()
	rows := make([]catalog.Stream, 0, len(r.rows.byPath))
	for _, row := range r.rows.byPath {
		rows = append(rows, row)
	}
	r.rows.mu.RUnlock()
	for _, row := range rows {
		cur, err := cat.Get(t.Context(), row.Path)
		if err != nil {
			t.Errorf("cached %q (id %d), catalog: %v", row.Path, row.ID, err)
			continue
		}
		if cur != row {
			t.Errorf("cached %q = %+v, catalog has %+v", row.Path, row, cur)
		}
	}
}

// TestRowCacheFollowsLifecycle drives a stream and its fork through their
// lifecycle and checks after every step that the cached rows are the
// catalog's and that lookups give what the catalog says.
func TestRowCacheFollowsLifecycle(t *testing.T) {
	r, cat := newTestRegistry(t, nil)
	ctx := t.Context()
	ct, _ := protocol.ParseContentType("text/plain")
	create := func(path string, fork *ForkRequest) int64 {
		t.Helper()
		res, err := r.Create(ctx, &CreateRequest{Path: path, ContentType: &ct, Fork: fork})
		if err != nil {
			t.Fatalf("create %q: %v", path, err)
		}
		res.Handle.Release()
		return res.Handle.Info.ID
	}
	lookup := func(path string, want error, wantID int64) {
		t.Helper()
		for range 2 { // the first may fill the cache, the second hits it
			h, err := r.Acquire(ctx, path, false)
			if !errors.Is(err, want) {
				t.Fatalf("Acquire(%q) = %v, want %v", path, err, want)
			}
			if err == nil {
				h.Release()
				if h.Info.ID != wantID {
					t.Fatalf("Acquire(%q) = id %d, want %d", path, h.Info.ID, wantID)
				}
			}
		}
		checkRowCache(t, r, cat)
	}

	a := create("a", nil)
	lookup("a", nil, a)
	b := create("b", &ForkRequest{Source: "a"})
	lookup("a", nil, a) // refcount 1
	lookup("b", nil, b)

	h, err := r.Acquire(ctx, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Append(ctx, &AppendRequest{ContentType: ct, Messages: [][]byte{[]byte("x")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	h.Release()
	deadline := time.Now().Add(10 * time.Second)
	for { // the catalog records a close in the background
		if row, err := cat.Get(ctx, "a"); err == nil && row.Closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("close not recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lookup("a", nil, a)

	if err := r.Delete(ctx, "a"); err != nil { // soft: b references it
		t.Fatal(err)
	}
	lookup("a", errGone, 0)
	if err := r.Delete(ctx, "b"); err != nil { // takes a along
		t.Fatal(err)
	}
	lookup("a", errNotFound, 0)
	lookup("b", errNotFound, 0)

	a2 := create("a", nil)
	if a2 == a {
		t.Fatalf("re-created stream has the old id %d", a)
	}
	lookup("a", nil, a2)
}

// TestRowCacheInserted checks that the row a creation caches is the one
// the catalog returns: times and TTL as it stores them.
func TestRowCacheInserted(t *testing.T) {
	r, cat := newTestRegistry(t, nil)
	ct, _ := protocol.ParseContentType("text/plain")
	ttl := 90*time.Second + 1500*time.Microsecond
	tiny := 300 * time.Microsecond
	exp := time.Now().Add(time.Hour)
	for _, req := range []*CreateRequest{
		{Path: "plain", ContentType: &ct},
		{Path: "ttl", ContentType: &ct, TTL: &ttl},
		{Path: "tiny-ttl", ContentType: &ct, TTL: &tiny},
		{Path: "expires", ContentType: &ct, ExpiresAt: &exp},
	} {
		res, err := r.Create(t.Context(), req)
		if err != nil {
			t.Fatalf("create %q: %v", req.Path, err)
		}
		res.Handle.Release()
		if _, ok, _ := r.rows.get(req.Path); !ok {
			t.Errorf("%q not cached after its creation", req.Path)
		}
	}
	checkRowCache(t, r, cat)
}

// TestRowCacheKeepsSlidingTTL checks that a cached row does not make a
// stream with a sliding TTL expire early once the registry has persisted
// and forgotten its in-memory access times.
func TestRowCacheKeepsSlidingTTL(t *testing.T) {
	clk := &testClock{now: time.UnixMilli(1_700_000_000_000)}
	r, cat := newTestRegistry(t, clk.Now)
	ctx := t.Context()
	ttl := 30 * time.Second
	res, err := r.Create(ctx, &CreateRequest{Path: "s", TTL: &ttl})
	if err != nil {
		t.Fatal(err)
	}
	res.Handle.Release()
	acquire := func(renew bool) {
		t.Helper()
		h, err := r.Acquire(ctx, "s", renew)
		if err != nil {
			t.Fatalf("Acquire at %v: %v", clk.Now(), err)
		}
		h.Release()
	}
	acquire(false) // cached with the creation time as its last access
	clk.Advance(20 * time.Second)
	acquire(true)
	r.flushAccess(ctx)
	clk.Advance(15 * time.Second) // 35 s: alive until 50 s
	r.flushAccess(ctx)            // forgets the in-memory access time
	r.accessMu.Lock()
	n := len(r.access)
	r.accessMu.Unlock()
	if n != 0 {
		t.Fatalf("%d in-memory access times left; the test needs them gone", n)
	}
	acquire(false)
	checkRowCache(t, r, cat)
	clk.Advance(16 * time.Second) // 51 s
	if _, err := r.Acquire(ctx, "s", false); !errors.Is(err, errNotFound) {
		t.Fatalf("Acquire after the TTL = %v, want not found", err)
	}
}
