package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
)

// The three-node tests of issue 15. Each node is a host of its own (a
// network namespace); the clients (the test, the conformance suite) are in
// the root namespace and reach every node over the bridge.

const (
	// clusterNodes is the size of the test clusters.
	clusterNodes = 3
	// clusterLeaseTTL is how long a lease lasts after its last renewal
	// (C1's default node TTL): a node cut off from PostgreSQL must not
	// acknowledge a write this long after the cut, when its lease may
	// have passed to another node.
	clusterLeaseTTL = 5 * time.Second
	// clusterLeaseBound is how long the partition test waits for the node
	// to stop acknowledging (slack for a loaded 2-core machine).
	clusterLeaseBound = 15 * time.Second
	// clusterCutHold is how long the partition test keeps the node cut
	// off: past any of its leases' expiry, so that another node could
	// take them if it wrongly would.
	clusterCutHold = clusterLeaseTTL + 3*time.Second
)

// TestClusterPlacement: three nodes come up on one database, each stream
// is owned by exactly one of them (its lease), streams spread over all
// three, and any node answers any stream with the same history.
func TestClusterPlacement(t *testing.T) {
	needPieces(t, pieceOwnership, pieceRouting)
	e := startClusterEnv(t, clusterNodes)
	e.startNodes(t)
	l := newClusterLoad(t, e, 30)

	// Append through every node in turn (a 503 with Retry-After while the
	// nodes' views of each other settle is retried), read through every
	// node.
	for _, s := range l.streams {
		for i, n := range e.nodes {
			line := fmt.Sprintf("%s#via-%s", s.name, nodeID(i))
			eventually(t, 30*time.Second, 100*time.Millisecond, "append through "+nodeID(i), func() string {
				if e.probeAppend(t, s, n, line) {
					return ""
				}
				return "not acknowledged"
			})
		}
	}
	for _, s := range l.streams {
		var first string
		for i, n := range e.nodes {
			resp, body := coldDo(t, e.client, http.MethodGet, n.StreamURL(s.name)+"?offset=-1", nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s through %s: %d %s", s.name, nodeID(i), resp.StatusCode, body)
			}
			if i == 0 {
				first = string(body)
			} else if string(body) != first {
				t.Errorf("%s reads %q through %s but %q through n1", s.name, body, nodeID(i), first)
			}
		}
	}
	e.verify(t, l.streams)

	owners := e.owners(t, e.db(t))
	perNode := map[string]int{}
	for _, s := range l.streams {
		o := ownerOf(owners, s.name)
		if o == "" {
			t.Errorf("%s: no lease holder", s.name)
			continue
		}
		perNode[o]++
	}
	t.Logf("streams per node: %v", perNode)
	for i := range clusterNodes {
		if perNode[nodeID(i)] == 0 {
			t.Errorf("node %s owns none of %d streams (placement over live nodes): %v", nodeID(i), len(l.streams), perNode)
		}
	}
	if len(perNode) != clusterNodes {
		t.Errorf("lease holders %v, want exactly the nodes n1..n%d", slices.Sorted(maps.Keys(perNode)), clusterNodes)
	}
}

// TestClusterConformanceForwarded runs the server conformance suite against
// a node that owns none of the streams, so that every request is forwarded:
// the node is drained first (it keeps serving, but takes no streams), and
// at the end it holds no lease.
func TestClusterConformanceForwarded(t *testing.T) {
	LatencyBound(t)
	needPieces(t, pieceOwnership, pieceRouting, pieceDrain)
	script := conformancePrereqs(t)
	e := startClusterEnv(t, clusterNodes)
	e.startNodes(t, "--long-poll-timeout", conformanceServerLongPoll.String())
	front := e.nodes[0]
	resp, body := coldDo(t, e.client, http.MethodPost, front.URL+"/v1/admin/node/drain", nil, nil)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("drain n1: %d %s", resp.StatusCode, body)
	}
	runConformance(t, script, front, "cluster, every request forwarded by a node owning nothing")

	owners := e.owners(t, e.db(t))
	held := 0
	for path, o := range owners {
		if o == nodeID(0) {
			held++
			if held <= 5 {
				t.Errorf("the forwarding node holds the lease of %s", path)
			}
		}
	}
	if len(owners) == 0 {
		t.Error("no leases at all after the suite: were the streams served by the cluster?")
	}
	t.Logf("leases after the suite: %d, held by the forwarding node: %d", len(owners), held)
}

