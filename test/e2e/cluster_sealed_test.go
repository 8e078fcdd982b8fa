package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestClusterLoopbackSealedReads runs two node processes on loopback that
// share a PostgreSQL catalog and a cold store, with bounded catch-up
// responses: reading a stream from its start through the node that does
// not own it returns the owner's bytes, and once its segments are
// uploaded that node answers the reads of sealed segments itself (its
// durable_streams_sealed_reads_local_total grows, the owner's stays 0).
func TestClusterLoopbackSealedReads(t *testing.T) {
	nodes, _ := startLoopbackCluster(t, WithArgs("--cold-dir", t.TempDir(), "--seal-bytes", "256", "--read-response-max", "200"))

	const path = "sealed/e2e"
	httpcall.Do(t, http.MethodPut, nodes["n1"].StreamURL(path), "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
	var content strings.Builder
	for i := range 30 {
		line := fmt.Sprintf("message %02d of a stream read through the other node\n", i)
		httpcall.Do(t, http.MethodPost, nodes["n1"].StreamURL(path), line, "Content-Type", "text/plain").Want(t, http.StatusNoContent)
		content.WriteString(line)
	}
	// A request already marked as forwarded is served by the owner only.
	owner, other := "n1", "n2"
	if httpcall.Do(t, http.MethodHead, nodes["n1"].StreamURL(path), "", api.ForwardedByHeader, "test").Status != http.StatusOK {
		owner, other = "n2", "n1"
	}

	local := func(node string) float64 {
		return scrapeMetrics(t, http.DefaultClient, nodes[node].URL)[`durable_streams_sealed_reads_local_total{node="`+node+`"}`]
	}
	eventually(t, 30*time.Second, 200*time.Millisecond, "sealed reads answered by "+other, func() string {
		var body strings.Builder
		for off := "-1"; ; {
			r := httpcall.Do(t, http.MethodGet, nodes[other].StreamURL(path)+"?offset="+off, "").Want(t, http.StatusOK)
			body.WriteString(r.Body)
			if r.Header.Get("Stream-Up-To-Date") == "true" {
				break
			}
			off = r.Header.Get("Stream-Next-Offset")
		}
		if body.String() != content.String() {
			t.Fatalf("read through %s: %q, want %q", other, body.String(), content.String())
		}
		if n := local(other); n == 0 {
			return "no read answered locally yet"
		}
		return ""
	})
	if n := local(owner); n != 0 {
		t.Errorf("the owner %s counts %v reads of others' streams", owner, n)
	}
}

// startLoopbackCluster starts nodes n1 and n2 as processes on loopback
// sharing a fresh PostgreSQL database, with fast heartbeats, no drain on
// SIGTERM and the extra options opts, and waits until they can have seen
// each other live (a node forwards only to nodes it saw live). It returns
// the nodes by id and the database's DSN.
func startLoopbackCluster(t *testing.T, opts ...Option) (map[string]*Server, string) {
	t.Helper()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	bin := BuildServer(t)
	nodes := map[string]*Server{}
	for _, id := range []string{"n1", "n2"} {
		nodes[id] = StartServer(t, bin, append([]Option{WithEnv("DS_CLUSTER_DSN="+dsn, "DS_NODE_ID="+id, "DS_DRAIN_TIMEOUT=0"),
			WithArgs("--node-heartbeat", "200ms", "--node-ttl", "2s")}, opts...)...)
	}
	// Give each a few heartbeats (200 ms) to see the other.
	time.Sleep(time.Second)
	return nodes, dsn
}
