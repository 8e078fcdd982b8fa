package catalog

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func testClusterStatus(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	clock := t0
	c.now = func() time.Time { return clock }
	const ttl = 10 * time.Second

	if counts, err := c.LeaseCounts(ctx); err != nil || len(counts) != 0 {
		t.Errorf("LeaseCounts of an empty catalog = %+v, %v, want none", counts, err)
	}
	// a holds three leases, b one that expires, one lease is released and
	// one stream never had a lease.
	var ids []int64
	for i := range 6 {
		ids = append(ids, create(t, c, Stream{Path: fmt.Sprintf("s%d", i)}))
	}
	acquire := func(id int64, node string) Lease {
		t.Helper()
		l, err := c.AcquireLease(ctx, id, node, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, id := range ids[:3] {
		acquire(id, "a")
	}
	clock = t0.Add(-5 * time.Second)
	acquire(ids[3], "b")
	clock = t0
	if err := c.ReleaseLease(ctx, acquire(ids[4], "c")); err != nil {
		t.Fatal(err)
	}
	// A deleted stream's lease row counts no more.
	gone := create(t, c, Stream{Path: "gone"})
	acquire(gone, "a")
	if _, err := c.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	clock = t0.Add(6 * time.Second) // b's lease expired
	counts, err := c.LeaseCounts(ctx)
	want := []NodeLeaseCount{{Node: "a", Held: 3, Streams: 3}, {Node: "b", Held: 0, Streams: 1}}
	if err != nil || !slices.Equal(counts, want) {
		t.Errorf("LeaseCounts = %+v, %v, want %+v", counts, err, want)
	}

	// Pages of a's leases.
	var got []int64
	for after := int64(0); ; {
		page, err := c.NodeLeases(ctx, "a", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range page {
			if l.Node != "a" || l.Epoch != 1 || !l.Held || l.Path != fmt.Sprintf("s%d", slices.Index(ids, l.StreamID)) {
				t.Errorf("NodeLeases entry %+v", l)
			}
			got = append(got, l.StreamID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].StreamID
	}
	if !slices.Equal(got, ids[:3]) {
		t.Errorf("NodeLeases of a = %v, want %v", got, ids[:3])
	}
	bs, err := c.NodeLeases(ctx, "b", 0, 10)
	if err != nil || len(bs) != 1 || bs[0].StreamID != ids[3] || bs[0].Held || !bs[0].ExpiresAt.Equal(t0.Add(5*time.Second)) {
		t.Errorf("NodeLeases of b = %+v, %v, want its expired lease", bs, err)
	}
	if none, err := c.NodeLeases(ctx, "c", 0, 10); err != nil || len(none) != 0 {
		t.Errorf("NodeLeases of a node that released its lease = %+v, %v, want none", none, err)
	}
	if _, err := c.NodeLeases(ctx, "", 0, 10); err == nil {
		t.Error("NodeLeases without a node succeeded")
	}
}
