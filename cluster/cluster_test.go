package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/sequencer"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// backends open an empty catalog of each kind, closed when the test ends.
var backends = []struct {
	name string
	open func(t *testing.T) func(t *testing.T) *catalog.Catalog
}{
	{"sqlite", func(*testing.T) func(t *testing.T) *catalog.Catalog {
		return func(t *testing.T) *catalog.Catalog {
			c, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
	}},
	{"postgres", func(t *testing.T) func(t *testing.T) *catalog.Catalog {
		srv := pgtest.Start(t)
		return func(t *testing.T) *catalog.Catalog { return openPostgres(t, srv.NewDatabase(t)) }
	}},
}

func openPostgres(t *testing.T, dsn string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fakeClock is a monotonic clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// flakyStore is a catalog that stops answering while down: every call
// hangs until its context ends, as across a network partition.
type flakyStore struct {
	*catalog.Catalog
	down atomic.Bool
}

func (f *flakyStore) wait(ctx context.Context) error {
	if !f.down.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *flakyStore) RenewLeases(ctx context.Context, node string, ttl time.Duration) ([]catalog.Lease, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.Catalog.RenewLeases(ctx, node, ttl)
}

func (f *flakyStore) ClaimLease(ctx context.Context, stream int64, node string, ttl time.Duration) (catalog.Lease, error) {
	if err := f.wait(ctx); err != nil {
		return catalog.Lease{}, err
	}
	return f.Catalog.ClaimLease(ctx, stream, node, ttl)
}

func (f *flakyStore) Heartbeat(ctx context.Context, id string) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.Catalog.Heartbeat(ctx, id)
}

// shortCtx is the context of one attempt against a store that may hang.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func createStream(t *testing.T, cat *catalog.Catalog, path string) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := cat.AllocateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Insert(ctx, catalog.Stream{ID: id, Path: path, ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestFencing drives one node's leases with a fake clock and a catalog
// that stops answering: writes stop at the lease's deadline minus the
// margin, resume when a renewal succeeds with the lease still its own,
// and end for good once the lease has passed on.
func TestFencing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testFencing(t, b.open(t)(t)) })
	}
}

func testFencing(t *testing.T, cat *catalog.Catalog) {
	ctx := t.Context()
	clock := &fakeClock{now: time.Now()}
	st := &flakyStore{Catalog: cat}
	cfg := Config{Catalog: cat, NodeID: "a", AdvertiseURL: "http://a", Heartbeat: time.Second, TTL: 5 * time.Second,
		Margin: time.Second, Logger: quiet(), Now: clock.Now}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	c := newCluster(cfg, st)
	if err := st.RegisterNode(ctx, "a", "http://a"); err != nil {
		t.Fatal(err)
	}
	id := createStream(t, cat, "s")
	if err := c.Check(id); !errors.Is(err, sequencer.ErrNotOwner) {
		t.Errorf("Check before Acquire = %v, want ErrNotOwner", err)
	}
	if err := c.Acquire(ctx, id); err != nil {
		t.Fatal(err)
	}
	epoch := wantHolder(t, c, id, 0)

	// The claim at 0 allows writes until TTL - margin = 4s.
	clock.advance(3999 * time.Millisecond)
	if err := c.Check(id); err != nil {
		t.Errorf("Check just before the deadline = %v", err)
	}
	clock.advance(time.Millisecond)
	if err := c.Check(id); !errors.Is(err, ErrFenced) {
		t.Errorf("Check at the deadline = %v, want ErrFenced", err)
	}
	clock.advance(500 * time.Millisecond)
	if err := c.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(id); err != nil {
		t.Errorf("Check after a renewal = %v", err)
	}

	// The catalog stops answering at 4.5s: writes stop at 8.5s.
	st.down.Store(true)
	if err := c.tick(shortCtx(t)); err == nil {
		t.Fatal("tick against a catalog that does not answer succeeded")
	}
	clock.advance(3999 * time.Millisecond)
	if err := c.Check(id); err != nil {
		t.Errorf("Check before the deadline while renewals fail = %v", err)
	}
	clock.advance(time.Millisecond)
	if err := c.Check(id); !errors.Is(err, ErrFenced) {
		t.Errorf("Check at the deadline while renewals fail = %v, want ErrFenced", err)
	}
	if err := c.Acquire(shortCtx(t), id); err == nil {
		t.Error("Acquire while fenced and the catalog does not answer succeeded")
	}

	// It answers again and the lease is still ours: writes resume at the
	// same epoch.
	st.down.Store(false)
	if err := c.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(id); err != nil {
		t.Errorf("Check after renewals work again = %v", err)
	}
	wantHolder(t, c, id, epoch)

	// The lease passes on (here: released and claimed by b); the next
	// renewal does not return it, and a is done with the stream.
	if err := cat.ReleaseLease(ctx, catalog.Lease{StreamID: id, Node: "a", Epoch: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.ClaimLease(ctx, id, "b", time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Millisecond)
	if err := c.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(id); !errors.Is(err, sequencer.ErrNotOwner) {
		t.Errorf("Check after the lease passed on = %v, want ErrNotOwner", err)
	}
	if _, ok := c.holder(id); ok {
		t.Error("segment writes still guarded by the lost lease")
	}
	if err := c.Acquire(ctx, id); !errors.Is(err, sequencer.ErrNotOwner) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Acquire of a lease b holds, b not live = %v, want ErrNotOwner and ErrUnavailable", err)
	}
	// The refusal is remembered for a heartbeat: requests for the stream
	// do not each cost a catalog write.
	st.down.Store(true)
	if err := c.Acquire(shortCtx(t), id); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Acquire again within a heartbeat = %v, want the remembered refusal", err)
	}
	clock.advance(time.Second)
	if err := c.Acquire(shortCtx(t), id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire a heartbeat later, the catalog down = %v, want it to ask the catalog again", err)
	}
}

