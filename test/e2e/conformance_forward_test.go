package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestConformanceForwarded runs the conformance suite against a node that
// serves none of the streams: started with the test-only --forward-all-to,
// it forwards every stream request to a second server process (cluster
// routing, docs/cluster.md), so every answer, long-polls and SSE included,
// crosses one forwarding hop. Afterwards the front node must hold no
// stream and the owner all of them.
func TestConformanceForwarded(t *testing.T) {
	LatencyBound(t)
	script := conformancePrereqs(t)
	bin := BuildServer(t)
	owner := StartServer(t, bin, WithLongPollTimeout(conformanceServerLongPoll),
		WithArgs("--trusted-proxies", "127.0.0.1"))
	front := StartServer(t, bin, WithLongPollTimeout(conformanceServerLongPoll),
		WithArgs("--forward-all-to", owner.URL))
	runConformanceWith(t, script, front, "forwarded to another node", nil, conformanceMinPassed, -1)

	if n := listedStreams(t, front); n != 0 {
		t.Errorf("the forwarding node holds %d streams, want none", n)
	}
	if n := listedStreams(t, owner); n == 0 {
		t.Error("the owner holds no stream: nothing was forwarded")
	}
}

// listedStreams counts the streams srv lists at /v1/streams (up to one
// page).
func listedStreams(t *testing.T, srv *Server) int {
	t.Helper()
	resp, b := coldDo(t, loopbackClient(10*time.Second), http.MethodGet, srv.URL+"/v1/streams?limit=1000", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/streams on %s: %d %s", srv.URL, resp.StatusCode, b)
	}
	var page struct {
		Streams []json.RawMessage `json:"streams"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("GET /v1/streams: %v: %s", err, b)
	}
	return len(page.Streams)
}
