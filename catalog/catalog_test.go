package catalog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/migrations"
)

// t0 is a fixed time with whole milliseconds, so stored values compare equal.
var t0 = time.UnixMilli(1_700_000_000_000)

func openTemp(t *testing.T) (*Catalog, string) {
	t.Helper()
	// Nested directories check that Open creates parents.
	path := filepath.Join(t.TempDir(), "data", "meta", "catalog.db")
	c, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// create inserts s with a freshly allocated id and returns the id.
func create(t *testing.T, c *Catalog, s Stream) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := c.AllocateID(ctx)
	if err != nil {
		t.Fatalf("AllocateID: %v", err)
	}
	s.ID = id
	if s.ContentType == "" {
		s.ContentType = "application/octet-stream"
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = t0
	}
	if err := c.Insert(ctx, s); err != nil {
		t.Fatalf("Insert(%q): %v", s.Path, err)
	}
	return id
}

func mustGet(t *testing.T, c *Catalog, id int64) Stream {
	t.Helper()
	s, err := c.GetByID(context.Background(), id)
	if err != nil {
		t.Fatalf("GetByID(%d): %v", id, err)
	}
	return s
}

func sameStream(a, b Stream) bool {
	return a.ID == b.ID && a.Path == b.Path && a.ContentType == b.ContentType &&
		a.TTL == b.TTL && a.ExpiresAt.Equal(b.ExpiresAt) && a.LastAccess.Equal(b.LastAccess) &&
		a.Closed == b.Closed && a.ParentID == b.ParentID && a.ForkOffset == b.ForkOffset &&
		a.ForkSubOffset == b.ForkSubOffset && a.RefCount == b.RefCount &&
		a.DeletedAt.Equal(b.DeletedAt) && a.CreatedAt.Equal(b.CreatedAt)
}

func paths(ss []Stream) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Path
	}
	return out
}

func testInsertGetRoundTrip(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	parent := create(t, c, Stream{Path: "parent"})

	tests := []struct {
		name string
		s    Stream
	}{
		{"plain", Stream{
			Path: "orders/2024/eu", ContentType: "application/json",
			LastAccess: t0.Add(time.Second), CreatedAt: t0,
		}},
		{"sliding ttl", Stream{
			Path: "ttl", ContentType: "text/plain", TTL: 90 * time.Second,
			LastAccess: t0.Add(time.Minute), CreatedAt: t0,
		}},
		{"absolute expiry, closed", Stream{
			Path: "expires", ContentType: "text/plain", ExpiresAt: t0.Add(time.Hour),
			LastAccess: t0, Closed: true, CreatedAt: t0,
		}},
		{"fork with everything", Stream{
			Path: "parent/fork", ContentType: "application/json", TTL: time.Hour,
			ExpiresAt: t0.Add(24 * time.Hour), LastAccess: t0.Add(2 * time.Second), Closed: true,
			ParentID: parent, ForkOffset: "0000000000000003_0000000000418305", ForkSubOffset: 7,
			CreatedAt: t0.Add(time.Second),
		}},
		{"odd path", Stream{
			Path: "a b/%_?#/é", ContentType: "application/octet-stream",
			LastAccess: t0, CreatedAt: t0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.AllocateID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.s
			want.ID = id
			if err := c.Insert(ctx, want); err != nil {
				t.Fatalf("Insert: %v", err)
			}
			byPath, err := c.Get(ctx, want.Path)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !sameStream(byPath, want) {
				t.Errorf("Get = %+v\nwant  %+v", byPath, want)
			}
			byID, err := c.GetByID(ctx, id)
			if err != nil {
				t.Fatalf("GetByID: %v", err)
			}
			if !sameStream(byID, want) {
				t.Errorf("GetByID = %+v\nwant      %+v", byID, want)
			}
		})
	}
	if got := mustGet(t, c, parent).RefCount; got != 1 {
		t.Errorf("parent RefCount = %d, want 1", got)
	}
}

