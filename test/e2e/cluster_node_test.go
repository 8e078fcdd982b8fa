package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/proctest"
)

// TestClusterNamespaceNode runs one cluster node as a separate host: in a
// network namespace, with the catalog in PostgreSQL and sealed segments in
// MinIO, both reached over the bridge, and its clients in the root
// namespace. A second node on the same database either is refused (the
// one-node lock) or, once ownership with fencing exists, serves the first
// node's stream exactly as written, or answers 503: never another history.
// It also checks the cluster tests' write load and its verification
// against a node crashed under load.
func TestClusterNamespaceNode(t *testing.T) {
	e := startClusterEnv(t, 2)
	n1 := e.startNode(t, 0, aggressiveRotation...)
	if !strings.HasPrefix(n1.URL, "http://"+e.net.Hosts[0].Addr.String()+":") {
		t.Fatalf("node URL %s is not on its host's address %v", n1.URL, e.net.Hosts[0].Addr)
	}

	const name = "ns/one"
	url := n1.StreamURL(name)
	createStream(t, e.client, url, "text/plain", nil)
	var want strings.Builder
	for i := range 40 {
		line := fmt.Sprintf("line %d\n", i)
		appendTo(t, e.client, url, "text/plain", []byte(line))
		want.WriteString(line)
	}
	if got := e.readStream(t, name, "-1"); got != want.String() {
		t.Fatalf("read back %q, want %q", got, want.String())
	}

	// The catalog and the segment index are in PostgreSQL, the sealed
	// segments in MinIO (16 messages per segment: at least two sealed).
	conn := e.db(t)
	eventually(t, 30*time.Second, 200*time.Millisecond, "segments indexed in PostgreSQL and stored in MinIO", func() string {
		var streams, segs int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM streams WHERE path LIKE '%ns/one'`).Scan(&streams); err != nil {
			return err.Error()
		}
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM segments`).Scan(&segs); err != nil {
			return err.Error()
		}
		objs, err := e.mio.Objects(t.Context(), e.mio.Bucket, coldPrefix+"/")
		if err != nil {
			return err.Error()
		}
		if streams != 1 || segs < 2 || len(objs) < 2 {
			return fmt.Sprintf("streams=%d index rows=%d objects=%d", streams, segs, len(objs))
		}
		return ""
	})

	// The node crashes under load and comes back with everything
	// acknowledged, at the offsets acknowledged.
	l := newClusterLoad(t, e, 20)
	l.start(4)
	defer l.stop()
	l.waitAcks(t, 100, all, 60*time.Second, "appends before the crash")
	n1.Kill()
	n1.Restart(t)
	l.waitAcks(t, 100, all, 60*time.Second, "appends after the crash")
	l.finish(t, "crash under load")
	if got := e.readStream(t, name, "-1"); got != want.String() {
		t.Fatalf("after a crash read %q, want %q", got, want.String())
	}

	// A second node on the same database.
	out, up := e.tryNode(t, 1, 10*time.Second, func() {
		t.Logf("second node came up (the one-node lock is gone)")
		resp, body, err := tryDo(t.Context(), e.client, http.MethodGet, "http://"+e.nodeAddr(1)+StreamPrefix+name+"?offset=-1", nil, nil)
		switch {
		case err != nil:
			t.Errorf("GET through the second node: %v", err)
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			t.Logf("second node answers 503 with Retry-After for the first node's stream")
		case resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.HasPrefix(want.String(), string(body)):
			t.Errorf("second node answered %d %q for the first node's stream, want its content or 503 with Retry-After", resp.StatusCode, body)
		}
	})
	switch {
	case !up && strings.Contains(out, "another node is serving from this database"):
		t.Logf("second node refused by the one-node lock, as main has it today")
	case !up:
		t.Fatalf("second node exited without the one-node lock's reason:\n%s", out)
	}
	if got := e.readStream(t, name, "-1"); got != want.String() {
		t.Fatalf("after the second node read %q, want %q", got, want.String())
	}
}

// tryNode starts node i outside the harness and reports whether it became
// healthy within d, and its output. While it is up, whileUp runs; then it
// is killed.
func (e *clusterEnv) tryNode(t *testing.T, i int, d time.Duration, whileUp func()) (string, bool) {
	t.Helper()
	args := append([]string{"serve", "--addr", e.nodeAddr(i), "--data-dir", t.TempDir()}, e.nodeArgs(i)...)
	cmd := e.net.Hosts[i].Command(e.bin, args...)
	cmd.Env = append(serverEnv(), e.nodeEnv()...)
	cmd.SysProcAttr = sysProcAttr()
	out := &proctest.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		killProcess(cmd)
		<-done
	}()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return out.String(), false
		case <-time.After(100 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		resp, _, err := tryDo(ctx, e.client, http.MethodGet, "http://"+e.nodeAddr(i)+"/healthz", nil, nil)
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			whileUp()
			return out.String(), true
		}
	}
	return out.String(), false
}
