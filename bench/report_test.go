package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReport checks the table of medians: one value column per target and
// one ratio column per peer, "–" for a target without results and "n/a"
// for a ratio that cannot be taken.
func TestReport(t *testing.T) {
	lines := []string{
		`{"target":"ours","workload":"append-1x64","metric":"throughput","value":300,"unit":"ops/s"}`,
		`{"target":"ours","workload":"append-1x64","metric":"throughput","value":100,"unit":"ops/s"}`,
		`{"target":"ours","workload":"append-1x64","metric":"throughput","value":200,"unit":"ops/s"}`,
		`{"target":"node","workload":"append-1x64","metric":"throughput","value":100,"unit":"ops/s"}`,
		`{"target":"caddy","workload":"append-1x64","metric":"throughput","value":400,"unit":"ops/s"}`,
		`{"target":"ours","workload":"sse-latency","metric":"ack_to_recv","value":-1,"unit":"ms"}`,
		`{"target":"node","workload":"sse-latency","metric":"ack_to_recv","value":2,"unit":"ms"}`,
		"not a result line",
	}
	file := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peers string
		want  []string
	}{
		{"node", []string{
			"| workload | metric | unit | ours | node | ours / node |",
			"|---|---|---|---:|---:|---:|",
			"| append-1x64 | throughput | ops/s | 200.0 | 100.0 | 2.00× |",
			"| sse-latency | ack_to_recv | ms | -1.000 | 2.000 | n/a |",
		}},
		{"node,caddy", []string{
			"| workload | metric | unit | ours | node | caddy | ours / node | ours / caddy |",
			"|---|---|---|---:|---:|---:|---:|---:|",
			"| append-1x64 | throughput | ops/s | 200.0 | 100.0 | 400.0 | 2.00× | 0.50× |",
			"| sse-latency | ack_to_recv | ms | -1.000 | 2.000 | – | n/a | n/a |",
		}},
	} {
		var out, errs bytes.Buffer
		if err := report([]string{"-peer", tc.peers, file}, &out, &errs); err != nil {
			t.Fatalf("report -peer %s: %v (%s)", tc.peers, err, errs.String())
		}
		if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("report -peer %s:\n%s\nwant:\n%s", tc.peers, out.String(), strings.Join(tc.want, "\n"))
		}
	}
}
