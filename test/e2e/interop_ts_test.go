package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

const (
	// interopMinChecks is how many checks test/interop/ts/interop.mjs runs
	// with the options below; fewer means checks were lost, not passed.
	interopMinChecks = 25
	// interopTimeout bounds the whole node run (it takes about 40 s, half
	// of it writing and reading a 100 MB stream).
	interopTimeout = 5 * time.Minute
	// interopSealBytes is small so that streams span many sealed segments
	// (the 100 MB live:false check).
	interopSealBytes = "1048576"
	// Short server timeouts let the script wait across a timed-out long
	// poll and a server-closed SSE connection within a few seconds.
	interopLongPoll = 2 * time.Second
	interopSSEMax   = 2 * time.Second
)

var interopLine = regexp.MustCompile(`^INTEROP passed=(\d+) failed=(\d+) total=(\d+)`)

// TestInteropTS runs the upstream TypeScript client, @durable-streams/client
// at the version pinned in test/interop/ts/package.json, against the real
// server binary (test/interop/ts/README.md lists what it checks).
// scripts/setup.sh installs the client with npm ci.
func TestInteropTS(t *testing.T) {
	LatencyBound(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	dir := filepath.Join(root, "test", "interop", "ts")
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrFatal(t, "node is not on PATH; the TypeScript interop test needs Node.js (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@durable-streams", "client", "package.json")); err != nil {
		skipOrFatal(t, "the TypeScript client is not installed (%v); run scripts/setup.sh or npm ci in %s", err, dir)
	}

	srv := StartServer(t, BuildServer(t),
		WithLongPollTimeout(interopLongPoll),
		WithArgs("--sse-max-duration", interopSSEMax.String(), "--seal-bytes", interopSealBytes))

	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "interop.mjs",
		"--long-poll-ms", strconv.FormatInt(interopLongPoll.Milliseconds(), 10),
		"--sse-reconnect-ms", strconv.FormatInt(interopSSEMax.Milliseconds(), 10),
		srv.URL)
	cmd.Dir = dir
	lines, elapsed, runErr := runLogged(t, cmd, 5*time.Second)
	if ctx.Err() != nil {
		t.Fatalf("interop.mjs timed out after %v", elapsed)
	}

	var m []string
	for _, l := range lines {
		if mm := interopLine.FindStringSubmatch(l); mm != nil {
			m = mm
			fmt.Println(l) // shown by go test -v (and on failure)
			Summary(l)     // printed by scripts/test.sh after go test
		}
	}
	if m == nil {
		t.Fatalf("no INTEROP line from interop.mjs (%v, after %v)", runErr, elapsed)
	}
	passed, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	if failed != 0 {
		t.Errorf("interop: %d checks failed (FAIL lines above)", failed)
	}
	if passed+failed < interopMinChecks {
		t.Errorf("interop: %d checks ran, want at least %d", passed+failed, interopMinChecks)
	}
	if runErr != nil && failed == 0 {
		t.Errorf("interop.mjs failed (%v) although no check failed", runErr)
	}
}
