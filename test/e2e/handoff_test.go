package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestSIGTERMDrainHandsOff stops a cluster node with SIGTERM and continues
// its streams on a node with an empty data directory: the drain sealed
// and uploaded everything and left each stream's state in PostgreSQL, so
// the next node serves the same bytes at the same offsets, keeps the
// producer's state (a retry is a duplicate) and Stream-Seq, and appends
// at the old tail.
func TestSIGTERMDrainHandsOff(t *testing.T) {
	pg := pgtest.Start(t)
	bin := BuildServer(t)
	dsn, cold := pg.NewDatabase(t), t.TempDir()
	node := func(id string) *Server {
		return StartServer(t, bin, WithDataDir(t.TempDir()),
			WithEnv("DS_CLUSTER_DSN="+dsn, "DS_NODE_ID="+id, "DS_COLD_STORE=local", "DS_COLD_DIR="+cold),
			WithArgs("--seal-bytes", "64"), WithLogLevel("info"))
	}
	a := node("a")
	url := a.StreamURL("handoff/s")
	do := func(method, u string, h map[string]string, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	prod := func(seq int, streamSeq string) map[string]string {
		return map[string]string{"Producer-Id": "w", "Producer-Epoch": "0", "Producer-Seq": strconv.Itoa(seq), "Stream-Seq": streamSeq}
	}
	if r := do("PUT", url, nil, ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", r.StatusCode)
	}
	var want strings.Builder
	for i := range 20 {
		msg := "message number " + strconv.Itoa(i) + ";"
		if r := do("POST", url, prod(i, "q"+strconv.Itoa(100+i)), msg); r.StatusCode/100 != 2 {
			t.Fatalf("append %d: %d", i, r.StatusCode)
		}
		want.WriteString(msg)
	}
	a.Stop()
	if !a.logContains("drained") {
		t.Fatalf("no drain in the log of the stopped node:\n%s", a.logTail())
	}

	b := node("b")
	url = b.StreamURL("handoff/s")
	// Until the stopped node's membership runs out, placement may still
	// name it: 503 with Retry-After, which clients retry.
	r := do("GET", url+"?offset=-1", nil, "")
	for deadline := time.Now().Add(30 * time.Second); r.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		r = do("GET", url+"?offset=-1", nil, "")
	}
	got, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK || string(got) != want.String() {
		t.Fatalf("GET on the next node: %d %q, want %q", r.StatusCode, got, want.String())
	}
	tail := r.Header.Get("Stream-Next-Offset")
	if r := do("POST", url, prod(19, "q119"), "message number 19;"); r.StatusCode != http.StatusNoContent ||
		r.Header.Get("Stream-Next-Offset") != tail {
		t.Fatalf("retry of the last append: %d, offset %q, want a duplicate at %q", r.StatusCode, r.Header.Get("Stream-Next-Offset"), tail)
	}
	if r := do("POST", url, map[string]string{"Stream-Seq": "q050"}, "old"); r.StatusCode != http.StatusConflict {
		t.Fatalf("Stream-Seq regression after the handoff: %d, want 409", r.StatusCode)
	}
	if r := do("POST", url, prod(20, "q120"), "after;"); r.StatusCode != http.StatusOK {
		t.Fatalf("append after the handoff: %d", r.StatusCode)
	}
	r = do("GET", url+"?offset=-1", nil, "")
	if got, _ := io.ReadAll(r.Body); string(got) != want.String()+"after;" {
		t.Fatalf("whole stream after the handoff: %q", got)
	}
}
