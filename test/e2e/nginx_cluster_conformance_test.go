package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

// maxEdgeForwardedShare bounds the share of the cluster edge's stream
// requests that a node forwards in TestNginxClusterConformance: 2 % in a
// run of the edge that computes placement, 60 to 72 % with the former
// consistent hash of nginx.
const maxEdgeForwardedShare = 0.10

// TestNginxClusterConformance runs the conformance suite through the
// cluster edge (deploy/nginx/durable-streams-cluster.conf.template in its
// default, exact cache mode) in front of three nodes on one PostgreSQL
// catalog, on loopback: every test must pass. It then reports how many of
// the requests the edge sent on reached a node that had to forward them to
// the stream's owner: the edge computes the cluster's placement, so only
// requests for streams placed otherwise (forks live on their source's
// node) take that hop (docs/cluster.md "The edge").
func TestNginxClusterConformance(t *testing.T) {
	LatencyBound(t)
	script := conformancePrereqs(t)
	findNginx(t)
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	bin := BuildServer(t)
	nodes := make([]*Server, clusterNodes)
	addrs := make([]string, clusterNodes)
	for i := range nodes {
		nodes[i] = StartServer(t, bin, WithLongPollTimeout(conformanceServerLongPoll),
			WithEnv("DS_CLUSTER_DSN="+dsn, "DS_NODE_ID="+nodeID(i), "DS_DRAIN_TIMEOUT=0"),
			WithArgs("--trusted-proxies", "127.0.0.1"))
		addrs[i] = nodes[i].Addr
	}
	// Two heartbeats (1 s) let every node see the others live before the
	// first stream is placed.
	time.Sleep(2 * time.Second)
	// The zero cache value is the template's default: exact.
	edge := startEdge(t, "", edgeConfig{nodes: addrs})
	runConformance(t, script, &Server{URL: edge.URL}, "nginx cluster edge, exact cache mode, 3 nodes")

	// Every stream request that reached a node from the edge was either
	// served there or forwarded once (a forwarded request is counted by
	// both nodes, but forwarded by one).
	c := loopbackClient(10 * time.Second)
	var received, forwarded float64
	for _, n := range nodes {
		for k, v := range scrapeMetrics(t, c, n.URL) {
			switch {
			case strings.HasPrefix(k, "durable_streams_http_requests_total{") && strings.Contains(k, `route="/v1/stream/*"`):
				received += v
			case strings.HasPrefix(k, "durable_streams_forwarded_requests_total{"):
				forwarded += v
			}
		}
	}
	fromEdge := received - forwarded
	if fromEdge <= 0 {
		t.Fatalf("stream requests counted by the nodes: %v, forwarded: %v", received, forwarded)
	}
	line := fmt.Sprintf("NGINX-CLUSTER edge requests to nodes=%.0f forwarded to the owner=%.0f (%.0f%%)", fromEdge, forwarded, 100*forwarded/fromEdge)
	t.Log(line)
	Summary(line)
	// With a node choice independent of placement, about 2/3 would be.
	if share := forwarded / fromEdge; share > maxEdgeForwardedShare {
		t.Errorf("%.0f%% of the edge's stream requests were forwarded, want at most %.0f%%: the edge does not route by placement", 100*share, 100*maxEdgeForwardedShare)
	}
}