// TestClusterRollingRestart restarts the three nodes one after the other
// (SIGTERM: drain and handoff, then a fresh start) while 16 writers, half
// plain and half idempotent producers, append to 200 streams through random
// nodes. Every acknowledged append must be there exactly once and in order,
// at the offset it was acknowledged with, and clients may see only
// successes and 503 with Retry-After (or a refused connection to the node
// that is down).
func TestClusterRollingRestart(t *testing.T) {
	needPieces(t, pieceOwnership, pieceRouting, pieceDrain)
	e := startClusterEnv(t, clusterNodes)
	// A drain that cannot hand everything off in time leaves the rest to
	// the node's return; bounded here so that a node exits well within the
	// harness's stop timeout.
	e.startNodes(t, "--seal-age", "2s", "--drain-timeout", "20s")
	l := newClusterLoad(t, e, 200)
	l.start(16)
	defer l.stop()
	l.waitAcks(t, 400, all, 60*time.Second, "warm-up")
	for i, n := range e.nodes {
		start := time.Now()
		n.Restart(t) // SIGTERM, drain, exit 0; then the same data dir again
		t.Logf("%s restarted in %v; %s", nodeID(i), time.Since(start).Round(time.Millisecond), l.summary())
		l.waitAcks(t, 400, all, 60*time.Second, "appends after restarting "+nodeID(i))
	}
	Summary("CLUSTER rolling restart of 3 nodes, 16 writers, 200 streams: " + l.summary())
	l.finish(t, "rolling restart")
}

// TestClusterPartition cuts one node off from PostgreSQL (a blackhole route
// to the database's address in its namespace; everything else still
// reaches it) while writers append. It must stop acknowledging writes
// within the lease time; meanwhile no other node may serve its streams'
// writes (their unsealed data is on its disk); after healing, every stream
// has one history, the one its acknowledgements describe.
func TestClusterPartition(t *testing.T) {
	needPieces(t, pieceOwnership, pieceRouting)
	e := startClusterEnv(t, clusterNodes)
	e.startNodes(t)
	l := newClusterLoad(t, e, 60)
	conn := e.db(t)
	victim, victimID := e.busiestNode(t, l)
	probe := e.streamOwnedBy(t, l, victimID)
	l.start(8)
	defer l.stop()
	l.waitAcks(t, 200, all, 60*time.Second, "warm-up")

	owned := func(s *loadStream) bool { return ownerOf(e.owners(t, conn), s.name) == victimID }
	host := e.net.Hosts[victim]
	host.Block(t, e.pgAddr)
	cut := time.Now()
	t.Logf("%s cut off from PostgreSQL at %s", victimID, cut.Format(time.TimeOnly))

	// Direct appends to the victim until it stops acknowledging.
	var lastAck, refused time.Duration // after the cut
	for seq := 0; ; seq++ {
		if time.Since(cut) > clusterLeaseBound {
			t.Fatalf("%s still acknowledges writes %v after losing PostgreSQL", victimID, clusterLeaseBound)
		}
		if !e.probeAppend(t, probe, e.nodes[victim], fmt.Sprintf("%s#probe-%d", probe.name, seq)) {
			refused = time.Since(cut)
			break
		}
		lastAck = time.Since(cut)
		time.Sleep(50 * time.Millisecond)
	}
	msg := fmt.Sprintf("the node cut off from PostgreSQL acknowledged its last write %v after the cut (lease TTL %v), refused from %v",
		lastAck.Round(time.Millisecond), clusterLeaseTTL, refused.Round(time.Millisecond))
	t.Log(msg)
	Summary("CLUSTER partition: " + msg)
	if lastAck >= clusterLeaseTTL {
		t.Errorf("%s acknowledged a write %v after the cut, when its lease (TTL %v) may have passed on", victimID, lastAck, clusterLeaseTTL)
	}

	// Past the lease's expiry, the other nodes must still refuse the
	// victim's streams (503), and the other streams go on.
	time.Sleep(clusterCutHold - time.Since(cut))
	l.waitAcks(t, 100, func(s *loadStream) bool { return s != probe }, 60*time.Second, "appends to other streams during the partition")
	for i, n := range e.nodes {
		if i == victim {
			continue
		}
		if e.probeAppend(t, probe, n, fmt.Sprintf("%s#during-partition-via-%s", probe.name, nodeID(i))) {
			t.Errorf("%s acknowledged an append to %s, whose unsealed data is on the partitioned %s", nodeID(i), probe.name, victimID)
		}
	}

	host.Unblock(t, e.pgAddr)
	t.Logf("healed after %v; %s", time.Since(cut).Round(time.Millisecond), l.summary())
	l.waitAcks(t, 50, owned, 90*time.Second, "appends to the healed node's streams")
	l.finish(t, "partition", probe)
}

