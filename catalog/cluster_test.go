package catalog

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

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
	c := open(t)
	clock := t0
	c.now = func() time.Time { return clock }
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
	clock = t0.Add(5 * time.Second)
	if again, err := c.AcquireLease(ctx, id, "a", ttl); err != nil || again.Epoch != 1 || !again.ExpiresAt.Equal(clock.Add(ttl)) {
		t.Errorf("AcquireLease by the holder = %+v, %v, want a renewal at epoch 1", again, err)
	}
	a, err = c.RenewLease(ctx, a, ttl)
	if err != nil || a.Epoch != 1 || !a.ExpiresAt.Equal(clock.Add(ttl)) {
		t.Errorf("RenewLease = %+v, %v", a, err)
	}

	// a stops renewing; once the lease expired, b takes it with a new epoch
	// and a is fenced off.
	clock = a.ExpiresAt
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
