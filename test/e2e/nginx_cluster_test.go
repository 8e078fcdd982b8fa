package e2e

// The cluster variant of the edge (deploy/nginx/durable-streams-cluster.conf.template):
// nginx in front of three nodes, each request sent to the node that
// rendezvous placement picks for its stream path. Here one node owns every
// stream and the other two forward to it (--forward-all-to), which stands
// in for a cluster whose owners differ from the edge's choice.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const clusterTemplate = "durable-streams-cluster.conf.template"

// TestNginxClusterTemplateInStep checks that the cluster template is the
// single-node one with other upstreams: below their upstream blocks the
// two are identical but for the upstream proxy_pass names (the cluster's
// picks one per request, $ds_upstream), so the cache behaves the same in
// front of a cluster.
func TestNginxClusterTemplateInStep(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tail := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, "proxy_cache_path ${NGINX_CACHE_DIR} levels=1:2 keys_zone=durable_streams:16m\n                 max_size=1g inactive=24h use_temp_path=off;") {
			t.Fatalf("%s: no proxy_cache_path like the single-node template's", name)
		}
		i := strings.Index(s, "upstream durable_streams_origin {")
		if i < 0 {
			t.Fatalf("%s: no upstream durable_streams_origin", name)
		}
		end := strings.Index(s[i:], "\n}\n")
		if end < 0 {
			t.Fatalf("%s: upstream block not closed", name)
		}
		return s[i+end:]
	}
	single, cluster := tail("durable-streams.conf.template"), tail(clusterTemplate)
	if !strings.Contains(cluster, "proxy_pass http://$ds_upstream") {
		t.Fatalf("deploy/nginx/%s: proxy_pass does not name $ds_upstream", clusterTemplate)
	}
	cluster = strings.ReplaceAll(cluster, "proxy_pass http://$ds_upstream", "proxy_pass http://durable_streams_origin")
	if single != cluster {
		t.Fatalf("deploy/nginx/%s differs from durable-streams.conf.template below the upstream block; keep them in step", clusterTemplate)
	}
}

// TestNginxClusterRouting sends creates, appends, catch-up, long-poll and
// SSE reads of many streams through the cluster edge: every request for a
// stream, live reads included, reaches the same node; the streams spread
// over the nodes; answers are right whichever node got them; and catch-up
// reads are still served from the edge's cache.
func TestNginxClusterRouting(t *testing.T) {
	owner, nodes, edge := startForwardingCluster(t, "aggressive")
	c := loopbackClient(20 * time.Second)

	const streams = 24
	const ct = "text/plain"
	used := map[int]bool{}
	for i := range streams {
		path := fmt.Sprintf("/v1/stream/cluster/s%d", i)
		url := edge.URL + path
		createStream(t, c, url, ct, nil)
		appendTo(t, c, url, ct, []byte("hello "))
		tail := appendTo(t, c, url, ct, []byte("world"))

		first := mustEdgeGet(t, c, edge.URL, path+"?offset=-1", nil)
		again := mustEdgeGet(t, c, edge.URL, path+"?offset=-1", nil)
		if first.status != 200 || string(first.body) != "hello world" || first.next != tail {
			t.Fatalf("%s: catch-up %d %q next %s, want 200 %q next %s", path, first.status, first.body, first.next, "hello world", tail)
		}
		if again.cacheStatus != "HIT" || string(again.body) != "hello world" {
			t.Fatalf("%s: second catch-up: %s %q, want a cache HIT", path, again.cacheStatus, again.body)
		}
		lp := mustEdgeGet(t, c, edge.URL, path+"?offset=-1&live=long-poll", nil)
		if lp.status != 200 || string(lp.body) != "hello world" {
			t.Fatalf("%s: long-poll %d %q", path, lp.status, lp.body)
		}
		closeStream(t, c, url, ct, nil)
		sse := mustEdgeGet(t, c, edge.URL, path+"?offset=-1&live=sse", nil)
		if sse.status != 200 || !strings.Contains(string(sse.body), "data:hello world") || !strings.Contains(string(sse.body), `"streamClosed":true`) {
			t.Fatalf("%s: SSE %d %q", path, sse.status, sse.body)
		}

		var saw []int
		for n, oc := range nodes {
			if oc.countPath(path) > 0 {
				saw = append(saw, n)
			}
		}
		if len(saw) != 1 {
			t.Fatalf("%s: requests reached nodes %v, want one node", path, saw)
		}
		if got := nodes[saw[0]].countPath(path); got != 7 {
			t.Fatalf("%s: node %d saw %d requests, want 7 (create, 2 appends, 1 catch-up, long-poll, close, SSE)", path, saw[0], got)
		}
		used[saw[0]] = true
	}
	if len(used) < 2 {
		t.Fatalf("%d streams all went to one node", streams)
	}
	if n := listedStreams(t, owner); n != streams {
		t.Fatalf("the owner holds %d streams, want %d", n, streams)
	}
}

// startForwardingCluster starts the cluster edge with cache mode cache in
// front of three counted nodes: the first owns every stream, the other two
// forward everything to it.
func startForwardingCluster(t *testing.T, cache string) (*Server, []*originCounter, *edge) {
	t.Helper()
	findNginx(t)
	bin := BuildServer(t)
	owner := StartServer(t, bin, WithArgs("--trusted-proxies", "127.0.0.1"))
	nodes := []*originCounter{startOriginCounter(t, owner.URL)}
	for range 2 {
		front := StartServer(t, bin, WithArgs("--forward-all-to", owner.URL))
		nodes = append(nodes, startOriginCounter(t, front.URL))
	}
	e := startEdge(t, "", edgeConfig{nodes: []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}, cache: cache})
	return owner, nodes, e
}

// TestNginxClusterFailover stops the node that the edge sends some
// streams to: their requests go to the other nodes (the node's upstream
// lists them as backups), and every answer stays right.
func TestNginxClusterFailover(t *testing.T) {
	_, nodes, edge := startForwardingCluster(t, "")
	c := loopbackClient(20 * time.Second)
	const streams = 24
	const ct = "text/plain"
	byNode := map[int][]string{}
	for i := range streams {
		path := fmt.Sprintf("/v1/stream/failover/s%d", i)
		createStream(t, c, edge.URL+path, ct, nil)
		appendTo(t, c, edge.URL+path, ct, []byte("before "))
		for n, oc := range nodes {
			if oc.countPath(path) > 0 {
				byNode[n] = append(byNode[n], path)
			}
		}
	}
	// Node 0 owns the streams; stop a forwarding node the edge uses.
	down := 1
	if len(byNode[down]) == 0 {
		down = 2
	}
	if len(byNode[down]) == 0 {
		t.Fatalf("no stream went to a forwarding node: %v", byNode)
	}
	nodes[down].close()
	for n, paths := range byNode {
		for _, path := range paths {
			tail := appendTo(t, c, edge.URL+path, ct, []byte("after"))
			r := mustEdgeGet(t, c, edge.URL, path+"?offset=-1", nil)
			if r.status != 200 || string(r.body) != "before after" || r.next != tail {
				t.Fatalf("%s (node %d, node %d down): catch-up %d %q next %s, want 200 %q next %s", path, n, down, r.status, r.body, r.next, "before after", tail)
			}
		}
	}
}
