package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
)

// Settings of the slow-client tests: short, so that the tests run in
// seconds. They are passed as DS_* variables, not flags, so that the same
// test can be pointed (DS_SERVER_BIN) at a build from before these
// settings existed, to measure what they change; such a server ignores
// them and fails the test's bounds.
const (
	slowGrace = 2 * time.Second // DS_BODY_READ_GRACE
	idleAfter = 2 * time.Second // DS_CONN_IDLE_TIMEOUT
)

// startGuarded starts a server with the slow-client settings, the
// per-client bounds off (every test connection comes from 127.0.0.1) and
// pprof on a debug address, whose heap profile with gc=1 makes the
// server collect garbage before a scrape.
func startGuarded(t *testing.T) (*Server, string) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	debug := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := StartServer(t, BuildServer(t), WithArgs("--debug-addr", debug),
		WithEnv("DS_BODY_READ_GRACE="+slowGrace.String(), "DS_BODY_MIN_RATE=1024",
			"DS_CONN_IDLE_TIMEOUT="+idleAfter.String(),
			"DS_MAX_CONNS_PER_CLIENT=0", "DS_MAX_INFLIGHT_BODY_BYTES_PER_CLIENT=0", "DS_MAX_INFLIGHT_BODY_BYTES=0"))
	return srv, "http://" + debug
}

// runtimeFigures are the server's own heap, goroutine and fd counts.
type runtimeFigures struct {
	heap       float64 // go_memstats_heap_inuse_bytes after a GC
	goroutines float64 // go_goroutines
	fds        float64 // process_open_fds
	conns      float64 // durable_streams_open_connections (0 before it existed)
}

func (f runtimeFigures) String() string {
	return fmt.Sprintf("heap in use %.1f MiB, %v goroutines, %v open fds, %v open connections", f.heap/(1<<20), f.goroutines, f.fds, f.conns)
}

// figures collects garbage in the server, then scrapes /metrics. Both
// requests run on fresh connections that are closed at once, so they do
// not count themselves (beyond a moment).
func figures(t *testing.T, srv *Server, debugURL string) runtimeFigures {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(debugURL + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	m := scrapeMetrics(t, client, srv.URL)
	return runtimeFigures{heap: m["go_memstats_heap_inuse_bytes"], goroutines: m["go_goroutines"], fds: m["process_open_fds"],
		conns: m["durable_streams_open_connections"]}
}

// scrapeMetrics returns the unlabelled and labelled samples of /metrics by
// their full name (labels included).
func scrapeMetrics(t *testing.T, client *http.Client, base string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

// dialSend opens a connection to addr, closed when the test ends, and
// writes request to it.
func dialSend(t *testing.T, addr, request string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c
}

// stillOpen waits until the server has closed each of conns (EOF or
// reset, after any response) or the deadline has passed, and returns how
// many it had not closed by then.
func stillOpen(conns []net.Conn, deadline time.Time) int {
	var wg sync.WaitGroup
	var open atomic.Int64
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			_, err := io.Copy(io.Discard, c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open.Add(1)
			}
		})
	}
	wg.Wait()
	return int(open.Load())
}

// TestSlowClientsHeapAndTimeouts is the outside test's slow-client attack
// against the real binary: 50 connections announce 8 MiB bodies and send
// one byte. The server must not allocate for what was announced (heap
// growth under 16 MiB; it used to be 400 MiB) and must close them once
// the body read grace has passed.
func TestSlowClientsHeapAndTimeouts(t *testing.T) {
	srv, debugURL := startGuarded(t)
	httpcall.Do(t, "PUT", srv.StreamURL("slow"), "", "Content-Type", "application/octet-stream").Want(t, http.StatusCreated)
	before := figures(t, srv, debugURL)

	const conns = 50
	start := time.Now()
	var held []net.Conn
	for range conns {
		held = append(held, dialSend(t, srv.Addr, fmt.Sprintf(
			"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\nx",
			StreamPrefix+"slow", srv.Addr, 8<<20)))
	}
	time.Sleep(slowGrace / 4) // every request is in its handler, reading
	during := figures(t, srv, debugURL)
	growth := during.heap - before.heap
	t.Logf("before: %v", before)
	t.Logf("with %d slow bodies: %v (heap growth %.1f MiB)", conns, during, growth/(1<<20))
	if growth >= 16<<20 {
		t.Errorf("heap grew by %.1f MiB for %d one-byte bodies, want under 16 MiB", growth/(1<<20), conns)
	}

	// Each gets a 408 and is closed once the grace period has passed.
	open := stillOpen(held, start.Add(slowGrace+3*time.Second))
	t.Logf("closed after %v: %d of %d (grace %v)", time.Since(start).Round(10*time.Millisecond), conns-open, conns, slowGrace)
	if open > 0 {
		t.Errorf("%d of %d slow connections still open %v after they started (grace %v)", open, conns, slowGrace+3*time.Second, slowGrace)
	}
	after := waitBaseline(t, srv, debugURL, before)
	t.Logf("after: %v", after)
}

// TestIdleKeepAliveConnectionsClosed: 300 keep-alive connections left idle
// after a request are closed after the idle timeout, and the server's
// goroutines and fds return to what they were.
func TestIdleKeepAliveConnectionsClosed(t *testing.T) {
	srv, debugURL := startGuarded(t)
	before := figures(t, srv, debugURL)

	const conns = 300
	var held []net.Conn
	for range conns {
		c := dialSend(t, srv.Addr, "GET /healthz HTTP/1.1\r\nHost: "+srv.Addr+"\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %s, close %v", resp.Status, resp.Close)
		}
		held = append(held, c)
	}
	idleSince := time.Now()
	during := figures(t, srv, debugURL)
	t.Logf("before: %v", before)
	t.Logf("with %d idle connections: %v", conns, during)
	if during.fds < before.fds+conns-5 {
		t.Errorf("%v open fds with %d idle connections, want about %v (the test counts wrong)", during.fds, conns, before.fds+conns)
	}
	if during.conns < conns {
		t.Errorf("the server counts %v open connections, want at least %d", during.conns, conns)
	}

	open := stillOpen(held, idleSince.Add(idleAfter+3*time.Second))
	t.Logf("closed after %v idle: %d of %d (idle timeout %v)", time.Since(idleSince).Round(10*time.Millisecond), conns-open, conns, idleAfter)
	if open > 0 {
		t.Errorf("%d of %d idle connections still open %v after their request (idle timeout %v)", open, conns, idleAfter+3*time.Second, idleAfter)
	}
	after := waitBaseline(t, srv, debugURL, before)
	t.Logf("after: %v", after)
}

// waitBaseline waits until the server's goroutines and fds are back to
// (near) before, failing the test if they are not within a few seconds.
func waitBaseline(t *testing.T, srv *Server, debugURL string, before runtimeFigures) runtimeFigures {
	t.Helper()
	const slack = 5 // a scrape's own connection, timers, a stream actor
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := figures(t, srv, debugURL)
		if f.goroutines <= before.goroutines+slack && f.fds <= before.fds+slack {
			return f
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to baseline: %v; before: %v", f, before)
			return f
		}
		time.Sleep(200 * time.Millisecond)
	}
}