// TestClusterKill SIGKILLs one node under load: its streams answer 503 with
// Retry-After on the other nodes, the other streams keep working, and
// after its restart (same data directory) everything acknowledged is there.
// A request forwarded to the node as it dies has an unknown outcome: the
// forwarding node must not answer it with 503 and Retry-After (which tells
// a client that nothing was written and a retry is safe) but with 502 or
// 504; a plain append retried after a wrong 503 shows up twice.
func TestClusterKill(t *testing.T) {
	needPieces(t, pieceOwnership, pieceRouting)
	e := startClusterEnv(t, clusterNodes)
	e.startNodes(t)
	l := newClusterLoad(t, e, 60)
	victim, victimID := e.busiestNode(t, l)
	probe := e.streamOwnedBy(t, l, victimID)
	owners := e.owners(t, e.db(t))
	owned := func(s *loadStream) bool { return ownerOf(owners, s.name) == victimID }
	others := func(s *loadStream) bool { return s != probe && !owned(s) }
	l.crashes = true
	l.start(8)
	defer l.stop()
	l.waitAcks(t, 200, all, 60*time.Second, "warm-up")

	e.nodes[victim].Kill()
	killed := time.Now()
	survivor := e.nodes[(victim+1)%clusterNodes]
	eventually(t, 30*time.Second, 100*time.Millisecond, "the killed node's stream answering 503 with Retry-After elsewhere", func() string {
		resp, body, err := tryDo(t.Context(), e.client, http.MethodPost, survivor.StreamURL(probe.name),
			[]byte(probe.name+"#after-kill\n"), map[string]string{"Content-Type": "text/plain"})
		switch {
		case err != nil:
			return err.Error()
		case resp.StatusCode/100 == 2:
			t.Fatalf("%s acknowledged an append to %s while its owner %s is dead", nodeID((victim+1)%clusterNodes), probe.name, victimID)
		case resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "":
			return fmt.Sprintf("%d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		return ""
	})
	t.Logf("503 with Retry-After %v after the kill", time.Since(killed).Round(time.Millisecond))
	l.waitAcks(t, 200, others, 60*time.Second, "appends to the other nodes' streams while one is dead")

	e.nodes[victim].Restart(t)
	l.waitAcks(t, 50, owned, 90*time.Second, "appends to the restarted node's streams")
	l.finish(t, "kill", probe)
}

// TestClusterAdminIndex: after writes spread over three nodes with
// aggressive rotation, the admin API lists the same segment index through
// every node, and `segments verify` (the API and the CLI) finds it clean
// against the object store through every node.
func TestClusterAdminIndex(t *testing.T) {
	needPieces(t, pieceOwnership, pieceRouting)
	e := startClusterEnv(t, clusterNodes)
	e.startNodes(t, aggressiveRotation...)
	l := newClusterLoad(t, e, 30)
	l.start(6)
	l.waitAcks(t, 600, all, 60*time.Second, "appends")
	l.stop()
	e.verify(t, l.streams)

	// Uploads finish asynchronously: wait until every node lists the same
	// index with every row uploaded.
	var lists [clusterNodes][]admin.Segment
	eventually(t, 60*time.Second, 500*time.Millisecond, "one uploaded index through every node", func() string {
		for i, n := range e.nodes {
			segs, err := e.listSegments(n)
			if err != nil {
				return err.Error()
			}
			for _, s := range segs {
				if s.State != admin.StateUploaded {
					return fmt.Sprintf("%s lists %s segment %d as %s", nodeID(i), s.Stream, s.Seg, s.State)
				}
			}
			lists[i] = segs
		}
		for i := 1; i < clusterNodes; i++ {
			if !slices.EqualFunc(lists[0], lists[i], sameSegment) {
				return fmt.Sprintf("n1 lists %d segments, %s %d (or different rows)", len(lists[0]), nodeID(i), len(lists[i]))
			}
		}
		return ""
	})
	if len(lists[0]) == 0 {
		t.Errorf("no segment sealed for %d streams with aggressive rotation", len(l.streams))
	}
	t.Logf("%d segments, the same through every node", len(lists[0]))

	for i, n := range e.nodes {
		verifySegments(t, n)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := exec.CommandContext(ctx, e.bin, "segments", "--url", n.URL, "verify").CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("segments verify through %s: %v\n%s", nodeID(i), err, out)
		}
	}
}

// listSegments returns the whole admin index through node n.
func (e *clusterEnv) listSegments(n *Server) ([]admin.Segment, error) {
	var all []admin.Segment
	after := ""
	for {
		resp, body, err := tryDo(context.Background(), e.client, http.MethodGet,
			n.URL+"/v1/admin/segments?limit=1000&after="+after, nil, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET segments: %d %s", resp.StatusCode, body)
		}
		var page admin.Page
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Segments...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// sameSegment compares what every node must agree on about a row.
func sameSegment(a, b admin.Segment) bool {
	return a.StreamID == b.StreamID && a.Stream == b.Stream && a.Seg == b.Seg && a.FirstPos == b.FirstPos &&
		a.EndPos == b.EndPos && a.Bytes == b.Bytes && a.Messages == b.Messages && a.ObjectKey == b.ObjectKey &&
		a.Checksum == b.Checksum && a.State == b.State
}

// busiestNode returns the index and id of the node owning the most of the
// load's streams.
func (e *clusterEnv) busiestNode(t *testing.T, l *clusterLoad) (int, string) {
	t.Helper()
	owners := e.owners(t, e.db(t))
	count := map[string]int{}
	for _, s := range l.streams {
		count[ownerOf(owners, s.name)]++
	}
	best := 0
	for i := range e.nodes {
		if count[nodeID(i)] > count[nodeID(best)] {
			best = i
		}
	}
	if count[nodeID(best)] == 0 {
		t.Fatalf("no node owns any of the load's streams: leases %v", count)
	}
	return best, nodeID(best)
}

// streamOwnedBy creates streams (not written by the load's writers) until
// one is placed on node id, and returns it.
func (e *clusterEnv) streamOwnedBy(t *testing.T, l *clusterLoad, id string) *loadStream {
	t.Helper()
	conn := e.db(t)
	for i := range 50 {
		s := &loadStream{name: fmt.Sprintf("probe-%s/%d", strings.ToLower(id), i), uncertain: map[string]bool{}}
		l.create(t, s)
		// Placement may take the lease on first use.
		e.probeAppend(t, s, e.randomNode(), s.name+"#first")
		if ownerOf(e.owners(t, conn), s.name) == id {
			return s
		}
	}
	t.Fatalf("none of 50 new streams was placed on %s", id)
	return nil
}

// probeAppend makes one plain append of line (new to s) through n and
// reports whether it was acknowledged (recording it); a refusal must be
// 503 with Retry-After.
func (e *clusterEnv) probeAppend(t *testing.T, s *loadStream, n *Server, line string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, body, err := tryDo(ctx, e.client, http.MethodPost, n.StreamURL(s.name), []byte(line+"\n"), map[string]string{"Content-Type": "text/plain"})
	switch {
	case err != nil:
		s.setUncertain(line)
		return false
	case resp.StatusCode/100 == 2:
		s.mu.Lock()
		s.acks = append(s.acks, clusterAck{line: line, next: resp.Header.Get("Stream-Next-Offset")})
		s.mu.Unlock()
		return true
	case resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "":
		t.Errorf("append to %s through %s: %d Retry-After=%q %s, want success or 503 with Retry-After",
			s.name, n.URL, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	return false
}
