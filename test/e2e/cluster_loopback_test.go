package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestClusterLoopbackNodeLoss runs two node processes on loopback sharing
// one PostgreSQL catalog. A stream is served by the node that created it
// (its lease holder) and refused with 503 + Retry-After by the other. After
// SIGKILL of one node its streams stay 503 on the other (their unsealed
// data is only on the dead node's disk) while the survivor's streams keep
// working; restarted with the same node id and data dir, the node serves
// its streams again with every acknowledged append there once.
func TestClusterLoopbackNodeLoss(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	bin := BuildServer(t)
	nodes := map[string]*Server{}
	for _, id := range []string{"n1", "n2"} {
		nodes[id] = StartServer(t, bin, WithEnv("DS_CLUSTER_DSN="+dsn, "DS_NODE_ID="+id),
			WithArgs("--node-heartbeat", "200ms", "--node-ttl", "2s"))
	}
	other := map[string]string{"n1": "n2", "n2": "n1"}
	post := func(node, path, body string) httpcall.Response {
		return httpcall.Do(t, http.MethodPost, nodes[node].StreamURL(path), body, "Content-Type", "text/plain")
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
	for i := range 8 {
		path, node := fmt.Sprintf("loop/%d", i), []string{"n1", "n2"}[i%2]
		httpcall.Do(t, http.MethodPut, nodes[node].StreamURL(path), "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
		post(node, path, "a").Want(t, http.StatusNoContent)
		owner[path], content[path] = node, "a"
		wantUnavailable(other[node], path)
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
		if got := httpcall.Do(t, http.MethodGet, nodes[node].StreamURL(path), "").Want(t, http.StatusOK).Body; got != content[path] {
			t.Errorf("%q on %s = %q, want every acknowledged append once: %q", path, node, got, content[path])
		}
		wantUnavailable(other[node], path)
	}
}