func testInsertDefaults(t *testing.T, open opener) {
	c := open(t)
	fixed := t0.Add(5 * time.Minute)
	c.now = func() time.Time { return fixed }
	ctx := context.Background()
	id, err := c.AllocateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Insert(ctx, Stream{ID: id, Path: "p", ContentType: "text/plain", TTL: time.Microsecond}); err != nil {
		t.Fatal(err)
	}
	s := mustGet(t, c, id)
	if !s.CreatedAt.Equal(fixed) || !s.LastAccess.Equal(fixed) {
		t.Errorf("CreatedAt, LastAccess = %v, %v, want both %v", s.CreatedAt, s.LastAccess, fixed)
	}
	// A sub-millisecond TTL must not silently become "no TTL".
	if s.TTL != time.Millisecond {
		t.Errorf("TTL = %v, want 1ms", s.TTL)
	}
}

func testInsertErrors(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	live := create(t, c, Stream{Path: "live"})
	soft := create(t, c, Stream{Path: "soft"})
	create(t, c, Stream{Path: "soft/child", ParentID: soft, ForkOffset: "x"})
	if res, err := c.Delete(ctx, soft); err != nil || !res.Soft {
		t.Fatalf("Delete(soft) = %+v, %v", res, err)
	}

	tests := []struct {
		name    string
		s       Stream // ID 0 means a freshly allocated one
		wantErr error  // nil means any non-sentinel error
	}{
		{"duplicate live path", Stream{Path: "live"}, ErrExists},
		{"duplicate soft-deleted path", Stream{Path: "soft"}, ErrExists},
		{"fork of missing parent", Stream{Path: "f1", ParentID: 1 << 40, ForkOffset: "x"}, ErrParentGone},
		{"fork of soft-deleted parent", Stream{Path: "f2", ParentID: soft, ForkOffset: "x"}, ErrParentGone},
		{"unallocated id", Stream{ID: 1 << 40, Path: "u"}, nil},
		{"id in use", Stream{ID: live, Path: "other"}, nil},
		{"empty path", Stream{Path: ""}, nil},
		{"negative ttl", Stream{Path: "n", TTL: -time.Second}, nil},
		{"fork offset without parent", Stream{Path: "o", ForkOffset: "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			if s.ID == 0 {
				id, err := c.AllocateID(ctx)
				if err != nil {
					t.Fatal(err)
				}
				s.ID = id
			}
			s.ContentType = "text/plain"
			err := c.Insert(ctx, s)
			switch {
			case err == nil:
				t.Fatal("Insert succeeded")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Insert = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && (errors.Is(err, ErrExists) || errors.Is(err, ErrParentGone)):
				t.Fatalf("Insert = %v, want a validation error", err)
			}
		})
	}
	// Failed inserts must leave no trace.
	if got := mustGet(t, c, soft).RefCount; got != 1 {
		t.Errorf("soft-deleted parent RefCount = %d, want 1", got)
	}
	if got := mustGet(t, c, live).Path; got != "live" {
		t.Errorf("stream %d path = %q, want live", live, got)
	}
	all, err := c.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(all), []string{"live", "soft", "soft/child"}; !slices.Equal(got, want) {
		t.Errorf("streams = %q, want %q", got, want)
	}
}

func testNotFound(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get = %v, want ErrNotFound", err)
	}
	if _, err := c.GetByID(ctx, 12345); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetByID = %v, want ErrNotFound", err)
	}
	if _, err := c.Delete(ctx, 12345); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete = %v, want ErrNotFound", err)
	}
	if err := c.SetClosed(ctx, 12345); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetClosed = %v, want ErrNotFound", err)
	}
}

