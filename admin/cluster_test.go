package admin_test

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
)

// clusterAt returns a cluster-mode service, as node self, over e's
// catalog, whose clock is shifted by d.
func (e *env) clusterAt(self string, d time.Duration) *admin.Service {
	e.t.Helper()
	svc, err := admin.New(admin.Config{Catalog: e.srv.Catalog(), Store: e.store, Cluster: true, Node: self,
		NodeTTL: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.Now().Add(d) }})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func TestClusterStatusSingle(t *testing.T) {
	e := newEnv(t)
	e.stream("a", 0)
	e.stream("b", 0)
	st, err := e.svc.ClusterStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []admin.ClusterNode{{Live: true, Self: true, Streams: 2}}
	if st.Mode != admin.ModeSingle || !slices.Equal(st.Nodes, want) ||
		st.Totals != (admin.ClusterTotals{Nodes: 1, LiveNodes: 1, Streams: 2}) {
		t.Errorf("single-node status = %+v", st)
	}
	page, err := e.svc.ClusterLeases(t.Context(), admin.LeaseFilter{Node: "x"})
	if err != nil || len(page.Leases) != 0 || page.Next != "" {
		t.Errorf("single-node leases = %+v, %v, want none", page, err)
	}
}

func TestClusterStatus(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cat := e.srv.Catalog()
	ids := map[string]int64{}
	for _, p := range []string{"s1", "s2", "s3", "s4", "s5"} {
		e.stream(p, 0)
		row, err := cat.Get(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = row.ID
	}
	for _, n := range []string{"n1", "n2"} {
		if err := cat.RegisterNode(ctx, n, "http://"+n+":4437"); err != nil {
			t.Fatal(err)
		}
	}
	lease := func(path, node string, ttl time.Duration) {
		t.Helper()
		if _, err := cat.AcquireLease(ctx, ids[path], node, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// n1 holds s1..s3; n2 holds none; n3, never registered (or expired
	// from membership), is still named by s4's expired lease; s5 has no
	// lease.
	lease("s1", "n1", time.Hour)
	lease("s2", "n1", time.Hour)
	lease("s3", "n1", time.Hour)
	lease("s4", "n3", time.Millisecond)
	time.Sleep(5 * time.Millisecond)

	st, err := e.clusterAt("n2", 0).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		id                     string
		registered, live, self bool
		leases, streams        int64
		url                    string
	}
	var got []view
	for _, n := range st.Nodes {
		got = append(got, view{n.ID, n.Registered, n.Live, n.Self, n.Leases, n.Streams, n.URL})
		if n.Registered != (n.HeartbeatAgeSeconds != nil) || (n.HeartbeatAgeSeconds != nil && *n.HeartbeatAgeSeconds > 5) {
			t.Errorf("node %s heartbeat age %v", n.ID, n.HeartbeatAgeSeconds)
		}
	}
	want := []view{
		{"n1", true, true, false, 3, 3, "http://n1:4437"},
		{"n2", true, true, true, 0, 0, "http://n2:4437"},
		{"n3", false, false, false, 0, 1, ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("nodes = %+v, want %+v", got, want)
	}
	if st.Mode != admin.ModeCluster || st.Node != "n2" || st.NodeTTLSeconds != 10 ||
		st.Totals != (admin.ClusterTotals{Nodes: 3, LiveNodes: 2, Streams: 5, Leased: 3, Expired: 1}) {
		t.Errorf("status = %+v", st)
	}

	// A minute later (by this node's clock) nobody has heartbeated.
	late, err := e.clusterAt("n2", time.Minute).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if late.Totals.LiveNodes != 0 || late.Nodes[0].Live {
		t.Errorf("status a minute later = %+v", late)
	}

	// n1's leases, a page at a time.
	svc := e.clusterAt("n2", 0)
	var paths []string
	f := admin.LeaseFilter{Node: "n1", Limit: 2}
	for pages := 0; ; pages++ {
		page, err := svc.ClusterLeases(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range page.Leases {
			if l.Epoch != 1 || !l.Held || l.StreamID != ids[l.Stream] {
				t.Errorf("lease %+v", l)
			}
			paths = append(paths, l.Stream)
		}
		if page.Next == "" {
			if pages != 1 {
				t.Errorf("%d pages, want 2", pages+1)
			}
			break
		}
		f.After = page.Next
	}
	if !slices.Equal(paths, []string{"s1", "s2", "s3"}) {
		t.Errorf("n1's leases = %v", paths)
	}
	n3, err := svc.ClusterLeases(ctx, admin.LeaseFilter{Node: "n3"})
	if err != nil || len(n3.Leases) != 1 || n3.Leases[0].Stream != "s4" || n3.Leases[0].Held {
		t.Errorf("n3's leases = %+v, %v, want s4 expired", n3, err)
	}
	for _, f := range []admin.LeaseFilter{{}, {Node: "n1", Limit: -1}, {Node: "n1", After: "!!"}} {
		if _, err := svc.ClusterLeases(ctx, f); !errors.Is(err, admin.ErrInvalid) {
			t.Errorf("ClusterLeases(%+v) = %v, want ErrInvalid", f, err)
		}
	}
	if _, err := admin.New(admin.Config{Catalog: cat, Store: e.store, Cluster: true}); err == nil {
		t.Error("a cluster-mode service without a node id was made")
	}
}
