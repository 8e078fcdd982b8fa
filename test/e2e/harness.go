// Package e2e runs the real durable-streams binary as a child process and
// tests it over HTTP: the Durable Streams conformance suite, crash/restart
// tests, and anything else that needs the whole server.
//
// Typical use:
//
//	bin := e2e.BuildServer(t)          // go build ./cmd/durable-streams, once per test binary
//	srv := e2e.StartServer(t, bin)     // free port, temp data dir, waits for GET /healthz == 200
//	resp, err := http.Get(srv.StreamURL("a/b"))
//	srv.Kill()                         // crash (SIGKILL)
//	srv.Restart(t)                     // same port, same data dir
//
// The server is stopped (SIGTERM, SIGKILL after 10 s) by t.Cleanup; its
// stdout/stderr go to a log file whose tail is printed if the test fails.
// A "WARNING: DATA RACE" from a -race server binary fails the test, and so
// does a server that exits on its own or exits non-zero after SIGTERM.
//
// Environment:
//
//	DS_SERVER_BIN        use this prebuilt binary instead of building ./cmd/durable-streams
//	DS_E2E_SERVER_RACE   1/0: build the server with/without -race (default: like the test binary)
//	DS_E2E_SUMMARY_FILE  tests append one-line results (e.g. the CONFORMANCE line) here;
//	                     scripts/test.sh prints it after go test, whose package-list mode
//	                     hides the output of passing tests
//	DS_E2E_PARALLEL      how many latency-bound tests (LatencyBound) run at once (default 2)
package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/invariants"
	"github.com/streamtier/durable-streams/internal/miniotest"
)

const (
	// ReadyTimeout is how long StartServer waits for GET /healthz == 200.
	ReadyTimeout = 20 * time.Second
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 30 * time.Second
	// StreamPrefix is where the server serves streams.
	StreamPrefix = "/v1/stream/"

	serverPkg = "./cmd/durable-streams"
	binName   = "durable-streams"
)

// ---------------------------------------------------------------------------
// Building the server

var build struct {
	once sync.Once
	dir  string // temp dir holding the binary we built (removed by CleanupBuild)
	path string
	err  error
}

// BuildServer builds ./cmd/durable-streams into a temp dir once per test
// binary and returns the binary's path. With DS_SERVER_BIN set it returns
// that path instead. The binary is built with -race when the test binary is
// (override with DS_E2E_SERVER_RACE=0/1), and with the "invariants" tag
// when the test binary is (scripts/test.sh sets it), so that a broken
// invariant panics in the server too. A build failure fails every caller.
func BuildServer(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = buildServer() })
	if build.err != nil {
		t.Fatalf("e2e: building the server: %v", build.err)
	}
	return build.path
}

func buildServer() (string, error) {
	if p := os.Getenv("DS_SERVER_BIN"); p != "" {
		p, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("DS_SERVER_BIN: %w", err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goTool, err := exec.LookPath("go") // go test puts $GOROOT/bin first on PATH
	if err != nil {
		return "", fmt.Errorf("go tool not found: %w", err)
	}
	dir, err := os.MkdirTemp("", "ds-e2e-bin-")
	if err != nil {
		return "", err
	}
	build.dir = dir
	out := filepath.Join(dir, binName)
	args := []string{"build", "-o", out}
	if serverRace() {
		args = append(args, "-race")
	}
	if invariants.Enabled {
		args = append(args, "-tags", "invariants")
	}
	args = append(args, serverPkg)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = root
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, msg)
	}
	if testing.Verbose() {
		fmt.Printf("e2e: built %s (race=%v) in %v\n", serverPkg, serverRace(), time.Since(start).Round(time.Millisecond))
	}
	return out, nil
}

func serverRace() bool {
	switch os.Getenv("DS_E2E_SERVER_RACE") {
	case "1", "true":
		return true
	case "0", "false":
		return false
	}
	// The server under test is built without -race by default: the
	// conformance suite has timing windows (sliding TTLs of 1-2 s) that a
	// race-instrumented SQLite misses on a loaded 2-core machine. Races are
	// covered by the -race unit tests; DS_E2E_SERVER_RACE=1 opts in here.
	return false
}

