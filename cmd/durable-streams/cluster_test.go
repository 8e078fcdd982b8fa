package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/internal/servertest"
	"github.com/streamtier/durable-streams/server"
)

func TestClusterStatusCLISingle(t *testing.T) {
	e := newCLIEnv(t, "")
	e.send(http.MethodPut, "a", "", http.StatusCreated)
	code, out, errs := cli(t, "cluster", "status", "--url", e.url)
	if code != exitOK || !strings.Contains(out, "(this node) *") || !strings.Contains(out, "single node (SQLite catalog): 1 streams") {
		t.Fatalf("single node: %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli(t, "cluster", "status", "--url", e.url, "--json")
	var st admin.ClusterStatus
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.Mode != admin.ModeSingle {
		t.Fatalf("--json: %d %s", code, out)
	}
}

// TestClusterStatusCLI runs a node on PostgreSQL and writes the membership
// and leases of two more into its catalog: n2 live, holding two leases,
// and "gone", no longer registered, named by an expired lease.
func TestClusterStatusCLI(t *testing.T) {
	pg := pgtest.Start(t)
	srv, ts := servertest.Start(t, server.Config{DataDir: t.TempDir(), Cluster: server.Cluster{
		DSN: pg.NewDatabase(t), NodeID: "n1", AdvertiseURL: "http://127.0.0.1:1"}})
	t.Setenv("DS_ADMIN_TOKEN", "")
	t.Setenv("DURABLE_STREAMS_URL", ts.URL)
	ctx := t.Context()
	cat := srv.Catalog()
	for _, n := range []string{"n1", "n2"} {
		if err := cat.RegisterNode(ctx, n, "http://"+n+".test:4437"); err != nil {
			t.Fatal(err)
		}
	}
	e := &cliEnv{t: t, srv: srv, url: ts.URL}
	for _, p := range []string{"x1", "x2", "x3"} {
		e.send(http.MethodPut, p, "", http.StatusCreated)
	}
	lease := func(path, node string, ttl time.Duration) {
		t.Helper()
		row, err := cat.Get(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cat.AcquireLease(ctx, row.ID, node, ttl); err != nil {
			t.Fatal(err)
		}
	}
	lease("x1", "n2", time.Hour)
	lease("x2", "n2", time.Hour)
	lease("x3", "gone", time.Millisecond)
	time.Sleep(5 * time.Millisecond)

	code, out, errs := cli(t, "cluster", "status")
	if code != exitError || !strings.Contains(errs, "1 of 3 nodes not live: gone") {
		t.Errorf("exit %d, stderr %q: want 1 and the node that is not live", code, errs)
	}
	for _, want := range []string{"n1 *", "http://n2.test:4437", "unregistered", "cluster: 3 nodes, 2 live",
		"streams: 3, 2 leased, 1 with an expired lease, 0 without a holder"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	var n2 string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "n2 ") {
			n2 = strings.Join(strings.Fields(l), " ")
		}
	}
	if !strings.HasPrefix(n2, "n2 http://n2.test:4437 yes ") || !strings.HasSuffix(n2, " ago 2 2") {
		t.Errorf("n2's row %q", n2)
	}

	// n2's leases, one per page.
	code, out, errs = cli(t, "cluster", "status", "--node", "n2", "--limit", "1", "--all")
	if code != exitOK || strings.Count(out, "STREAM") != 1 || !strings.Contains(out, "x1") || !strings.Contains(out, "x2") {
		t.Errorf("--node n2 --all: %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, "cluster", "status", "--node", "n2", "--limit", "1")
	if code != exitOK || strings.Contains(out, "x2") || !strings.Contains(errs, "more leases: --all") {
		t.Errorf("--node n2 --limit 1: %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli(t, "cluster", "status", "--node", "n2", "--limit", "1", "--all", "--json")
	var page admin.LeasePage
	if code != exitOK || json.Unmarshal([]byte(out), &page) != nil || len(page.Leases) != 2 || page.Leases[0].Epoch != 1 {
		t.Errorf("--node n2 --all --json: %d %s", code, out)
	}
	// The node's metrics carry its id.
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `durable_streams_http_requests_in_flight{node="n1"}`) {
		t.Errorf("metrics without the node label:\n%.2000s", metrics)
	}
	if code, _, errs = cli(t, "cluster", "status", "--node", "nobody"); code != exitOK || !strings.Contains(errs, `no leases name node "nobody"`) {
		t.Errorf("--node nobody: %d %s", code, errs)
	}
}

func TestClusterCLIUsage(t *testing.T) {
	wantUsageErrors(t,
		[]string{"cluster"},
		[]string{"cluster", "frobnicate"},
		[]string{"cluster", "status", "extra"},
		[]string{"cluster", "status", "--all"},
		[]string{"cluster", "status", "--url", "ftp://x"},
	)
	if code, out, _ := cli(t, "cluster", "help"); code != exitOK || !strings.Contains(out, "not live") {
		t.Errorf("cluster help: %d %s", code, out)
	}
	if code, _, _ := cli(t, "cluster", "status", "--url", "http://127.0.0.1:1"); code != exitError {
		t.Errorf("status against nothing: exit %d", code)
	}
}
