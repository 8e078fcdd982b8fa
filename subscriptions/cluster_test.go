package subscriptions

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

// clusterNodes are managers sharing one PostgreSQL store over the same
// streams, as the nodes of a cluster: each hears the appends of the
// streams the test says it owns.
type clusterNodes struct {
	t       *testing.T
	dsn     string
	streams *fakeStreams
	nodes   []*Manager
}

func newClusterNodes(t *testing.T, srv *pgtest.Server, n int) *clusterNodes {
	t.Helper()
	c := &clusterNodes{t: t, dsn: srv.NewDatabase(t), streams: newFakeStreams()}
	for range n {
		c.nodes = append(c.nodes, c.open())
	}
	return c
}

func (c *clusterNodes) open() *Manager {
	c.t.Helper()
	m, err := Open(context.Background(), Options{PostgresDSN: c.dsn, Streams: c.streams, Webhooks: true, AllowLoopback: true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		c.t.Fatalf("Open: %v", err)
	}
	c.t.Cleanup(func() { m.Close() })
	return m
}

// TestCluster runs the cluster-mode tests on one PostgreSQL server.
func TestCluster(t *testing.T) {
	srv := pgtest.Start(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *clusterNodes)
	}{
		{"SharedSubscriptions", testClusterShared},
		{"LateNodeResumes", testClusterLateNode},
		{"TakeOver", testClusterTakeOver},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newClusterNodes(t, srv, 2)) })
	}
}

// A subscription created through one node fires for the streams another
// owns, once per wake, and is changed and deleted through any node.
func testClusterShared(t *testing.T, c *clusterNodes) {
	a, b := c.nodes[0], c.nodes[1]
	if ka, kb := a.JWKS().Keys, b.JWKS().Keys; len(ka) != 1 || len(kb) != 1 || ka[0].Kid != kb[0].Kid {
		t.Fatalf("nodes sign with different keys: %+v, %+v", ka, kb)
	}
	r := newReceiver(t, nil)
	req := webhookReq(r.URL, "events/*")
	if _, created, err := a.Put(bg, "s1", &req, "http://streams.test/v1/stream"); err != nil || !created {
		t.Fatalf("Put on a: created=%v err=%v", created, err)
	}
	// b knows it at once (a look-up of the store), re-confirms it and
	// refuses another configuration under its id.
	if _, created, err := b.Put(bg, "s1", &req, "http://streams.test/v1/stream"); err != nil || created {
		t.Fatalf("re-PUT on b: created=%v err=%v", created, err)
	}
	other := webhookReq(r.URL, "other/*")
	if _, _, err := b.Put(bg, "s1", &other, "http://streams.test/v1/stream"); codeOf(err) != CodeAlreadyExists {
		t.Fatalf("conflicting PUT on b: %v", err)
	}

	// b owns events/x: its append wakes s1, delivered once.
	eventually(t, "b loads s1", func() bool { return b.get("s1") != nil })
	tail := c.streams.append(b, "events/x", 8)
	n := r.wait(t, 1).n
	if n.Generation != 1 || len(n.Streams) != 1 || n.Streams[0].TailOffset != tail {
		t.Fatalf("notification = %+v", n)
	}
	// The callback goes to a: the cursor moves for every node.
	gen := n.Generation
	res, err := a.Callback(bg, "s1", n.CallbackToken,
		&AckRequest{WakeID: n.WakeID, Generation: &gen, Acks: []Ack{{Stream: "events/x", Offset: tail}}, Done: true})
	if err != nil || !res.OK {
		t.Fatalf("callback on a: %+v, %v", res, err)
	}
	v, err := b.Get(bg, "s1", "http://streams.test/v1/stream")
	if err != nil || ackedOf(v, "events/x") != tail {
		t.Fatalf("b sees %+v, %v; want events/x acked at %s", v, err, tail)
	}
	// A second append on b: one new generation, no duplicate.
	c.streams.append(b, "events/x", 4)
	if n2 := r.wait(t, 2).n; n2.Generation != 2 {
		t.Fatalf("second wake = %+v", n2)
	}
	time.Sleep(300 * time.Millisecond)
	if got := r.count(); got != 2 {
		t.Fatalf("%d deliveries, want 2", got)
	}

	// Deleted through b: a answers 404 and delivers nothing more.
	if err := b.Delete(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(bg, "s1", "http://streams.test/v1/stream"); codeOf(err) != CodeNotFound {
		t.Fatalf("Get on a after delete on b: %v", err)
	}
	c.streams.append(a, "events/x", 1)
	time.Sleep(300 * time.Millisecond)
	if got := r.count(); got != 2 {
		t.Fatalf("%d deliveries after delete, want 2", got)
	}
}

// A node that learns of a subscription late (an append it heard before
// reloading) still wakes it: reloading resumes new subscriptions.
func testClusterLateNode(t *testing.T, c *clusterNodes) {
	a, b := c.nodes[0], c.nodes[1]
	r := newReceiver(t, func(int) (int, string) { return http.StatusOK, `{"done":true}` })
	req := webhookReq(r.URL, "events/*")
	c.streams.append(b, "events/y", 5) // before s1: linked at its tail
	if _, _, err := a.Put(bg, "s1", &req, "http://streams.test/v1/stream"); err != nil {
		t.Fatal(err)
	}
	// b owns events/z, created right after s1, before b reloads: b does
	// not know s1 when it hears the append.
	c.streams.append(b, "events/z", 3)
	// Asked for it before reloading, b reads it from the store; it is
	// still resumed.
	if _, err := b.Get(bg, "s1", "http://streams.test/v1/stream"); err != nil {
		t.Fatal(err)
	}
	n := r.wait(t, 1).n
	if len(n.Streams) != 2 || n.Streams[1].Path != "events/z" || !n.Streams[1].HasPending {
		t.Fatalf("notification = %+v", n)
	}
}

// A wake whose node died with its retry timer is taken over by another.
func testClusterTakeOver(t *testing.T, c *clusterNodes) {
	a, b := c.nodes[0], c.nodes[1]
	var fail atomic.Bool
	fail.Store(true)
	r := newReceiver(t, func(int) (int, string) {
		if fail.Load() {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, `{"done":true}`
	})
	req := webhookReq(r.URL, "events/*")
	if _, _, err := a.Put(bg, "s1", &req, "http://streams.test/v1/stream"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b loads s1", func() bool { return b.get("s1") != nil })
	c.streams.append(b, "events/x", 8)
	r.wait(t, 1)
	b.Close() // dies with its retry scheduled
	seen := r.count()
	fail.Store(false)
	start := time.Now()
	r.wait(t, seen+1)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("takeover took %v", d)
	}
	eventually(t, "wake done", func() bool {
		v, err := a.Get(bg, "s1", "http://streams.test/v1/stream")
		return err == nil && ackedOf(v, "events/x") == tok(8)
	})
}
