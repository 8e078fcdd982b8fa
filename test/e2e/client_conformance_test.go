package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientConformanceTimeout bounds one adapter's run (about 30-100 s each).
const clientConformanceTimeout = 8 * time.Minute

var (
	clientConformanceLine = regexp.MustCompile(`^CLIENT-CONFORMANCE adapter=(\w+) passed=(\d+) failed=(\d+) skipped=(\d+) total=(\d+)`)
	clientConformanceFail = regexp.MustCompile(`^FAIL (\S+): (.*)$`)
)

// clientConformanceReference is what the upstream runner's own reference
// server (@durable-streams/server, as pinned in
// test/interop/client-conformance/package-lock.json) gives with the same
// tarball: every test that runs passes there. Skips are the adapter's
// missing features, the same against any server.
var clientConformanceReference = map[string]struct{ passed, skipped int }{
	"ts": {passed: 259, skipped: 10},
	"go": {passed: 252, skipped: 17},
}

// clientConformanceDifferences are the tests that pass on the reference
// and are meant to fail here, with why. Anything else that fails is a bug.
// There are none: SSE text is written as the reference writes it, so
// consumer-sse/sse-strips-single-leading-space passes too
// (docs/protocol-choices.md).
var clientConformanceDifferences = map[string]string{}

// TestClientConformance runs the upstream client conformance runner
// (scripts/client-conformance.sh) with the TypeScript and Go adapters
// against the real server binary: every test that passes on the
// reference must pass here, except clientConformanceDifferences.
func TestClientConformance(t *testing.T) {
	t.Parallel() // with the latency-bound tests; each adapter's run is one
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	script := filepath.Join(root, "scripts", "client-conformance.sh")
	dir := filepath.Join(root, "test", "interop", "client-conformance")
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFatal(t, "node is not on PATH; the client conformance runner needs Node.js (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "tsx")); err != nil {
		skipOrFatal(t, "the runner's npm dependencies are not installed (%v); run scripts/setup.sh", err)
	}
	tarball := os.Getenv("DS_CLIENTS_TARBALL")
	if tarball == "" {
		tarball = filepath.Join(root, "..", "shared", "upstream", "durable-streams-clients-82f9963a.tar.gz")
	}
	if _, err := os.Stat(tarball); err != nil {
		skipOrFatal(t, "the upstream client tarball is missing (%v); set DS_CLIENTS_TARBALL", err)
	}
	bin := BuildServer(t)

	for _, adapter := range []string{"ts", "go"} {
		t.Run(adapter, func(t *testing.T) {
			LatencyBound(t)
			// The runner's own server uses a 500 ms long-poll timeout, and
			// its tests wait 1 s for a long poll to time out.
			srv := StartServer(t, bin, WithLongPollTimeout(500*time.Millisecond), WithArgs("--enable-test-faults"))
			lines := runClientConformance(t, script, tarball, adapter, srv.URL)
			checkClientConformance(t, adapter, lines)
		})
	}
}

// runClientConformance runs the script for one adapter against url and
// returns its output lines.
func runClientConformance(t *testing.T, script, tarball, adapter, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientConformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "--adapter", adapter, "--server", url)
	cmd.Env = append(os.Environ(), "DS_CLIENTS_TARBALL="+tarball)
	lines, elapsed, runErr := runLogged(t, cmd, 5*time.Second)
	if ctx.Err() != nil {
		t.Fatalf("client conformance (%s) timed out after %v", adapter, elapsed)
	}
	if runErr != nil {
		t.Logf("client-conformance.sh: %v (failures are checked below)", runErr)
	}
	return lines
}

// checkClientConformance compares the script's summary and failures with
// the reference's results.
func checkClientConformance(t *testing.T, adapter string, lines []string) {
	t.Helper()
	var summary []string
	failed := map[string]string{}
	for _, l := range lines {
		if m := clientConformanceLine.FindStringSubmatch(l); m != nil {
			summary = m
			fmt.Println(l) // shown by go test -v (and on failure)
			Summary(l)     // printed by scripts/test.sh after go test
		}
		if m := clientConformanceFail.FindStringSubmatch(l); m != nil {
			failed[m[1]] = m[2]
		}
	}
	if summary == nil {
		t.Fatalf("no CLIENT-CONFORMANCE line from the script (its output is above)")
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	passed, nfailed, skipped := atoi(summary[2]), atoi(summary[3]), atoi(summary[4])
	var unexpected []string
	for name, reason := range failed {
		if _, ok := clientConformanceDifferences[name]; !ok {
			unexpected = append(unexpected, name+": "+reason)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("%s adapter: %d tests failed that pass on the reference:\n  %s", adapter, len(unexpected), strings.Join(unexpected, "\n  "))
	}
	if nfailed != len(failed) {
		t.Errorf("%s adapter: the summary counts %d failures but %d FAIL lines were found", adapter, nfailed, len(failed))
	}
	ref := clientConformanceReference[adapter]
	if skipped != ref.skipped {
		t.Errorf("%s adapter: %d tests skipped, the reference run skips %d", adapter, skipped, ref.skipped)
	}
	if want := ref.passed - len(failed); passed < want {
		t.Errorf("%s adapter: %d tests passed, want at least %d (the reference's %d less the known differences)", adapter, passed, want, ref.passed)
	}
}