// wantHolder checks that c holds id's lease, at epoch unless it is 0,
// and returns the epoch.
func wantHolder(t *testing.T, c *Cluster, id, epoch int64) int64 {
	t.Helper()
	h, ok := c.holder(id)
	if !ok || h.Node != c.cfg.NodeID || (epoch != 0 && h.Epoch != epoch) {
		t.Fatalf("holder(%d) = %+v, %v; want node %s at epoch %d", id, h, ok, c.cfg.NodeID, epoch)
	}
	return h.Epoch
}

// testConfig is a node with a short heartbeat, for tests on real time.
// testConfig is a node of the real-clock tests. Its TTL leaves room for
// a loaded machine: with 500 ms, heartbeats delayed by 15-20 runnable
// processes on 2 cores (-race) let leases lapse mid-test.
func testConfig(cat *catalog.Catalog, node string) Config {
	return Config{Catalog: cat, NodeID: node, AdvertiseURL: "http://" + node, Heartbeat: 100 * time.Millisecond,
		TTL: 2 * time.Second, Margin: 400 * time.Millisecond, Logger: quiet()}
}

func startNode(t *testing.T, cat *catalog.Catalog, node string) *Cluster {
	t.Helper()
	c, err := New(t.Context(), testConfig(cat, node))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestOwnership runs two nodes on one PostgreSQL database: each stream is
// owned by exactly one of them, placed by rendezvous; a dead node's
// streams are unavailable elsewhere unless it released them clean; it
// takes its streams back when it returns.
func TestOwnership(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	catA, catB := openPostgres(t, dsn), openPostgres(t, dsn)
	a, b := startNode(t, catA, "a"), startNode(t, catB, "b")
	nodes := map[string]*Cluster{"a": a, "b": b}
	ctx := t.Context()
	waitFor(t, "both nodes live on both", func() bool { return len(a.LiveNodes()) == 2 && len(b.LiveNodes()) == 2 })

	const streams = 40
	ids := map[string]int64{}
	owner := map[string]string{}
	for i := range streams {
		path := fmt.Sprintf("s/%d", i)
		oa, err := a.OwnerOf(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		ob, err := b.OwnerOf(ctx, path)
		if err != nil || ob.NodeID != oa.NodeID || oa.Self == ob.Self || oa.NodeID != place(path, []string{"a", "b"}) {
			t.Fatalf("OwnerOf(%q) = %+v on a, %+v, %v on b; want one rendezvous choice", path, oa, ob, err)
		}
		ids[path] = createStream(t, catA, path)
		owner[path] = oa.NodeID
		other := map[string]string{"a": "b", "b": "a"}[oa.NodeID]
		if err := nodes[oa.NodeID].Acquire(ctx, ids[path]); err != nil {
			t.Fatalf("owner %s: Acquire(%q) = %v", oa.NodeID, path, err)
		}
		if err := nodes[other].Acquire(ctx, ids[path]); !errors.Is(err, sequencer.ErrNotOwner) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: Acquire(%q) owned by live %s = %v, want ErrNotOwner only", other, path, oa.NodeID, err)
		}
	}
	var ofB []string
	for p, n := range owner {
		if n == "b" {
			ofB = append(ofB, p)
		}
	}
	if len(ofB) == 0 || len(ofB) == streams {
		t.Fatalf("b owns %d of %d streams; want a share", len(ofB), streams)
	}

	// b hands one stream off clean, then dies.
	handed := ofB[0]
	if err := b.Release(ctx, ids[handed], true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitFor(t, "b to be dead for a", func() bool { return len(a.LiveNodes()) == 1 })
	for _, p := range ofB[1:] {
		if _, err := a.OwnerOf(ctx, p); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("OwnerOf(%q) of dead b = %v, want ErrUnavailable", p, err)
		}
		if err := a.Acquire(ctx, ids[p]); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Acquire(%q) of dead b = %v, want ErrUnavailable", p, err)
		}
	}
	if o, err := a.OwnerOf(ctx, handed); err != nil || !o.Self {
		t.Fatalf("OwnerOf(%q) released clean = %+v, %v; want a, the only live node", handed, o, err)
	}
	if err := a.Acquire(ctx, ids[handed]); err != nil {
		t.Fatalf("Acquire of a stream released clean: %v", err)
	}

	// b returns (same node id): its streams are its own again.
	b = startNode(t, catB, "b")
	waitFor(t, "b live again for a", func() bool { return len(a.LiveNodes()) == 2 })
	for _, p := range ofB[1:] {
		if err := b.Acquire(ctx, ids[p]); err != nil {
			t.Fatalf("returning b: Acquire(%q) = %v", p, err)
		}
		// a may still hold its answer of b's absence for a heartbeat.
		waitFor(t, fmt.Sprintf("OwnerOf(%q) on a to name the returned b", p), func() bool {
			o, err := a.OwnerOf(ctx, p)
			return err == nil && o.NodeID == "b" && o.URL == "http://b"
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkCheck is the fence check on every commit's path, with many
// leases held and every core checking at once.
func BenchmarkCheck(b *testing.B) {
	cfg := Config{Catalog: &catalog.Catalog{}, NodeID: "a", AdvertiseURL: "http://a", Logger: quiet()}
	if err := cfg.setDefaults(); err != nil {
		b.Fatal(err)
	}
	c := newCluster(cfg, nil)
	const leases = 100000
	for id := range int64(leases) {
		c.leases.store(id, &held{epoch: 1})
	}
	c.deadline.Store(int64(time.Hour))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := int64(0)
		for pb.Next() {
			if err := c.Check(id % leases); err != nil {
				b.Fatal(err)
			}
			id += 7919
		}
	})
}

// TestLeave checks that a node leaving the members (before its drain) is
// no longer placed on by the others, nor by itself, while it keeps
// renewing the leases it still holds.
func TestLeave(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			cat := open(t)
			a, b := startNode(t, cat, "a"), startNode(t, cat, "b")
			ctx := t.Context()
			waitFor(t, "both nodes live on both", func() bool { return len(a.LiveNodes()) == 2 && len(b.LiveNodes()) == 2 })
			id := createStream(t, cat, "held/by/b")
			if err := b.Acquire(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := b.Leave(ctx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b gone from a's members", func() bool { return len(a.LiveNodes()) == 1 })
			for i := range 50 {
				path := fmt.Sprintf("new/%d", i)
				for _, n := range []*Cluster{a, b} {
					if o, err := n.OwnerOf(ctx, path); err != nil || o.NodeID != "a" {
						t.Fatalf("%s: OwnerOf(%q) = %+v, %v; want a: b left", n.NodeID(), path, o, err)
					}
				}
			}
			// b still renews what it holds: writes stay allowed past the
			// lease time.
			time.Sleep(2 * testConfig(cat, "b").TTL)
			if err := b.Check(id); err != nil {
				t.Fatalf("b after leaving: Check = %v, want its lease renewed", err)
			}
		})
	}
}

// TestOwnerOfPlacedHereCreatedElsewhere: a path placed on a while it had
// no stream, then created on b (b still saw it as its own, e.g. through an
// older lease of the path's expired stream), is b's for a at once, not
// after a's cached answer ages: serving it on a would fail to claim the
// lease b holds.
func TestOwnerOfPlacedHereCreatedElsewhere(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	catA, catB := openPostgres(t, dsn), openPostgres(t, dsn)
	a, b := startNode(t, catA, "a"), startNode(t, catB, "b")
	ctx := t.Context()
	waitFor(t, "both nodes live on both", func() bool { return len(a.LiveNodes()) == 2 && len(b.LiveNodes()) == 2 })

	var path string
	for i := 0; path == ""; i++ {
		if p := fmt.Sprintf("s/%d", i); place(p, []string{"a", "b"}) == "a" {
			path = p
		}
	}
	if o, err := a.OwnerOf(ctx, path); err != nil || !o.Self {
		t.Fatalf("a: OwnerOf(%q) without a stream = %+v, %v; want a", path, o, err)
	}
	id := createStream(t, catB, path)
	if err := b.Acquire(ctx, id); err != nil {
		t.Fatalf("b: Acquire(%q) = %v", path, err)
	}
	if o, err := a.OwnerOf(ctx, path); err != nil || o.NodeID != "b" {
		t.Fatalf("a: OwnerOf(%q) created and leased on b = %+v, %v; want b", path, o, err)
	}
}
