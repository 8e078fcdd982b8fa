package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

func testNodes(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	clock := t0
	c.now = func() time.Time { return clock }
	if err := c.Heartbeat(ctx, "n1"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Heartbeat of an unregistered node = %v, want ErrUnknownNode", err)
	}
	for _, n := range []string{"n2", "n1"} {
		if err := c.RegisterNode(ctx, n, "http://"+n+":4437"); err != nil {
			t.Fatal(err)
		}
	}
	clock = t0.Add(10 * time.Second)
	if err := c.Heartbeat(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	all, err := c.Nodes(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{ID: "n1", AdvertiseURL: "http://n1:4437", StartedAt: t0, HeartbeatAt: t0.Add(10 * time.Second)},
		{ID: "n2", AdvertiseURL: "http://n2:4437", StartedAt: t0, HeartbeatAt: t0},
	}
	if !slices.EqualFunc(all, want, sameNode) {
		t.Errorf("Nodes = %+v, want %+v", all, want)
	}
	if live, err := c.Nodes(ctx, t0.Add(5*time.Second)); err != nil || len(live) != 1 || live[0].ID != "n1" {
		t.Errorf("Nodes(since) = %+v, %v, want n1 only", live, err)
	}
	// Registering again is a restart: a new start time and address.
	if err := c.RegisterNode(ctx, "n2", "http://n2b:4437"); err != nil {
		t.Fatal(err)
	}
	clock = t0.Add(time.Minute)
	if err := c.Heartbeat(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	gone, err := c.ExpireNodes(ctx, t0.Add(30*time.Second))
	if err != nil || !slices.Equal(gone, []string{"n2"}) {
		t.Errorf("ExpireNodes = %v, %v, want [n2]", gone, err)
	}
	if err := c.Heartbeat(ctx, "n2"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Heartbeat of an expired node = %v, want ErrUnknownNode", err)
	}
}

func sameNode(a, b Node) bool {
	return a.ID == b.ID && a.AdvertiseURL == b.AdvertiseURL && a.StartedAt.Equal(b.StartedAt) && a.HeartbeatAt.Equal(b.HeartbeatAt)
}

func testLeases(t *testing.T, open opener) {
	ctx := context.Background()
	c, clock := openClocked(t, open)
	const ttl = 10 * time.Second
	id := create(t, c, Stream{Path: "leased"})

	if _, err := c.GetLease(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLease before any acquire = %v, want ErrNotFound", err)
	}
	a, err := c.AcquireLease(ctx, id, "a", ttl)
	if err != nil || a.Epoch != 1 || a.Node != "a" || !a.ExpiresAt.Equal(t0.Add(ttl)) {
		t.Fatalf("first AcquireLease = %+v, %v, want epoch 1 for a until t0+ttl", a, err)
	}
	if held, err := c.AcquireLease(ctx, id, "b", ttl); !errors.Is(err, ErrLeaseHeld) || held.Node != "a" || held.Epoch != 1 {
		t.Errorf("AcquireLease by b while a holds = %+v, %v, want ErrLeaseHeld with a's lease", held, err)
	}
	*clock = t0.Add(5 * time.Second)
	if again, err := c.AcquireLease(ctx, id, "a", ttl); err != nil || again.Epoch != 1 || !again.ExpiresAt.Equal(clock.Add(ttl)) {
		t.Errorf("AcquireLease by the holder = %+v, %v, want a renewal at epoch 1", again, err)
	}
	a, err = c.RenewLease(ctx, a, ttl)
	if err != nil || a.Epoch != 1 || !a.ExpiresAt.Equal(clock.Add(ttl)) {
		t.Errorf("RenewLease = %+v, %v", a, err)
	}

	// a stops renewing; once the lease expired, b takes it with a new epoch
	// and a is fenced off.
	*clock = a.ExpiresAt
	if _, err := c.RenewLease(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("RenewLease at expiry = %v, want ErrLeaseLost", err)
	}
	b, err := c.AcquireLease(ctx, id, "b", ttl)
	if err != nil || b.Epoch != 2 || b.Node != "b" {
		t.Fatalf("AcquireLease after expiry = %+v, %v, want epoch 2 for b", b, err)
	}
	if err := c.ReleaseLease(ctx, a); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("ReleaseLease with the old epoch = %v, want ErrLeaseLost", err)
	}
	if got, err := c.GetLease(ctx, id); err != nil || got != b {
		t.Errorf("GetLease = %+v, %v, want %+v", got, err, b)
	}

	// A released lease is free at once, and its epoch still grows.
	if err := c.ReleaseLease(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RenewLease(ctx, b, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("RenewLease after release = %v, want ErrLeaseLost", err)
	}
	a, err = c.AcquireLease(ctx, id, "a", ttl)
	if err != nil || a.Epoch != 3 {
		t.Errorf("AcquireLease after release = %+v, %v, want epoch 3", a, err)
	}

	// The lease goes with the stream once it is collected.
	if _, err := c.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.DoneGC(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLease(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLease after GC = %v, want ErrNotFound", err)
	}
}

func testClaimLease(t *testing.T, open opener) {
	ctx := context.Background()
	c, clock := openClocked(t, open)
	const ttl = 10 * time.Second
	id := create(t, c, Stream{Path: "claimed"})

	a, err := c.ClaimLease(ctx, id, "a", ttl)
	if err != nil || a.Epoch != 1 || a.Node != "a" {
		t.Fatalf("ClaimLease of a new lease = %+v, %v, want epoch 1 for a", a, err)
	}
	// An expired lease stays its holder's: its unsealed data is there.
	*clock = a.ExpiresAt.Add(time.Minute)
	if held, err := c.ClaimLease(ctx, id, "b", ttl); !errors.Is(err, ErrLeaseHeld) || held.Node != "a" || held.Epoch != 1 {
		t.Errorf("ClaimLease by b of a's expired lease = %+v, %v, want ErrLeaseHeld with a's lease", held, err)
	}
	// Its holder takes it back with a new epoch; a live one it renews.
	if a, err = c.ClaimLease(ctx, id, "a", ttl); err != nil || a.Epoch != 2 || !a.ExpiresAt.Equal(clock.Add(ttl)) {
		t.Fatalf("ClaimLease of its own expired lease = %+v, %v, want epoch 2", a, err)
	}
	if a, err = c.ClaimLease(ctx, id, "a", ttl); err != nil || a.Epoch != 2 {
		t.Fatalf("ClaimLease of its own live lease = %+v, %v, want epoch 2", a, err)
	}
	// A released lease is anyone's.
	if err := c.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ClaimLease(ctx, id, "b", ttl); err != nil || b.Epoch != 3 || b.Node != "b" {
		t.Errorf("ClaimLease of a released lease = %+v, %v, want epoch 3 for b", b, err)
	}
}

func testRenewLeases(t *testing.T, open opener) {
	ctx := context.Background()
	c, clock := openClocked(t, open)
	const ttl = 10 * time.Second
	ids := []int64{create(t, c, Stream{Path: "r1"}), create(t, c, Stream{Path: "r2"}), create(t, c, Stream{Path: "r3"})}
	for _, id := range ids {
		if _, err := c.ClaimLease(ctx, id, "a", ttl); err != nil {
			t.Fatal(err)
		}
	}
	other := create(t, c, Stream{Path: "other"})
	if _, err := c.ClaimLease(ctx, other, "b", ttl); err != nil {
		t.Fatal(err)
	}
	if got, err := c.RenewLeases(ctx, "none", ttl); err != nil || len(got) != 0 {
		t.Errorf("RenewLeases of a node without leases = %+v, %v", got, err)
	}

	*clock = t0.Add(5 * time.Second)
	got, err := c.RenewLeases(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	var want []Lease
	for _, id := range ids {
		want = append(want, Lease{StreamID: id, Node: "a", Epoch: 1, ExpiresAt: clock.Add(ttl)})
	}
	if !slices.EqualFunc(got, want, sameLease) {
		t.Errorf("RenewLeases = %+v, want %+v", got, want)
	}
	if l, err := c.GetLease(ctx, other); err != nil || !l.ExpiresAt.Equal(t0.Add(ttl)) {
		t.Errorf("another node's lease after RenewLeases = %+v, %v, want it unchanged", l, err)
	}

	// A released lease and an expired one are not renewed.
	if err := c.ReleaseLease(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	*clock = want[1].ExpiresAt
	if got, err := c.RenewLeases(ctx, "a", ttl); err != nil || len(got) != 0 {
		t.Errorf("RenewLeases at expiry = %+v, %v, want none", got, err)
	}
	if l, err := c.GetLease(ctx, ids[1]); err != nil || l.Node != "a" || !l.ExpiresAt.Equal(want[1].ExpiresAt) {
		t.Errorf("expired lease after RenewLeases = %+v, %v, want it unchanged", l, err)
	}
}

// openClocked opens a catalog whose clock reads *clock, t0 at first.
func openClocked(t *testing.T, open opener) (*Catalog, *time.Time) {
	c := open(t)
	clock := t0
	c.now = func() time.Time { return clock }
	return c, &clock
}

func sameLease(a, b Lease) bool {
	return a.StreamID == b.StreamID && a.Node == b.Node && a.Epoch == b.Epoch && a.ExpiresAt.Equal(b.ExpiresAt)
}

func testGuardSegmentWrites(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	const ttl = time.Minute
	id := create(t, c, Stream{Path: "guarded"})
	held := map[int64]Holder{}
	c.GuardSegmentWrites(func(stream int64) (Holder, bool) {
		h, ok := held[stream]
		return h, ok
	})
	seg := func(n int64) Segment { return Segment{StreamID: id, Seg: n, ObjectKey: fmt.Sprint("k", n)} }
	if err := c.RecordSealed(ctx, seg(0)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("RecordSealed without a lease = %v, want ErrLeaseLost", err)
	}
	a, err := c.ClaimLease(ctx, id, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	held[id] = Holder{Node: "a", Epoch: a.Epoch}
	if err := c.RecordSealed(ctx, seg(0)); err != nil {
		t.Fatalf("RecordSealed by the holder: %v", err)
	}
	if err := c.MarkUploaded(ctx, id, 0, 10, 1, 1); err != nil {
		t.Fatalf("MarkUploaded by the holder: %v", err)
	}
	if err := c.RecordSealed(ctx, seg(1)); err != nil {
		t.Fatal(err)
	}
	// The lease passes on: the old holder's writes are refused and change
	// nothing.
	if err := c.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, err := c.ClaimLease(ctx, id, "b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MarkUploaded(ctx, id, 1, 10, 1, 1); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("MarkUploaded with a lost lease = %v, want ErrLeaseLost", err)
	}
	if err := c.RecordSealed(ctx, seg(2)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("RecordSealed with a lost lease = %v, want ErrLeaseLost", err)
	}
	rows, err := c.ListSegments(ctx, SegmentFilter{})
	if err != nil || len(rows) != 2 || rows[1].State != segment.Sealed {
		t.Errorf("index after refused writes = %+v, %v, want segments 0 and 1, 1 still sealed", rows, err)
	}
	held[id] = Holder{Node: "b", Epoch: b.Epoch}
	if err := c.MarkUploaded(ctx, id, 1, 10, 1, 1); err != nil {
		t.Errorf("MarkUploaded by the new holder: %v", err)
	}
}

// TestPostgresLeaseRace has two catalogs on one database, as two nodes,
// race for the leases of the same streams, first while they were never
// leased and then after their holders released them: each round, each
// lease goes to exactly one node, at the round's epoch.
func TestPostgresLeaseRace(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	nodes := map[string]*Catalog{"a": openPostgresTemp(t, dsn), "b": openPostgresTemp(t, dsn)}
	ctx := context.Background()
	const streams = 100
	for epoch := int64(1); epoch <= 2; epoch++ {
		var (
			mu   sync.Mutex
			won  = map[int64][]Lease{}
			wg   sync.WaitGroup
			errs = make(chan error, 6)
		)
		for name, c := range nodes {
			for range 3 {
				wg.Go(func() {
					for id := int64(1); id <= streams; id++ {
						l, err := c.AcquireLease(ctx, id, name, time.Minute)
						switch {
						case errors.Is(err, ErrLeaseHeld):
						case err != nil:
							errs <- err
							return
						default:
							mu.Lock()
							if !slices.ContainsFunc(won[id], func(w Lease) bool { return w.Node == name }) {
								won[id] = append(won[id], l)
							}
							mu.Unlock()
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for id := int64(1); id <= streams; id++ {
			if len(won[id]) != 1 || won[id][0].Epoch != epoch {
				t.Fatalf("round %d, stream %d: leases acquired %+v, want one at epoch %d", epoch, id, won[id], epoch)
			}
			if err := nodes[won[id][0].Node].ReleaseLease(ctx, won[id][0]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// testAdoptLeases: a node adopts the streams without any lease row (from
// a single node's catalog upgraded to cluster mode) and nothing else; an
// adopted lease is renewed and claimed like any other of its own.
func testAdoptLeases(t *testing.T, open opener) {
	ctx := context.Background()
	c, clock := openClocked(t, open)
	const ttl = 10 * time.Second
	old1 := create(t, c, Stream{Path: "old/1"})
	old2 := create(t, c, Stream{Path: "old/2"})
	held := create(t, c, Stream{Path: "held"})
	released := create(t, c, Stream{Path: "released"})
	if _, err := c.AcquireLease(ctx, held, "b", ttl); err != nil {
		t.Fatal(err)
	}
	l, err := c.AcquireLease(ctx, released, "b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}

	got, err := c.AdoptLeases(ctx, "a", []int64{old2, held, released, 999_999, old1}, ttl)
	if err != nil || !slices.Equal(got, []int64{old1, old2}) {
		t.Fatalf("AdoptLeases = %v, %v; want [%d %d]", got, err, old1, old2)
	}
	for _, tt := range []struct {
		id   int64
		want Lease
	}{
		{old1, Lease{StreamID: old1, Node: "a", Epoch: 1, ExpiresAt: t0.Add(ttl)}},
		{held, Lease{StreamID: held, Node: "b", Epoch: 1, ExpiresAt: t0.Add(ttl)}},
		{released, Lease{StreamID: released, Node: "", Epoch: 1, ExpiresAt: time.UnixMilli(0)}},
	} {
		if l, err := c.GetLease(ctx, tt.id); err != nil || !sameLease(l, tt.want) {
			t.Errorf("lease of %d after AdoptLeases = %+v, %v; want %+v", tt.id, l, err, tt.want)
		}
	}
	if _, err := c.GetLease(ctx, 999_999); !errors.Is(err, ErrNotFound) {
		t.Errorf("lease of a stream that does not exist = %v, want ErrNotFound", err)
	}
	if again, err := c.AdoptLeases(ctx, "b", []int64{old1, old2}, ttl); err != nil || len(again) != 0 {
		t.Errorf("AdoptLeases of adopted streams by another node = %v, %v; want none", again, err)
	}

	*clock = t0.Add(time.Second)
	renewed, err := c.RenewLeases(ctx, "a", ttl)
	if err != nil || len(renewed) != 2 {
		t.Errorf("RenewLeases after adoption = %+v, %v; want both adopted leases", renewed, err)
	}
	if _, err := c.ClaimLease(ctx, old1, "b", ttl); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("ClaimLease of an adopted stream by another node = %v, want ErrLeaseHeld", err)
	}
	if l, err := c.ClaimLease(ctx, old1, "a", ttl); err != nil || l.Epoch != 1 {
		t.Errorf("ClaimLease of an adopted stream by its node = %+v, %v; want epoch 1", l, err)
	}
}
