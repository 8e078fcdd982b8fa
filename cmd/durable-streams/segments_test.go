package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/internal/servertest"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

// cliEnv is a server behind an httptest.Server.
type cliEnv struct {
	t   *testing.T
	cfg server.Config
	srv *server.Server
	url string
}

func newCLIEnv(t *testing.T, token string) *cliEnv {
	t.Helper()
	e := &cliEnv{t: t, cfg: server.Config{
		DataDir:    t.TempDir(),
		Rotation:   sequencer.RotationPolicy{SealMessages: 1},
		AdminToken: token,
	}}
	srv, ts := servertest.Start(t, e.cfg)
	e.srv, e.url = srv, ts.URL
	// Keep the environment of the developer's shell out of the tests.
	t.Setenv("DS_ADMIN_TOKEN", "")
	t.Setenv("DURABLE_STREAMS_URL", "")
	return e
}

func (e *cliEnv) send(method, path, body string, want int) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+"/v1/stream/"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
	}
}

// awaitUploaded waits for n uploaded segments of path.
func (e *cliEnv) awaitUploaded(n int64, path string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := e.srv.Admin().StreamStats(e.t.Context(), path)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Cold.ByState[admin.StateUploaded] == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %d uploaded segments of %s: %+v", n, path, st.Cold)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli runs the command line and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSegmentsCLI(t *testing.T) {
	e := newCLIEnv(t, "")
	e.send("PUT", "cli/s", "", http.StatusCreated)
	for _, m := range []string{"one", "two", "three"} {
		e.send("POST", "cli/s", m, http.StatusNoContent)
	}
	e.awaitUploaded(3, "cli/s")

	// list
	code, out, errs := cli(t, "segments", "list", "--url", e.url)
	if code != exitOK || !strings.Contains(out, "STREAM") || strings.Count(out, "cli/s") != 3 || !strings.Contains(out, "uploaded") {
		t.Fatalf("list: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "segments", "--url", e.url, "list", "--limit", "2")
	if code != exitOK || strings.Count(out, "cli/s") != 2 || !strings.Contains(errs, "--after") {
		t.Fatalf("list --limit 2: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "segments", "list", "--url", e.url, "--limit", "1", "--all", "--json")
	var all admin.Page
	if err := json.Unmarshal([]byte(out), &all); code != exitOK || err != nil || len(all.Segments) != 3 {
		t.Fatalf("list --all --json: %d %v\n%s\n%s", code, err, out, errs)
	}
	code, out, _ = cli(t, "segments", "list", "--url", e.url, "--json", "--stream", "cli/s", "--state", "sealed")
	var page admin.Page
	if err := json.Unmarshal([]byte(out), &page); code != exitOK || err != nil || len(page.Segments) != 0 {
		t.Fatalf("list --state sealed --json: %d %v\n%s", code, err, out)
	}
	if code, _, errs = cli(t, "segments", "list", "--url", e.url, "--state", "bogus"); code != exitError || !strings.Contains(errs, "400") {
		t.Fatalf("list --state bogus: %d %s", code, errs)
	}

	// stats
	code, out, errs = cli(t, "segments", "stats", "--url", e.url, "--stream", "cli/s")
	if code != exitOK || !strings.Contains(out, "cli/s") || !strings.Contains(out, "3 (uploaded 3, sealed 0)") {
		t.Fatalf("stats --stream: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "segments", "stats", "--url", e.url)
	if code != exitOK || !strings.Contains(out, "streams") {
		t.Fatalf("stats: %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs = cli(t, "segments", "stats", "--url", e.url, "--stream", "missing"); code != exitError || !strings.Contains(errs, "404") {
		t.Fatalf("stats of a missing stream: %d %s", code, errs)
	}

	// verify: clean, then dirty
	code, out, errs = cli(t, "segments", "verify", "--url", e.url)
	if code != exitOK || !strings.Contains(out, "verified") {
		t.Fatalf("verify of a clean store: %d\n%s\n%s", code, out, errs)
	}
	stray := filepath.Join(e.cfg.DataDir, "cold", "999", "0000000000000000.seg")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("stray"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, "segments", "verify", "--url", e.url)
	if code != exitError || !strings.Contains(out, "999/0000000000000000.seg") || !strings.Contains(errs, "1 orphaned") {
		t.Fatalf("verify with a stray object: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = cli(t, "segments", "verify", "--url", e.url, "--json")
	var rep admin.Report
	if err := json.Unmarshal([]byte(out), &rep); code != exitError || err != nil || rep.OrphanedCount != 1 {
		t.Fatalf("verify --json: %d %v\n%s", code, err, out)
	}

	// gc: the stray object is too young to collect
	code, out, errs = cli(t, "segments", "gc", "--url", e.url)
	if code != exitOK || !strings.Contains(out, "dry run") || !strings.Contains(out, admin.ReasonTooYoung) {
		t.Fatalf("gc: %d\n%s\n%s", code, out, errs)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stray, old, old); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, "segments", "gc", "--url", e.url, "--json")
	var g admin.GCReport
	if err := json.Unmarshal([]byte(out), &g); code != exitOK || err != nil || !g.DryRun || g.ObjectCount != 1 {
		t.Fatalf("gc --json: %d %v\n%s", code, err, out)
	}
	code, out, errs = cli(t, "segments", "gc", "--url", e.url, "--apply")
	if code != exitOK || !strings.Contains(out, "deleted 1 objects") {
		t.Fatalf("gc --apply: %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs = cli(t, "segments", "verify", "--url", e.url); code != exitOK {
		t.Fatalf("verify after gc: %d\n%s\n%s", code, out, errs)
	}
}

func TestSegmentsCLIToken(t *testing.T) {
	e := newCLIEnv(t, "tok3n")
	code, _, errs := cli(t, "segments", "stats", "--url", e.url)
	if code != exitError || !strings.Contains(errs, "401") || !strings.Contains(errs, "--token") {
		t.Fatalf("without a token: %d %s", code, errs)
	}
	if code, _, errs = cli(t, "segments", "stats", "--url", e.url, "--token", "wrong"); code != exitError || !strings.Contains(errs, "401") {
		t.Fatalf("with a wrong token: %d %s", code, errs)
	}
	if code, _, errs = cli(t, "segments", "stats", "--url", e.url, "--token", "tok3n"); code != exitOK {
		t.Fatalf("with the token: %d %s", code, errs)
	}
	t.Setenv("DS_ADMIN_TOKEN", "tok3n")
	t.Setenv("DURABLE_STREAMS_URL", e.url)
	if code, _, errs = cli(t, "segments", "verify"); code != exitOK {
		t.Fatalf("token and URL from the environment: %d %s", code, errs)
	}
}

// wantUsageErrors checks that each command line exits with exitUsage.
func wantUsageErrors(t *testing.T, lines ...[]string) {
	t.Helper()
	for _, args := range lines {
		if code, _, errs := cli(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
	}
}

func TestSegmentsCLIUsage(t *testing.T) {
	wantUsageErrors(t,
		[]string{"segments"},
		[]string{"segments", "frobnicate"},
		[]string{"segments", "list", "extra"},
		[]string{"segments", "list", "--no-such-flag"},
		[]string{"segments", "verify", "--url", "ftp://x"},
	)
	if code, out, _ := cli(t, "segments", "help"); code != exitOK || !strings.Contains(out, "verify") {
		t.Errorf("segments help: %d %s", code, out)
	}
	if code, _, _ := cli(t, "segments", "verify", "--url", "http://127.0.0.1:1"); code != exitError {
		t.Errorf("verify against nothing: exit %d", code)
	}
	if code, out, _ := cli(t, "help"); code != exitOK || !strings.Contains(out, "segments") {
		t.Errorf("help does not mention segments: %s", out)
	}
}