// CleanupBuild removes the binary BuildServer built. Call it from TestMain
// after m.Run (see RunTests).
func CleanupBuild() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// RunTests runs m and then CleanupBuild; use it as
//
//	func TestMain(m *testing.M) { os.Exit(e2e.RunTests(m)) }
func RunTests(m *testing.M) int {
	code := m.Run()
	CleanupBuild()
	return code
}

// RepoRoot returns the directory of the nearest go.mod at or above the
// current directory (go test runs tests in their package directory).
func RepoRoot() (string, error) { return miniotest.RepoRoot() }

// ---------------------------------------------------------------------------
// Latency-bound tests

// parallelEnv names the environment variable that sets how many
// latency-bound tests (LatencyBound) run at once.
const parallelEnv = "DS_E2E_PARALLEL"

// defaultLatencyBound is how many latency-bound tests run at once by
// default. One conformance run used 14 s of CPU (vitest 10 s, the server
// 4 s) in a run of about 30 s on an idle machine, so two side by side take
// about one of the CI machine's two cores and leave the other for bursts
// (the suite's CPU-heavy tests have 5 s timeouts too); three would not.
const defaultLatencyBound = 2

// latencySlots holds one token per latency-bound test running; it is made
// on first use with the capacity $DS_E2E_PARALLEL (default 2).
var latencySlots struct {
	once  sync.Once
	slots chan struct{}
	err   error
}

// LatencyBound marks t as a test whose wall time is mostly waiting rather
// than computing, such as a conformance run (sleeps for TTL windows, long
// polls timing out, a few requests at a time). Call it first thing in the
// test. The test then runs in parallel (t.Parallel: after the package's
// sequential tests) beside at most $DS_E2E_PARALLEL-1 (default 1) other
// latency-bound tests, and holds its slot until its cleanups, servers
// stopped included, are done. go test's -parallel (GOMAXPROCS by default)
// bounds these and the package's other parallel tests together.
//
// A test made of several such runs calls t.Parallel itself and
// LatencyBound first thing in each subtest, so that each run takes a slot
// of its own (TestClientConformance).
//
// Tests that measure time (lease and TTL bounds with little slack) or load
// the CPU (the soak, the cluster write loads) must not call it: they run
// one at a time, alone. DS_E2E_PARALLEL=1 runs the latency-bound tests
// one after the other as well.
func LatencyBound(t *testing.T) {
	t.Helper()
	latencySlots.once.Do(func() {
		n := defaultLatencyBound
		if v := os.Getenv(parallelEnv); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				latencySlots.err = fmt.Errorf("%s=%q: want a positive number of tests", parallelEnv, v)
				return
			}
		}
		latencySlots.slots = make(chan struct{}, n)
	})
	if latencySlots.err != nil {
		t.Fatal(latencySlots.err)
	}
	t.Parallel()
	latencySlots.slots <- struct{}{}
	// Registered before the test's own cleanups, so it runs after them.
	t.Cleanup(func() { <-latencySlots.slots })
}

// ---------------------------------------------------------------------------
// Options

type config struct {
	dataDir         string
	longPollTimeout time.Duration
	logLevel        string
	args            []string
	env             []string
	readyTimeout    time.Duration
	addr            string   // fixed listen address; "" picks a free loopback port
	wrapper         []string // runs the server through this command
}

// Option configures StartServer.
type Option func(*config)

// WithDataDir runs the server on dir instead of a fresh t.TempDir().
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithLongPollTimeout sets --long-poll-timeout (default 2s).
func WithLongPollTimeout(d time.Duration) Option {
	return func(c *config) { c.longPollTimeout = d }
}

// WithLogLevel sets --log-level (default warn).
func WithLogLevel(level string) Option { return func(c *config) { c.logLevel = level } }

