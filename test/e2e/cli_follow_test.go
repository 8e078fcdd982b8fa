package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIPortCreateSubscribe starts the background server with --port,
// appends to a stream that does not exist yet (created, since the server
// is the CLI's own), and subscribes with -n and --jsonl.
func TestCLIPortCreateSubscribe(t *testing.T) {
	c := newCLIEnv(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	res := c.must(0, "", "server", "start", "--port", strconv.Itoa(port))
	if strings.TrimSpace(res.stdout) != url {
		t.Fatalf("server start --port %d printed %q, want %s", port, res.stdout, url)
	}

	res = c.must(0, "", "stream", "append", "auto/j", "-e", `{"n":1}`)
	if !strings.Contains(res.stderr, "created stream auto/j (application/json)") {
		t.Errorf("append to a missing stream of the local server: %q", res.stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, c.bin, "stream", "subscribe", "auto/j", "-n", "2", "--jsonl")
	sub.Env = c.env
	var out, errb bytes.Buffer
	sub.Stdout, sub.Stderr = &out, &errb
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// subscribe connects at some moment during these appends: it prints
	// two consecutive values of them.
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	var waitErr error
appends:
	for i := 2; ; i++ {
		c.must(0, "", "stream", "append", "auto/j", "-e", strconv.Itoa(i))
		select {
		case waitErr = <-exited:
			break appends
		case <-time.After(100 * time.Millisecond):
		}
	}
	if waitErr != nil {
		t.Fatalf("subscribe -n 2: %v\n%s", waitErr, errb.String())
	}
	type jsonl struct {
		Offset string          `json:"offset"`
		Data   json.RawMessage `json:"data"`
	}
	var lines []jsonl
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var v jsonl
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("subscribe line %q: %v", l, err)
		}
		lines = append(lines, v)
	}
	if len(lines) != 2 {
		t.Fatalf("subscribe -n 2 --jsonl printed %q", out.String())
	}
	k, err := strconv.Atoi(string(lines[0].Data))
	if err != nil || k < 2 || string(lines[1].Data) != strconv.Itoa(k+1) || lines[1].Offset == "" {
		t.Errorf("subscribe -n 2 --jsonl printed %q, want two consecutive values appended after it started", out.String())
	}
	// The last line's offset resumes right after what was printed (or,
	// when k+1 came in one batch with later values, after that batch,
	// which stderr then says).
	if !strings.Contains(errb.String(), "next offset: ") {
		t.Errorf("subscribe stderr: %q", errb.String())
	}
	res = c.must(0, "", "stream", "get", "auto/j", "--offset", lines[1].Offset, "-n", "1", "--output", "lines")
	if next := strings.TrimSpace(res.stdout); next != "" {
		n, err := strconv.Atoi(next)
		skipped := strings.Contains(errb.String(), "not printed")
		if err != nil || n < k+2 || (!skipped && n != k+2) {
			t.Errorf("get from the last line's offset: %q, want %d (stderr %q)", next, k+2, errb.String())
		}
	}
	res = c.must(0, "", "stream", "get", "auto/j", "-n", "1", "--output", "lines")
	if res.stdout != "{\"n\":1}\n" {
		t.Errorf("get -n 1: %q", res.stdout)
	}
}

// TestCLIServerRun runs the server in the foreground with server run and
// --port, and stops it with SIGTERM.
func TestCLIServerRun(t *testing.T) {
	bin := BuildServer(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "server", "run", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--log-level", "warn")
	cmd.Env = serverEnv()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server run --port %d not ready: %v\n%s", port, err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server run after SIGTERM: %v\n%s", err, errb.String())
	}
}