func testForkRefCountAndChildren(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	p := create(t, c, Stream{Path: "p"})
	a := create(t, c, Stream{Path: "p/a", ParentID: p, ForkOffset: "o1"})
	b := create(t, c, Stream{Path: "p/b", ParentID: p, ForkOffset: "o2", ForkSubOffset: 3})
	create(t, c, Stream{Path: "p/a/x", ParentID: a, ForkOffset: "o3"})

	if got := mustGet(t, c, p).RefCount; got != 2 {
		t.Errorf("p RefCount = %d, want 2", got)
	}
	if got := mustGet(t, c, a).RefCount; got != 1 {
		t.Errorf("a RefCount = %d, want 1", got)
	}
	kids, err := c.Children(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{a, b}; !slices.Equal(kids, want) {
		t.Errorf("Children(p) = %v, want %v", kids, want)
	}

	// A soft-deleted fork is no longer a live child but still holds the
	// parent.
	if res, err := c.Delete(ctx, a); err != nil || !res.Soft {
		t.Fatalf("Delete(a) = %+v, %v", res, err)
	}
	kids, err = c.Children(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{b}; !slices.Equal(kids, want) {
		t.Errorf("Children(p) after soft delete = %v, want %v", kids, want)
	}
	if got := mustGet(t, c, p).RefCount; got != 2 {
		t.Errorf("p RefCount after soft delete of a fork = %d, want 2", got)
	}
	if kids, err := c.Children(ctx, 1<<40); err != nil || len(kids) != 0 {
		t.Errorf("Children(missing) = %v, %v, want none", kids, err)
	}
}

func testDelete(t *testing.T, open opener) {
	type node struct{ name, parent string }
	type step struct {
		del  string // a name not among the nodes means a missing id
		soft bool
		hard []string
		err  error
	}
	tests := []struct {
		name     string
		nodes    []node
		steps    []step
		live     []string // names left live, all others must be soft or gone
		soft     []string
		refcount map[string]int64
	}{
		{
			name:  "plain hard delete",
			nodes: []node{{"a", ""}, {"b", ""}},
			steps: []step{{del: "a", hard: []string{"a"}}},
			live:  []string{"b"},
		},
		{
			name:     "soft delete with children",
			nodes:    []node{{"p", ""}, {"c", "p"}},
			steps:    []step{{del: "p", soft: true}},
			live:     []string{"c"},
			soft:     []string{"p"},
			refcount: map[string]int64{"p": 1},
		},
		{
			name:  "deleting soft-deleted",
			nodes: []node{{"p", ""}, {"c", "p"}},
			steps: []step{
				{del: "p", soft: true},
				{del: "p", err: ErrSoftDeleted},
			},
			live: []string{"c"},
			soft: []string{"p"},
		},
		{
			name:  "deleting missing and hard-deleted",
			nodes: []node{{"a", ""}},
			steps: []step{
				{del: "nope", err: ErrNotFound},
				{del: "a", hard: []string{"a"}},
				{del: "a", err: ErrNotFound},
			},
		},
		{
			name:     "leaf fork of live parent",
			nodes:    []node{{"p", ""}, {"c", "p"}},
			steps:    []step{{del: "c", hard: []string{"c"}}},
			live:     []string{"p"},
			refcount: map[string]int64{"p": 0},
		},
		{
			name:  "cascade through 3-level chain",
			nodes: []node{{"l0", ""}, {"l1", "l0"}, {"l2", "l1"}},
			steps: []step{
				{del: "l0", soft: true},
				{del: "l1", soft: true},
				{del: "l2", hard: []string{"l2", "l1", "l0"}},
			},
		},
		{
			name:  "middle of chain",
			nodes: []node{{"l0", ""}, {"l1", "l0"}, {"l2", "l1"}},
			steps: []step{
				{del: "l1", soft: true},
				{del: "l2", hard: []string{"l2", "l1"}},
			},
			live:     []string{"l0"},
			refcount: map[string]int64{"l0": 0},
		},
		{
			name:  "cascade waits for the last fork",
			nodes: []node{{"p", ""}, {"a", "p"}, {"b", "p"}},
			steps: []step{
				{del: "p", soft: true},
				{del: "a", hard: []string{"a"}},
				{del: "b", hard: []string{"b", "p"}},
			},
		},
		{
			name:  "cascade stops at ancestor with other forks",
			nodes: []node{{"r", ""}, {"m", "r"}, {"x", "m"}, {"y", "r"}},
			steps: []step{
				{del: "r", soft: true},
				{del: "m", soft: true},
				{del: "x", hard: []string{"x", "m"}},
			},
			live:     []string{"y"},
			soft:     []string{"r"},
			refcount: map[string]int64{"r": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := open(t)
			ids := make(map[string]int64)
			names := make(map[int64]string)
			for _, n := range tt.nodes {
				s := Stream{Path: n.name}
				if n.parent != "" {
					s.ParentID, s.ForkOffset = ids[n.parent], "off"
				}
				ids[n.name] = create(t, c, s)
				names[ids[n.name]] = n.name
			}
			var allHard []int64
			for i, st := range tt.steps {
				id, ok := ids[st.del]
				if !ok {
					id = 1 << 40
				}
				res, err := c.Delete(ctx, id)
				if st.err != nil {
					if !errors.Is(err, st.err) {
						t.Fatalf("step %d: Delete(%s) = %v, want %v", i, st.del, err, st.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: Delete(%s): %v", i, st.del, err)
				}
				var hard []string
				for _, h := range res.HardIDs {
					hard = append(hard, names[h])
				}
				if res.Soft != st.soft || !slices.Equal(hard, st.hard) {
					t.Fatalf("step %d: Delete(%s) = soft %v hard %q, want soft %v hard %q",
						i, st.del, res.Soft, hard, st.soft, st.hard)
				}
				allHard = append(allHard, res.HardIDs...)
			}

			for _, n := range tt.nodes {
				id := ids[n.name]
				s, err := c.GetByID(ctx, id)
				switch {
				case slices.Contains(tt.live, n.name):
					if err != nil || !s.DeletedAt.IsZero() {
						t.Errorf("%s: got %+v, %v, want live", n.name, s, err)
					}
				case slices.Contains(tt.soft, n.name):
					if err != nil || s.DeletedAt.IsZero() {
						t.Errorf("%s: got %+v, %v, want soft-deleted", n.name, s, err)
					}
					// A soft-deleted path stays occupied.
					if _, err := c.Get(ctx, n.name); err != nil {
						t.Errorf("Get(%s): %v", n.name, err)
					}
				default:
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("%s: GetByID = %+v, %v, want ErrNotFound", n.name, s, err)
					}
					if _, err := c.Get(ctx, n.name); !errors.Is(err, ErrNotFound) {
						t.Errorf("Get(%s) = %v, want ErrNotFound", n.name, err)
					}
				}
				if want, ok := tt.refcount[n.name]; ok && s.RefCount != want {
					t.Errorf("%s: RefCount = %d, want %d", n.name, s.RefCount, want)
				}
			}

			pending, err := c.PendingGC(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(pending)
			slices.Sort(allHard)
			if !slices.Equal(pending, allHard) {
				t.Errorf("PendingGC = %v, want %v", pending, allHard)
			}
		})
	}
}

func testPathReusableAfterHardDelete(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	old := create(t, c, Stream{Path: "reuse", ContentType: "text/plain"})
	if _, err := c.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	fresh := create(t, c, Stream{Path: "reuse", ContentType: "application/json"})
	if fresh == old {
		t.Fatalf("re-created stream got the old id %d", old)
	}
	s, err := c.Get(ctx, "reuse")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != fresh || s.ContentType != "application/json" {
		t.Errorf("Get = %+v, want id %d application/json", s, fresh)
	}
	pending, err := c.PendingGC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pending, []int64{old}) {
		t.Errorf("PendingGC = %v, want [%d]", pending, old)
	}
}

func TestAllocateIDUniqueAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	seen := make(map[int64]bool)
	// Counts cross the block size, so later opens start new blocks both
	// with and without having used up the previous one.
	for round, n := range []int{3, idBlock + 5, idBlock, 1} {
		c, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			id, err := c.AllocateID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id <= 0 || seen[id] {
				t.Fatalf("round %d: AllocateID = %d, positive and unused expected", round, id)
			}
			seen[id] = true
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func testAllocateIDConcurrent(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	const workers, each = 8, 400
	var mu sync.Mutex
	seen := make(map[int64]bool)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				id, err := c.AllocateID(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("got %d ids, want %d", len(seen), workers*each)
	}
}

func TestDeadline(t *testing.T) {
	tests := []struct {
		name string
		s    Stream
		want time.Time
		ok   bool
	}{
		{"none", Stream{LastAccess: t0}, time.Time{}, false},
		{"ttl", Stream{LastAccess: t0, TTL: time.Minute}, t0.Add(time.Minute), true},
		{"absolute", Stream{LastAccess: t0, ExpiresAt: t0.Add(time.Hour)}, t0.Add(time.Hour), true},
		{"ttl earlier", Stream{LastAccess: t0, TTL: time.Minute, ExpiresAt: t0.Add(time.Hour)}, t0.Add(time.Minute), true},
		{"absolute earlier", Stream{LastAccess: t0, TTL: 2 * time.Hour, ExpiresAt: t0.Add(time.Hour)}, t0.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.s.Deadline()
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("Deadline() = %v, %v, want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// dbDeadline reads the stored deadline column, which Expired relies on.
func dbDeadline(t *testing.T, c *Catalog, id int64) (int64, bool) {
	t.Helper()
	var d *int64
	if err := c.db.QueryRow("SELECT deadline FROM streams WHERE id = ?", id).Scan(&d); err != nil {
		t.Fatal(err)
	}
	if d == nil {
		return 0, false
	}
	return *d, true
}

func testTouchMany(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	ttl := create(t, c, Stream{Path: "ttl", TTL: time.Minute, LastAccess: t0})
	both := create(t, c, Stream{Path: "both", TTL: time.Minute, ExpiresAt: t0.Add(5 * time.Minute), LastAccess: t0})
	abs := create(t, c, Stream{Path: "abs", ExpiresAt: t0.Add(time.Hour), LastAccess: t0})
	none := create(t, c, Stream{Path: "none", LastAccess: t0})

	tests := []struct {
		name       string
		access     map[int64]time.Time
		lastAccess map[int64]time.Time
		deadline   map[int64]time.Time // missing = no deadline
	}{
		{
			name:       "initial",
			lastAccess: map[int64]time.Time{ttl: t0, both: t0, abs: t0, none: t0},
			deadline:   map[int64]time.Time{ttl: t0.Add(time.Minute), both: t0.Add(time.Minute), abs: t0.Add(time.Hour)},
		},
		{
			name:       "touch all and a missing id",
			access:     map[int64]time.Time{ttl: t0.Add(10 * time.Minute), both: t0.Add(2 * time.Minute), abs: t0.Add(time.Minute), none: t0.Add(time.Minute), 1 << 40: t0},
			lastAccess: map[int64]time.Time{ttl: t0.Add(10 * time.Minute), both: t0.Add(2 * time.Minute), abs: t0.Add(time.Minute), none: t0.Add(time.Minute)},
			deadline:   map[int64]time.Time{ttl: t0.Add(11 * time.Minute), both: t0.Add(3 * time.Minute), abs: t0.Add(time.Hour)},
		},
		{
			name:       "absolute expiry caps the sliding one",
			access:     map[int64]time.Time{both: t0.Add(30 * time.Minute)},
			lastAccess: map[int64]time.Time{both: t0.Add(30 * time.Minute)},
			deadline:   map[int64]time.Time{ttl: t0.Add(11 * time.Minute), both: t0.Add(5 * time.Minute), abs: t0.Add(time.Hour)},
		},
		{
			name:       "older access is ignored",
			access:     map[int64]time.Time{ttl: t0.Add(time.Minute)},
			lastAccess: map[int64]time.Time{ttl: t0.Add(10 * time.Minute)},
			deadline:   map[int64]time.Time{ttl: t0.Add(11 * time.Minute), both: t0.Add(5 * time.Minute), abs: t0.Add(time.Hour)},
		},
		{
			name:     "empty batch",
			access:   map[int64]time.Time{},
			deadline: map[int64]time.Time{ttl: t0.Add(11 * time.Minute), both: t0.Add(5 * time.Minute), abs: t0.Add(time.Hour)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.access != nil {
				if err := c.TouchMany(ctx, tt.access); err != nil {
					t.Fatalf("TouchMany: %v", err)
				}
			}
			for id, want := range tt.lastAccess {
				if got := mustGet(t, c, id).LastAccess; !got.Equal(want) {
					t.Errorf("stream %d: LastAccess = %v, want %v", id, got, want)
				}
			}
			for _, id := range []int64{ttl, both, abs, none} {
				want, wantOK := tt.deadline[id]
				got, ok := mustGet(t, c, id).Deadline()
				if ok != wantOK || !got.Equal(want) {
					t.Errorf("stream %d: Deadline() = %v, %v, want %v, %v", id, got, ok, want, wantOK)
				}
				stored, ok := dbDeadline(t, c, id)
				if ok != wantOK || (ok && stored != want.UnixMilli()) {
					t.Errorf("stream %d: deadline column = %d, %v, want %d, %v", id, stored, ok, want.UnixMilli(), wantOK)
				}
			}
		})
	}
}

func testExpired(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	// Inserted out of deadline order so that ordering is not insertion order.
	create(t, c, Stream{Path: "d30", ExpiresAt: t0.Add(30 * time.Second)})
	create(t, c, Stream{Path: "d10", TTL: 10 * time.Second, LastAccess: t0})
	create(t, c, Stream{Path: "d20", TTL: time.Hour, LastAccess: t0, ExpiresAt: t0.Add(20 * time.Second)})
	create(t, c, Stream{Path: "never", LastAccess: t0})
	create(t, c, Stream{Path: "d60", TTL: time.Minute, LastAccess: t0})
	soft := create(t, c, Stream{Path: "soft", TTL: time.Second, LastAccess: t0})
	create(t, c, Stream{Path: "soft/fork", ParentID: soft, ForkOffset: "o", ExpiresAt: t0.Add(15 * time.Second)})
	if res, err := c.Delete(ctx, soft); err != nil || !res.Soft {
		t.Fatalf("Delete(soft) = %+v, %v", res, err)
	}

	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"nothing yet", t0.Add(9 * time.Second), 10, nil},
		{"deadline is inclusive", t0.Add(10 * time.Second), 10, []string{"d10"}},
		{"ordered by deadline", t0.Add(30 * time.Second), 10, []string{"d10", "soft/fork", "d20", "d30"}},
		{"limit", t0.Add(time.Hour), 2, []string{"d10", "soft/fork"}},
		{"no limit", t0.Add(time.Hour), 0, []string{"d10", "soft/fork", "d20", "d30", "d60"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := c.ExpiredFor(ctx, "", tt.now, ExpiryCursor{}, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths(got), tt.want) {
				t.Errorf("ExpiredFor(no node, from the start) = %q, want %q", paths(got), tt.want)
			}
		})
	}
}

// testExpiredFor: a node's sweeper pages through the expired streams it
// may expire (its own leases, expired ones included, and streams no node
// holds) and never sees another node's, however many come first.
func testExpiredFor(t *testing.T, open opener) {
	ctx := context.Background()
	c, clock := openClocked(t, open)
	lease := func(id int64, node string) {
		t.Helper()
		if _, err := c.AcquireLease(ctx, id, node, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Three of b's come first (the sweeper of a saw only such rows when
	// it read the first rows cluster-wide), then a's, a free one, a
	// released one, and b's again.
	var want []string
	for i := range 9 {
		path := fmt.Sprintf("s%d", i)
		id := create(t, c, Stream{Path: path, ExpiresAt: t0.Add(time.Duration(1+i/2) * time.Second)})
		switch i {
		case 0, 1, 2, 8:
			lease(id, "b")
			continue
		case 3, 4:
			lease(id, "a")
		case 6:
			lease(id, "b")
			l, err := c.GetLease(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ReleaseLease(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, path)
	}
	*clock = t0.Add(time.Minute) // every lease expired: a's stay a's
	now := t0.Add(time.Hour)

	var got []string
	var cur ExpiryCursor
	for page := 0; ; page++ {
		rows, next, err := c.ExpiredFor(ctx, "a", now, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			if next != cur {
				t.Errorf("cursor after an empty page = %+v, want it unchanged %+v", next, cur)
			}
			break
		}
		if page > 5 {
			t.Fatal("ExpiredFor pages do not end")
		}
		got = append(got, paths(rows)...)
		cur = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("ExpiredFor(a) pages = %q, want %q", got, want)
	}
	all, _, err := c.ExpiredFor(ctx, "", now, ExpiryCursor{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 9 {
		t.Errorf("ExpiredFor without a node = %q, want all 9", paths(all))
	}
	if rows, _, err := c.ExpiredFor(ctx, "a", t0.Add(2*time.Second), ExpiryCursor{}, 0); err != nil || !slices.Equal(paths(rows), []string{"s3"}) {
		t.Errorf("ExpiredFor(a) at t0+2s = %q, %v; want [s3]", paths(rows), err)
	}
}

func TestExpiredUsesIndex(t *testing.T) {
	c, _ := openTemp(t)
	for _, tc := range []struct {
		name  string
		node  string
		after ExpiryCursor
	}{
		{"one node, first page", "", ExpiryCursor{}},
		{"a cluster node, later page", "n1", ExpiryCursor{Deadline: t0, ID: 7}},
	} {
		q, args := expiredQuery(tc.node, t0, tc.after, 10)
		rows, err := c.db.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, "streams_deadline") || strings.Contains(joined, "TEMP B-TREE") {
			t.Errorf("%s: query plan = %q, want a scan of streams_deadline without sorting", tc.name, joined)
		}
	}
}

func testList(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	all := []string{
		"a", "a%b/1", "a%b/2", "a%c", "a_b/1", "aab/1", "axb/1", "a\u00bfx", "a\u00c0", "b", "b/1",
	}
	for _, p := range all {
		create(t, c, Stream{Path: p})
	}
	parent := create(t, c, Stream{Path: "a%b/soft"})
	create(t, c, Stream{Path: "z/fork", ParentID: parent, ForkOffset: "o"})
	if _, err := c.Delete(ctx, parent); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		prefix, after string
		limit         int
		want          []string
	}{
		{"percent is literal", "a%b/", "", 0, []string{"a%b/1", "a%b/2", "a%b/soft"}},
		{"percent alone", "a%", "", 0, []string{"a%b/1", "a%b/2", "a%b/soft", "a%c"}},
		{"underscore is literal", "a_", "", 0, []string{"a_b/1"}},
		{"prefix equal to a path", "b", "", 0, []string{"b", "b/1"}},
		{"empty prefix", "", "", 0, append(slices.Clone(all[:3]), "a%b/soft", "a%c", "a_b/1", "aab/1", "axb/1", "a\u00bfx", "a\u00c0", "b", "b/1", "z/fork")},
		{"multibyte prefix end", "a\u00bf", "", 0, []string{"a\u00bfx"}},
		{"no match", "q", "", 0, nil},
		{"page 1", "a%", "", 2, []string{"a%b/1", "a%b/2"}},
		{"page 2", "a%", "a%b/2", 2, []string{"a%b/soft", "a%c"}},
		{"page 3", "a%", "a%c", 2, nil},
		{"after before prefix", "b", "a", 0, []string{"b", "b/1"}},
		{"after equal to prefix", "b", "b", 0, []string{"b/1"}},
		{"after beyond prefix", "a%", "b", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.List(ctx, tt.prefix, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths(got), tt.want) {
				t.Errorf("List(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, paths(got), tt.want)
			}
		})
	}
	// Soft-deleted rows are listed and say so.
	got, err := c.List(ctx, "a%b/s", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DeletedAt.IsZero() {
		t.Errorf("List soft-deleted = %+v", got)
	}
}

func testListLive(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	for _, p := range []string{"a/1", "a/2", "a/3", "a/4", "b/1"} {
		create(t, c, Stream{Path: p})
	}
	soft := create(t, c, Stream{Path: "a/2x"})
	create(t, c, Stream{Path: "z", ParentID: soft, ForkOffset: "o"})
	hard := create(t, c, Stream{Path: "a/5"})
	for _, id := range []int64{soft, hard} {
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"a/", "", 0, []string{"a/1", "a/2", "a/3", "a/4"}},
		{"a/", "", 3, []string{"a/1", "a/2", "a/3"}},
		{"a/", "a/2", 3, []string{"a/3", "a/4"}},
		{"", "a/4", 0, []string{"b/1", "z"}},
	}
	for _, tt := range tests {
		got, err := c.ListLive(ctx, tt.prefix, tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(paths(got), tt.want) {
			t.Errorf("ListLive(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, paths(got), tt.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	checkPrefixEnd(t, "prefixEnd", prefixEnd, []prefixEndCase{
		{"", "", false},
		{"a", "b", true},
		{"a/", "a0", true},
		{"a\xff", "b", true},
		{"\xff\xff", "", false},
		{"a\u00bf", "a\xc2\xc0", true},
	})
}

type prefixEndCase struct {
	prefix, want string
	ok           bool
}

func checkPrefixEnd(t *testing.T, name string, fn func(string) (string, bool), tests []prefixEndCase) {
	t.Helper()
	for _, tt := range tests {
		got, ok := fn(tt.prefix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s(%q) = %q, %v, want %q, %v", name, tt.prefix, got, ok, tt.want, tt.ok)
		}
	}
}

func testSetClosed(t *testing.T, openCatalog opener) {
	ctx := context.Background()
	c := openCatalog(t)
	open := create(t, c, Stream{Path: "open"})
	soft := create(t, c, Stream{Path: "soft"})
	create(t, c, Stream{Path: "fork", ParentID: soft, ForkOffset: "o"})
	if _, err := c.Delete(ctx, soft); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      int64
		wantErr error
	}{
		{"close", open, nil},
		{"close again", open, nil},
		{"soft-deleted", soft, ErrSoftDeleted},
		{"missing", 1 << 40, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SetClosed(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SetClosed = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !mustGet(t, c, tt.id).Closed {
				t.Error("stream not closed")
			}
		})
	}
}

func testGCQueue(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	var ids []int64
	for i, p := range []string{"a", "b", "c"} {
		c.now = func() time.Time { return t0.Add(time.Duration(i) * time.Second) }
		id := create(t, c, Stream{Path: p})
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if got, err := c.PendingGC(ctx, 2); err != nil || !slices.Equal(got, ids[:2]) {
		t.Errorf("PendingGC(2) = %v, %v, want %v", got, err, ids[:2])
	}
	if err := c.DoneGC(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.DoneGC(ctx, ids[0]); err != nil {
		t.Errorf("repeated DoneGC: %v", err)
	}
	if got, err := c.PendingGC(ctx, 0); err != nil || !slices.Equal(got, ids[1:]) {
		t.Errorf("PendingGC(0) = %v, %v, want %v", got, err, ids[1:])
	}
}

func TestOpenSettings(t *testing.T) {
	c, _ := openTemp(t)
	for _, p := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	} {
		var got string
		if err := c.db.QueryRow("PRAGMA " + p.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != p.want {
			t.Errorf("PRAGMA %s = %q, want %q", p.pragma, got, p.want)
		}
	}
}

func TestReopenKeepsDataAndMigrations(t *testing.T) {
	ctx := context.Background()
	c, path := openTemp(t)
	id := create(t, c, Stream{Path: "keep", TTL: time.Minute})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c2, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var n int
		if err := c2.db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations.Versions()) {
			t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations.Versions()))
		}
		if s, err := c2.Get(ctx, "keep"); err != nil || s.ID != id {
			t.Errorf("Get after reopen = %+v, %v", s, err)
		}
		c2.Close()
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	c, path := openTemp(t)
	if _, err := c.db.Exec("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c2, err := Open(ctx, path); !errors.Is(err, migrations.ErrNewerSchema) {
		if err == nil {
			c2.Close()
		}
		t.Fatalf("Open = %v, want ErrNewerSchema", err)
	}
}

func testCanceledContext(t *testing.T, open opener) {
	c := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.AllocateID(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("AllocateID = %v, want context.Canceled", err)
	}
	if err := c.TouchMany(ctx, map[int64]time.Time{1: t0}); !errors.Is(err, context.Canceled) {
		t.Errorf("TouchMany = %v, want context.Canceled", err)
	}
}