// WithArgs appends extra arguments after the harness's own flags (so a
// repeated flag overrides the harness's value).
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithEnv adds KEY=VALUE environment entries for the server process. The
// server otherwise inherits the test's environment minus every DS_* variable.
func WithEnv(kv ...string) Option {
	return func(c *config) { c.env = append(c.env, kv...) }
}

// WithAddr has the server listen on addr (host:port) instead of a free
// loopback port, e.g. a host's address in a network namespace where the
// port is known to be free.
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithWrapper runs the server through a command that execs it in place,
// e.g. "ip netns exec NAME" (internal/netnstest's Host.Prefix), so that
// signals still reach the server itself.
func WithWrapper(argv ...string) Option { return func(c *config) { c.wrapper = argv } }

// WithReadyTimeout changes how long to wait for /healthz (default 20 s).
func WithReadyTimeout(d time.Duration) Option {
	return func(c *config) { c.readyTimeout = d }
}

// ---------------------------------------------------------------------------
// Server

// Server is a running (or stopped) durable-streams child process.
type Server struct {
	URL     string // base URL, e.g. http://127.0.0.1:41234 (no trailing slash)
	Addr    string // 127.0.0.1:PORT
	DataDir string // the server's --data-dir
	LogFile string // the server's stdout+stderr, across restarts

	t      testing.TB // the test that started it; reported to on cleanup/stop
	bin    string
	cfg    config
	starts int

	mu   sync.Mutex
	proc *process // current or last process

	tailShown bool // the log tail was already printed with a fatal error
}

type process struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when Wait returns
	err      error         // Wait's result, valid after done
	expected atomic.Bool   // set before we signal it: its exit is not a crash
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartServer starts bin on a free 127.0.0.1 port with a temp data dir (or
// WithDataDir), waits until GET /healthz returns 200, and registers a
// cleanup that stops it. It fails the test if the server does not come up
// within 20 s, printing the tail of the server's output.
func StartServer(t testing.TB, bin string, opts ...Option) *Server {
	t.Helper()
	cfg := config{
		longPollTimeout: 2 * time.Second,
		logLevel:        "warn",
		readyTimeout:    ReadyTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	// Directories first: cleanups run last-in first-out, so the server is
	// stopped before t.TempDir removes its data dir.
	if cfg.dataDir == "" {
		cfg.dataDir = t.TempDir()
	}
	s := &Server{
		DataDir: cfg.dataDir,
		LogFile: filepath.Join(t.TempDir(), "server.log"),
		t:       t,
		bin:     bin,
		cfg:     cfg,
	}
	t.Cleanup(s.cleanup)

	// A free port can be taken between probing and binding: retry then.
	var err error
	if cfg.addr != "" {
		s.Addr, s.URL = cfg.addr, "http://"+cfg.addr
		err = s.start()
	}
	for attempt := 0; attempt < 3 && cfg.addr == ""; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.Addr
		if err = s.start(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		s.tailShown = true
		t.Fatalf("e2e: starting server: %v\n%s", err, s.logTail())
	}
	return s
}

// StreamURL returns the URL of the stream at path (without a leading slash).
func (s *Server) StreamURL(path string) string {
	return s.URL + StreamPrefix + strings.TrimPrefix(path, "/")
}

// Stop sends SIGTERM and waits for the server to exit, sending SIGKILL after
// 10 s. A server that needed SIGKILL or exited non-zero fails the test that
// started it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	p := s.current()
	if p == nil || p.exited() {
		return
	}
	p.expected.Store(true)
	s.note("SIGTERM")
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		s.t.Errorf("e2e: server %s did not exit within %v of SIGTERM; sending SIGKILL", s.Addr, StopTimeout)
		killProcess(p.cmd)
		<-p.done
		s.note("exited after SIGKILL: %v", p.err)
		return
	}
	s.note("exited: %v", exitStatus(p.err))
	if p.err != nil {
		s.t.Errorf("e2e: server %s exited after SIGTERM with %v (want a clean exit 0)", s.Addr, p.err)
	}
}

