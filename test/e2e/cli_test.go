package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliEnv runs the durable-streams CLI with its own state directory and a
// free port for the background server, which is stopped at cleanup.
type cliEnv struct {
	t     *testing.T
	bin   string
	state string
	addr  string
	env   []string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	c := &cliEnv{t: t, bin: BuildServer(t), state: t.TempDir()}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.env = append(serverEnv(),
		"DS_STATE_DIR="+c.state,
		"DS_ADDR="+c.addr,
		"DS_LOG_LEVEL=warn",
		"DS_LONG_POLL_TIMEOUT=2s",
		"DURABLE_STREAMS_URL=", // the local daemon, never a developer's server
	)
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(c.cleanup)
	return c
}

// cleanup stops the daemon; if stop fails it kills the recorded pid, so
// no test leaves a server behind.
func (c *cliEnv) cleanup() {
	res := c.run("", "server", "stop", "--timeout", "10s")
	if res.code != 0 {
		c.t.Errorf("server stop at cleanup: exit %d: %s", res.code, res.stderr)
		if raw, err := os.ReadFile(filepath.Join(c.state, "server.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if c.t.Failed() {
		if raw, err := os.ReadFile(filepath.Join(c.state, "server.log")); err == nil && len(raw) > 0 {
			c.t.Logf("server.log:\n%s", lastLines(string(raw), 30))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// run runs the CLI with stdin and waits (at most 60 s).
func (c *cliEnv) run(stdin string, args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		c.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// must runs the CLI and fails the test unless it exits with want.
func (c *cliEnv) must(want int, stdin string, args ...string) cliResult {
	c.t.Helper()
	res := c.run(stdin, args...)
	if res.code != want {
		c.t.Fatalf("durable-streams %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// processAlive reports whether pid runs; a zombie does not (the daemon is
// reparented to an init that may reap it late).
func processAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	i := bytes.LastIndexByte(raw, ')')
	return i < 0 || !bytes.HasPrefix(bytes.TrimSpace(raw[i+1:]), []byte("Z"))
}

func (c *cliEnv) pidFile() string { return filepath.Join(c.state, "server.pid") }

func TestCLIServerLifecycle(t *testing.T) {
	c := newCLIEnv(t)
	url := "http://" + c.addr

	res := c.must(3, "", "server", "status")
	if !strings.HasPrefix(res.stdout, "stopped") {
		t.Errorf("status of a stopped server: %q", res.stdout)
	}
	res = c.must(0, "", "server", "start")
	if got := strings.TrimSpace(res.stdout); got != url {
		t.Errorf("start printed %q, want %q", got, url)
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz after start: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(c.state, "data")); err != nil {
		t.Errorf("default data dir: %v", err)
	}

	res = c.must(0, "", "server", "start")
	if strings.TrimSpace(res.stdout) != url || !strings.Contains(res.stderr, "already running") {
		t.Errorf("second start: stdout %q, stderr %q", res.stdout, res.stderr)
	}

	res = c.must(0, "", "server", "status")
	for _, want := range []string{"running", "pid:", url, "data dir:", filepath.Join(c.state, "data"), "uptime:", "ready:"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, res.stdout)
		}
	}
	res = c.must(0, "", "server", "status", "--json")
	var st struct {
		Running bool   `json:"running"`
		PID     int    `json:"pid"`
		URL     string `json:"url"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || !st.Running || st.URL != url || st.PID <= 0 {
		t.Errorf("status --json: %q (%v)", res.stdout, err)
	}

	res = c.must(0, "", "server", "restart")
	if strings.TrimSpace(res.stdout) != url {
		t.Errorf("restart printed %q", res.stdout)
	}
	res = c.must(0, "", "server", "status", "--json")
	var st2 struct{ PID int }
	json.Unmarshal([]byte(res.stdout), &st2)
	if st2.PID == st.PID || st2.PID <= 0 {
		t.Errorf("restart kept pid %d (now %d)", st.PID, st2.PID)
	}

	c.must(0, "", "server", "stop")
	if _, err := os.Stat(c.pidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file after stop: %v", err)
	}
	if processAlive(st2.PID) {
		t.Errorf("pid %d still alive after stop", st2.PID)
	}
	c.must(3, "", "server", "status")
	res = c.must(0, "", "server", "stop")
	if !strings.Contains(res.stderr, "not running") {
		t.Errorf("stop of a stopped server: %q", res.stderr)
	}
}

func TestCLIServerStalePidFile(t *testing.T) {
	c := newCLIEnv(t)

	// A pid of a process that is gone.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no true(1): %v", err)
	}
	os.WriteFile(c.pidFile(), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600)
	res := c.must(3, "", "server", "status")
	if !strings.Contains(res.stdout, "stale pid file") {
		t.Errorf("status with a dead pid: %q", res.stdout)
	}
	if _, err := os.Stat(c.pidFile()); !os.IsNotExist(err) {
		t.Errorf("status left the stale pid file: %v", err)
	}

	// A pid reused by another program: the pid file must not make us
	// report it as the server, let alone signal it.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	os.WriteFile(c.pidFile(), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600)
	res = c.must(3, "", "server", "status")
	if !strings.Contains(res.stdout, "another program") {
		t.Errorf("status with a reused pid: %q", res.stdout)
	}
	// The same with an info file whose start time does not match.
	os.WriteFile(c.pidFile(), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600)
	info := fmt.Sprintf(`{"pid":%d,"url":"http://%s","start_ticks":1}`, other.Process.Pid, c.addr)
	os.WriteFile(filepath.Join(c.state, "server.json"), []byte(info), 0o600)
	c.must(0, "", "server", "stop")
	c.must(0, "", "server", "start")
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the unrelated process was signalled: %v", err)
	}
	c.must(0, "", "server", "status")
}

func TestCLIServerAddrBusy(t *testing.T) {
	c := newCLIEnv(t)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := c.must(1, "", "server", "start")
	if !strings.Contains(res.stderr, "cannot listen on "+c.addr) || !strings.Contains(res.stderr, "--addr") {
		t.Errorf("start on a busy port: %q", res.stderr)
	}
	c.must(3, "", "server", "status")
	c.must(2, "", "server", "start", "--addr", "nonsense")
	c.must(2, "", "server", "bogus")
	c.must(2, "", "stream", "get")
}

// TestCLIStreams drives every stream command against an auto-started
// local server.
func TestCLIStreams(t *testing.T) {
	c := newCLIEnv(t)

	res := c.must(0, "", "stream", "create", "cli/j", "--json")
	if !strings.Contains(res.stderr, "started a local server at http://"+c.addr) {
		t.Errorf("first stream command did not report the auto-start: %q", res.stderr)
	}
	if strings.TrimSpace(res.stdout) != "http://"+c.addr+"/v1/stream/cli/j" {
		t.Errorf("create printed %q", res.stdout)
	}
	c.must(0, "", "server", "status")
	res = c.must(0, "", "stream", "create", "cli/j", "--json")
	if strings.Contains(res.stderr, "started") {
		t.Errorf("second command started another server: %q", res.stderr)
	}
	c.must(4, "", "stream", "create", "cli/j", "--content-type", "text/plain")

	c.must(0, "", "stream", "append", "cli/j", "-m", "hello", "-e", `{"n":1}`, "-e", "[1,2]")
	res = c.must(0, "{\"n\":2}\n{\"n\":3}\n", "stream", "append", "cli/j")
	if !strings.Contains(res.stdout, "_") {
		t.Errorf("append printed %q, want the next offset", res.stdout)
	}
	c.must(2, "", "stream", "append", "cli/j", "-e", "{bad")
	c.must(2, "not json", "stream", "append", "cli/j")

	want := []string{`"hello"`, `{"n":1}`, `[1,2]`, `{"n":2}`, `{"n":3}`}
	res = c.must(0, "", "stream", "get", "cli/j", "--json-lines")
	if got := strings.Split(strings.TrimSpace(res.stdout), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("get --json-lines: %q, want %q", got, want)
	}
	if !strings.Contains(res.stderr, "next offset: ") {
		t.Errorf("get stderr: %q", res.stderr)
	}
	res = c.must(0, "", "stream", "get", "cli/j")
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(res.stdout), &arr); err != nil || len(arr) != len(want) {
		t.Errorf("get: %q (%v)", res.stdout, err)
	}

	// Follow it live: tail sees what is there, then what is appended.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tail := exec.CommandContext(ctx, c.bin, "stream", "tail", "cli/j")
	tail.Env = c.env
	pipe, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tail.Process.Kill(); tail.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	readLines := func(n int) []string {
		t.Helper()
		var got []string
		for len(got) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("tail ended after %q", got)
				}
				got = append(got, l)
			case <-time.After(15 * time.Second):
				t.Fatalf("tail: got %q, want %d lines", got, n)
			}
		}
		return got
	}
	if got := readLines(len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tail: %q, want %q", got, want)
	}
	c.must(0, "", "stream", "append", "cli/j", "-e", `"live"`)
	if got := readLines(1); got[0] != `"live"` {
		t.Errorf("tail of a live append: %q", got)
	}
	tail.Process.Kill()

	res = c.must(0, "", "stream", "head", "cli/j", "--json")
	var md struct {
		ContentType string `json:"contentType"`
		NextOffset  string `json:"nextOffset"`
		Closed      bool   `json:"closed"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &md); err != nil || md.ContentType != "application/json" || md.Closed || md.NextOffset == "" {
		t.Errorf("head --json: %q (%v)", res.stdout, err)
	}
	res = c.must(0, "", "stream", "head", "cli/j")
	if !strings.Contains(res.stdout, "application/json") || !strings.Contains(res.stdout, md.NextOffset) {
		t.Errorf("head: %q", res.stdout)
	}

	// Closed: tail ends at the end with status 0, appends conflict.
	c.must(0, "", "stream", "close", "cli/j")
	res = c.must(0, "", "stream", "tail", "cli/j")
	if n := strings.Count(res.stdout, "\n"); n != len(want)+1 {
		t.Errorf("tail of a closed stream: %d lines: %q", n, res.stdout)
	}
	if !strings.Contains(res.stderr, "(stream closed)") {
		t.Errorf("tail of a closed stream, stderr: %q", res.stderr)
	}
	c.must(4, "", "stream", "append", "cli/j", "-m", "late")

	// Text and binary streams: tail prints one JSON line per chunk.
	c.must(0, "", "stream", "create", "cli/t", "--content-type", "text/plain")
	c.must(0, "line one\n", "stream", "append", "cli/t")
	c.must(0, "", "stream", "close", "cli/t")
	res = c.must(0, "", "stream", "tail", "cli/t")
	var chunk struct{ Offset, Data string }
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &chunk); err != nil || chunk.Data != "line one\n" || chunk.Offset == "" {
		t.Errorf("tail of a text stream: %q (%v)", res.stdout, err)
	}
	c.must(0, "", "stream", "create", "cli/b")
	bin := bytes.Repeat([]byte{0, 1, 2, 255}, 300_000) // 1.2 MB: two appends of 1 MiB chunks
	path := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(path, bin, 0o600)
	c.must(0, "", "stream", "append", "cli/b", path)
	res = c.must(0, "", "stream", "get", "cli/b")
	if !bytes.Equal([]byte(res.stdout), bin) {
		t.Errorf("get of a binary stream: %d bytes, want %d", len(res.stdout), len(bin))
	}

	// Deleted: not found.
	c.must(0, "", "stream", "delete", "cli/j")
	c.must(3, "", "stream", "get", "cli/j")
	c.must(3, "", "stream", "head", "cli/j")
	c.must(3, "", "stream", "delete", "cli/j")

}

// TestCLIStreamList lists by prefix, across pages.
func TestCLIStreamList(t *testing.T) {
	c := newCLIEnv(t)
	for _, p := range []string{"cli/t", "cli/b", "cli/j", "other/x"} {
		c.must(0, "", "stream", "create", p)
	}
	c.must(0, "", "stream", "delete", "cli/j")
	res := c.run("", "stream", "list", "--prefix", "cli/", "--limit", "1")
	if res.code != 0 {
		t.Fatalf("list: exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "cli/t") || !strings.Contains(res.stdout, "cli/b") || strings.Contains(res.stdout, "other/x") || strings.Contains(res.stdout, "cli/j") {
		t.Errorf("list --prefix cli/:\n%s", res.stdout)
	}
}
