package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/internal/httpcall"
)

// TestClusterLoopbackNodeLoss runs two node processes on loopback sharing
// one PostgreSQL catalog. A stream is served by its lease holder; the
// other node forwards its requests there. After SIGKILL of one node its
// streams answer 503 + Retry-After on the other (their unsealed data is
// only on the dead node's disk) while the survivor's streams keep
// working; restarted with the same node id and data dir, the node serves
// its streams again with every acknowledged append there once.
func TestClusterLoopbackNodeLoss(t *testing.T) {
	nodes, _ := startLoopbackCluster(t)
	other := map[string]string{"n1": "n2", "n2": "n1"}
	post := func(node, path, body string) httpcall.Response {
		return httpcall.Do(t, http.MethodPost, nodes[node].StreamURL(path), body, "Content-Type", "text/plain")
	}
	// A request marked as forwarded already is served only by the owner
	// (others answer 503 NOT_OWNER): that tells the owner apart.
	ownerOf := func(path string) string {
		t.Helper()
		for _, n := range []string{"n1", "n2"} {
			if httpcall.Do(t, http.MethodHead, nodes[n].StreamURL(path), "", api.ForwardedByHeader, "test").Status == http.StatusOK {
				return n
			}
		}
		t.Fatalf("no node serves %q", path)
		return ""
	}
	wantUnavailable := func(node, path string) {
		t.Helper()
		r := post(node, path, "refused").Want(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("503 from %s for %q without Retry-After", node, path)
		}
		httpcall.Do(t, http.MethodGet, nodes[node].StreamURL(path), "").Want(t, http.StatusServiceUnavailable)
	}

	owner := map[string]string{}
	content := map[string]string{}
	for i := range 12 {
		path, node := fmt.Sprintf("loop/%d", i), []string{"n1", "n2"}[i%2]
		httpcall.Do(t, http.MethodPut, nodes[node].StreamURL(path), "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
		post(node, path, "a").Want(t, http.StatusNoContent)
		owner[path], content[path] = ownerOf(path), "a"
		post(other[owner[path]], path, "f").Want(t, http.StatusNoContent) // forwarded to the owner
		content[path] += "f"
	}

	nodes["n2"].Kill()
	for path, node := range owner {
		if node == "n2" {
			wantUnavailable("n1", path)
			continue
		}
		post("n1", path, "b").Want(t, http.StatusNoContent)
		content[path] += "b"
	}

	nodes["n2"].Restart(t)
	for path, node := range owner {
		post(node, path, "c").Want(t, http.StatusNoContent)
		content[path] += "c"
		for _, via := range []string{node, other[node]} {
			if got := httpcall.Do(t, http.MethodGet, nodes[via].StreamURL(path), "").Want(t, http.StatusOK).Body; got != content[path] {
				t.Errorf("%q through %s = %q, want every acknowledged append once: %q", path, via, got, content[path])
			}
		}
	}
}

// TestClusterLoopbackSubscriptions runs the conformance suite's
// subscription block (--subscriptions, the six "Reserved subscription
// APIs" tests) against a node that owns nothing: two nodes on loopback
// (the suite's webhook receivers listen on the host's 127.0.0.1, out of
// reach of the namespaced nodes of the three-node tests) share one
// PostgreSQL database, and n1, drained before any stream exists, places
// every stream on n2. So every subscription is created, read, acked and
// deleted through n1 and fires on n2 (docs/subscriptions.md, cluster mode).
func TestClusterLoopbackSubscriptions(t *testing.T) {
	script := conformancePrereqs(t)
	nodes, dsn := startLoopbackCluster(t, WithLongPollTimeout(conformanceServerLongPoll),
		WithArgs("--webhooks", "--webhook-allow-private"))
	front := nodes["n1"]
	httpcall.Do(t, http.MethodPost, front.URL+"/v1/admin/node/drain", "").Want(t, http.StatusOK)
	runConformanceWith(t, script, front, "cluster subscriptions through a node owning nothing",
		[]string{"--subscriptions", "-t", "Reserved subscription APIs"}, conformanceAllWithSubscriptions-conformanceMinPassed, -1)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var total, held int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE node = 'n1') FROM stream_leases WHERE node <> ''`).
		Scan(&total, &held); err != nil {
		t.Fatal(err)
	}
	if total == 0 || held != 0 {
		t.Errorf("leases after the suite: %d, held by the front node: %d; want some, none of them n1's", total, held)
	}
}