// Kill sends SIGKILL (a crash: no graceful shutdown) and waits for the exit.
func (s *Server) Kill() {
	p := s.current()
	if p == nil || p.exited() {
		return
	}
	p.expected.Store(true)
	s.note("SIGKILL")
	killProcess(p.cmd)
	<-p.done
	s.note("exited: %v", exitStatus(p.err))
}

// Running reports whether the current server process has not exited.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// Restart stops the server if it is still running (gracefully), then starts
// it again on the same port and data dir and waits for /healthz.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.tailShown = true
		t.Fatalf("e2e: restarting server: %v\n%s", err, s.logTail())
	}
}

func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

var errAddrInUse = errors.New("address already in use")

// start launches one process and waits for it to become healthy.
func (s *Server) start() error {
	args := []string{"serve",
		"--addr", s.Addr,
		"--data-dir", s.DataDir,
		"--long-poll-timeout", s.cfg.longPollTimeout.String(),
		"--log-level", s.cfg.logLevel,
	}
	args = append(args, s.cfg.args...)

	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy of the descriptor
	s.starts++
	fmt.Fprintf(logf, "=== e2e: start #%d: %s %s\n", s.starts, s.bin, strings.Join(args, " "))
	logStart, _ := logf.Seek(0, io.SeekCurrent)

	argv := append(append(slices.Clone(s.cfg.wrapper), s.bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(serverEnv(), s.cfg.env...)
	cmd.Stdout = logf // an *os.File: the child writes it directly, even after a SIGKILL of us
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	deadline := time.Now().Add(s.cfg.readyTimeout)
	var lastErr error
	for {
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		lastErr = err
		select {
		case <-p.done:
			p.expected.Store(true) // reported here, not again at cleanup
			if bytes.Contains(s.readLogFrom(logStart), []byte("address already in use")) {
				return fmt.Errorf("server exited before becoming ready (%v): %w", p.err, errAddrInUse)
			}
			return fmt.Errorf("server exited before becoming ready: %v", p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.expected.Store(true)
			killProcess(cmd)
			<-p.done
			return fmt.Errorf("server not ready at %s after %v (last: %v)", s.URL, s.cfg.readyTimeout, lastErr)
		}
	}
}

// cleanup runs from t.Cleanup: stop the server, report crashes and races,
// and print the server's output if the test failed.
func (s *Server) cleanup() {
	t := s.t
	if p := s.current(); p != nil && p.exited() && !p.expected.Load() {
		t.Errorf("e2e: server %s exited unexpectedly: %v", s.Addr, p.err)
	}
	s.Stop()
	if s.logContains("WARNING: DATA RACE") {
		t.Errorf("e2e: the server reported a data race (see its log below)")
	}
	if t.Failed() && !s.tailShown {
		t.Logf("e2e: server log %s (tail):\n%s", s.LogFile, s.logTail())
	}
}

// note appends a harness line to the server log, between the server's own.
func (s *Server) note(format string, args ...any) {
	f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== e2e: "+format+"\n", args...)
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Log returns everything the server has written so far (all restarts).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

func (s *Server) readLogFrom(off int64) []byte {
	b, _ := os.ReadFile(s.LogFile)
	if off > 0 && off <= int64(len(b)) {
		b = b[off:]
	}
	return b
}

func (s *Server) logContains(needle string) bool {
	f, err := os.Open(s.LogFile)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return true
		}
	}
	return false
}

func (s *Server) logTail() string {
	if s.LogFile == "" {
		return ""
	}
	return "--- server output (tail) ---\n" + tailFile(s.LogFile, 200, 32<<10) + "--- end of server output ---"
}

// tailFile returns at most the last maxLines lines / maxBytes bytes of path.
func tailFile(path string, maxLines, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)\n", path, err)
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	out := strings.Join(lines, "")
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

// serverEnv is the test's environment without DS_* variables, so a
// developer's shell settings cannot change what the tests run against.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DS_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Summary appends line to $DS_E2E_SUMMARY_FILE (if set), which
// scripts/test.sh prints after go test.
func Summary(line string) {
	path := os.Getenv("DS_E2E_SUMMARY_FILE")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, strings.TrimRight(line, "\n"))
}
