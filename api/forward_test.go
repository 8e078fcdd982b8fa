package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/server"
)

// fakeRouter routes every stream to one node (nil: here), or answers err.
type fakeRouter struct {
	mu    sync.Mutex
	to    *url.URL
	err   error
	calls atomic.Int64
}

func (r *fakeRouter) Route(context.Context, string) (*url.URL, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.to, r.err
}

func (r *fakeRouter) set(to string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.to, r.err = nil, err
	if to != "" {
		u, perr := url.Parse(to)
		if perr != nil {
			panic(perr)
		}
		r.to = u
	}
}

// seenRequest is what the owner received of a forwarded request.
type seenRequest struct {
	host, forwardedFor, forwardedBy, requestID, proto string
}

// cluster is two in-process nodes: front forwards every stream request to
// owner (through router), owner serves it.
type cluster struct {
	front, owner *testServer
	router       *fakeRouter
	seen         chan seenRequest
}

// newCluster starts an owner and a front node whose router sends every
// stream to the owner; mod adjusts both configs.
func newCluster(t testing.TB, mod func(*server.Config)) *cluster {
	t.Helper()
	cl := &cluster{router: &fakeRouter{}, seen: make(chan seenRequest, 256)}
	cl.owner = newServer(t, mod, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(api.ForwardedByHeader) != "" {
				select {
				case cl.seen <- seenRequest{host: r.Host, forwardedFor: r.Header.Get("X-Forwarded-For"),
					forwardedBy: r.Header.Get(api.ForwardedByHeader), requestID: r.Header.Get("X-Request-Id"),
					proto: r.Header.Get("X-Forwarded-Proto")}:
				default:
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	cl.router.set(cl.owner.ts.URL, nil)
	cl.front = newServer(t, func(c *server.Config) {
		if mod != nil {
			mod(c)
		}
		c.Router = cl.router
		c.Cluster.NodeID = "front"
	}, nil)
	return cl
}

// volatile headers differ between any two answers.
var volatile = []string{"Date", "X-Request-Id", "Stream-Cursor"}

// sameAnswer fails unless got (through the front node) and want (a
// direct answer) have the same status, body and headers; Location may
// differ only in its host.
func sameAnswer(t *testing.T, what string, got, want *response, gotHost, wantHost string) {
	t.Helper()
	if got.status != want.status || string(got.body) != string(want.body) {
		t.Fatalf("%s: forwarded %s\ndirect %s", what, got, want)
	}
	if (got.header.Get("Stream-Cursor") == "") != (want.header.Get("Stream-Cursor") == "") {
		t.Fatalf("%s: Stream-Cursor forwarded %q, direct %q", what, got.header.Get("Stream-Cursor"), want.header.Get("Stream-Cursor"))
	}
	keys := func(h http.Header) []string {
		var ks []string
		for k := range h {
			if !slices.Contains(volatile, k) {
				ks = append(ks, k)
			}
		}
		slices.Sort(ks)
		return ks
	}
	gk, wk := keys(got.header), keys(want.header)
	if !slices.Equal(gk, wk) {
		t.Fatalf("%s: header names differ:\nforwarded %v\ndirect    %v", what, gk, wk)
	}
	for _, k := range gk {
		g, w := got.header[k], want.header[k]
		if k == "Location" {
			g = []string{strings.Replace(g[0], gotHost, wantHost, 1)}
		}
		if !slices.Equal(g, w) {
			t.Fatalf("%s: %s forwarded %q, direct %q", what, k, g, w)
		}
	}
}

// TestForwardedAnswersMatchDirect runs the same requests against a node
// directly and through a node that forwards them to another: every
// method, read mode, error and header of the protocol must come back the
// same.
func TestForwardedAnswersMatchDirect(t *testing.T) {
	mod := func(c *server.Config) { c.LongPollTimeout = 100 * time.Millisecond }
	direct := newServer(t, mod, nil)
	cl := newCluster(t, mod)
	big := strings.Repeat("compressible text ", 500)
	steps := []struct {
		method, path string
		h            hdr
		body         string
	}{
		{"PUT", "/v1/stream/s", hdr{"Content-Type", "text/plain"}, "abc"},
		{"PUT", "/v1/stream/s", hdr{"Content-Type", "text/plain"}, ""},
		// (Reads of a stream with a TTL get a max-age that counts down.)
		{"PUT", "/v1/stream/ttl", hdr{"Content-Type", "text/plain", "Stream-TTL", "3600"}, ""},
		{"HEAD", "/v1/stream/ttl", nil, ""},
		{"PUT", "/v1/stream/s", hdr{"Content-Type", "application/json"}, ""},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain"}, "def"},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "application/json"}, "x"},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "0"}, "g"},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "0"}, "g"},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "5"}, "h"},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain", "Transfer-Encoding", "chunked"}, big},
		{"GET", "/v1/stream/s?offset=-1", nil, ""},
		{"GET", "/v1/stream/s?offset=" + tok(2), nil, ""},
		{"GET", "/v1/stream/s?offset=-1", hdr{"Accept-Encoding", "gzip"}, ""},
		{"GET", "/v1/stream/s?offset=-1", hdr{"If-None-Match", "*"}, ""},
		{"GET", "/v1/stream/s?offset=bogus", nil, ""},
		{"GET", "/v1/stream/s?offset=now", nil, ""},
		{"GET", "/v1/stream/s?offset=" + tok(1) + "&live=long-poll", nil, ""},
		{"GET", "/v1/stream/s?offset=now&live=long-poll", nil, ""},
		{"HEAD", "/v1/stream/s", nil, ""},
		{"HEAD", "/v1/stream/missing", nil, ""},
		{"PUT", "/v1/stream/f", hdr{"Stream-Forked-From", "/v1/stream/s", "Stream-Fork-Offset", tok(3)}, ""},
		{"GET", "/v1/stream/f?offset=-1", nil, ""},
		{"PUT", "/v1/stream/j", hdr{"Content-Type", "application/json"}, `[{"a":1},{"b":2}]`},
		{"GET", "/v1/stream/j?offset=-1", nil, ""},
		{"POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, ""},
		{"POST", "/v1/stream/s", hdr{"Content-Type", "text/plain"}, "late"},
		{"GET", "/v1/stream/s?offset=-1&live=sse", nil, ""},
		{"GET", "/v1/stream/s?offset=" + tok(6) + "&live=long-poll", nil, ""},
		{"PATCH", "/v1/stream/s", nil, ""},
		{"DELETE", "/v1/stream/f", nil, ""},
		{"DELETE", "/v1/stream/f", nil, ""},
		{"GET", "/v1/stream/f?offset=-1", nil, ""},
	}
	for i, st := range steps {
		what := fmt.Sprintf("step %d: %s %s %v", i, st.method, st.path, st.h)
		want := direct.raw(st.method, st.path, st.h, st.body)
		got := cl.front.raw(st.method, st.path, st.h, st.body)
		sameAnswer(t, what, got, want, cl.front.addr, direct.addr)
	}
	if n := cl.router.calls.Load(); n != int64(len(steps)) {
		t.Fatalf("router asked %d times for %d stream requests", n, len(steps))
	}
}

// TestForwardedRequestIdentity checks what the owner learns of a
// forwarded request: the client's address appended to X-Forwarded-For,
// the forwarding node, the request id and the Host the client used.
func TestForwardedRequestIdentity(t *testing.T) {
	cl := newCluster(t, nil)
	r := cl.front.must(201, "PUT", "/v1/stream/id", hdr{"X-Forwarded-For", "203.0.113.9", "X-Request-Id", "req-1"}, "")
	if r.header.Get("X-Request-Id") != "req-1" || r.header.Get("Location") != cl.front.ts.URL+"/v1/stream/id" {
		t.Fatalf("answer %s", r)
	}
	seen := <-cl.seen
	want := seenRequest{host: cl.front.addr, forwardedFor: "203.0.113.9, 127.0.0.1", forwardedBy: "front", requestID: "req-1", proto: "http"}
	if seen != want {
		t.Fatalf("owner saw %+v, want %+v", seen, want)
	}
}

// peerRouter serves every stream here and knows the loopback address as
// a cluster node.
type peerRouter struct{ fakeRouter }

func (*peerRouter) IsPeer(a netip.Addr) bool { return a.IsLoopback() }

// TestForwardedClientLimits checks that an owner whose Router knows the
// cluster's nodes counts per-client limits by the client a node forwarded
// for, not by the node: two clients behind one forwarding node keep their
// own rate-limit buckets.
func TestForwardedClientLimits(t *testing.T) {
	owner := newServer(t, func(c *server.Config) {
		c.Router = &peerRouter{}
		c.RateLimit = ratelimit.Config{Rate: 0.001, Burst: 1}
	}, nil)
	front := newServer(t, func(c *server.Config) { c.Router = &fakeRouter{to: mustURL(t, owner.ts.URL)} }, nil)
	as := func(client string) hdr { return hdr{"X-Forwarded-For", client} }
	front.must(404, "GET", "/v1/stream/a", as("203.0.113.1"), "")
	if r := front.do("GET", "/v1/stream/a", as("203.0.113.1"), ""); r.status != http.StatusTooManyRequests {
		t.Fatalf("second request of one client: %s, want 429", r)
	}
	front.must(404, "GET", "/v1/stream/a", as("203.0.113.2"), "")
}

// TestForwardedLiveReads checks that SSE events and long-poll answers
// come through the front node as soon as the owner sends them, not when
// the owner's response ends.
func TestForwardedLiveReads(t *testing.T) {
	cl := newCluster(t, func(c *server.Config) {
		c.LongPollTimeout = 10 * time.Second
		c.SSEMaxDuration = 10 * time.Second
	})
	cl.front.create("live", "text/plain", "a")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// SSE: the append, made on the owner, arrives well before the
	// 10 s the response lasts.
	req, _ := http.NewRequestWithContext(ctx, "GET", cl.front.ts.URL+"/v1/stream/live?offset=now&live=sse", nil)
	resp, err := cl.front.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	event := func() sseEvent { t.Helper(); return nextSSE(t, br) }
	if ev := event(); ev.name != "control" {
		t.Fatalf("first event %+v", ev)
	}
	start := time.Now()
	cl.owner.appendTo("live", "text/plain", "b")
	if ev := event(); ev.name != "data" || ev.data != "b" {
		t.Fatalf("live event %+v", ev)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("SSE event took %v through the front node", d)
	}

	// Long-poll: woken by an append on the owner.
	done := make(chan *response, 1)
	go func() { done <- cl.front.do("GET", "/v1/stream/live?offset="+tok(2)+"&live=long-poll", nil, "") }()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	cl.owner.appendTo("live", "text/plain", "c")
	select {
	case r := <-done:
		if r.status != 200 || string(r.body) != "c" || r.header.Get("Stream-Cursor") == "" {
			t.Fatalf("long-poll through the front node: %s", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll through the front node not woken by an append")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("long-poll answer took %v through the front node", d)
	}
}

// TestForwardRefusals covers the answers the front node gives itself: a
// request already forwarded once, an owner that cannot be reached, a
// router that says the stream is unavailable, and routes that are never
// forwarded.
func TestForwardRefusals(t *testing.T) {
	cl := newCluster(t, nil)
	retryable := func(what string, r *response, code string) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), code) {
			t.Fatalf("%s: %s, want 503 %s with Retry-After", what, r, code)
		}
		wantJSONError(t, r)
	}

	// One hop at most: a request that was already forwarded is not
	// forwarded again...
	r := cl.front.do("GET", "/v1/stream/x", hdr{api.ForwardedByHeader, "other"}, "")
	retryable("already forwarded", r, "NOT_OWNER")
	// ...but served by a node that serves the stream.
	cl.owner.must(404, "GET", "/v1/stream/x", hdr{api.ForwardedByHeader, "other"}, "")
	// Two nodes that each think the other owns a stream: one hop, then 503.
	loop := newServer(t, func(c *server.Config) { c.Router = &fakeRouter{to: mustURL(t, cl.front.ts.URL)} }, nil)
	retryable("routing loop", loop.do("PUT", "/v1/stream/loop", nil, ""), "NOT_OWNER")
	cl.router.set(loop.ts.URL, nil)
	retryable("routing loop, other way", cl.front.do("PUT", "/v1/stream/loop", nil, ""), "NOT_OWNER")

	// The owner is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	cl.router.set(dead, nil)
	retryable("owner unreachable", cl.front.do("POST", "/v1/stream/x", hdr{"Content-Type", "text/plain"}, "data"), "UNAVAILABLE")
	retryable("owner unreachable, HEAD", cl.front.do("GET", "/v1/stream/x?offset=-1&live=sse", nil, ""), "UNAVAILABLE")

	// The router knows the stream cannot be served now.
	cl.router.set("", fmt.Errorf("stream x: %w", api.ErrUnavailable))
	retryable("owner lost", cl.front.do("GET", "/v1/stream/x", nil, ""), "UNAVAILABLE")

	// Served locally, whatever the router says: health, the stream list,
	// the subscriptions control routes.
	cl.router.set(dead, nil)
	before := cl.router.calls.Load()
	cl.front.must(200, "GET", "/healthz", nil, "")
	cl.front.must(200, "GET", "/v1/streams", nil, "")
	if r := cl.front.do("GET", "/v1/stream/__ds/jwks.json", nil, ""); r.status == http.StatusServiceUnavailable {
		t.Fatalf("control route forwarded: %s", r)
	}
	if n := cl.router.calls.Load(); n != before {
		t.Fatalf("router asked %d times for routes served locally", n-before)
	}
}

// TestForwardBodyLimits checks that the front node applies the append
// limit before forwarding and streams bodies within it.
func TestForwardBodyLimits(t *testing.T) {
	cl := newCluster(t, func(c *server.Config) { c.MaxAppendBytes = 1000 })
	cl.front.create("b", "application/octet-stream", "")
	r := cl.front.raw("POST", "/v1/stream/b", hdr{"Content-Type", "application/octet-stream"}, strings.Repeat("x", 1001))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("announced body over the limit: %s", r)
	}
	r = cl.front.raw("POST", "/v1/stream/b", hdr{"Content-Type", "application/octet-stream", "Transfer-Encoding", "chunked"}, strings.Repeat("x", 1001))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: %s", r)
	}
	cl.front.must(204, "POST", "/v1/stream/b", hdr{"Content-Type", "application/octet-stream"}, strings.Repeat("x", 1000))
	if r := cl.owner.must(200, "GET", "/v1/stream/b?offset=-1", nil, ""); len(r.body) != 1000 {
		t.Fatalf("owner holds %d bytes, want 1000", len(r.body))
	}
}

// TestForwardAuth checks that the front node checks credentials before
// forwarding and passes them on for the owner to check again.
func TestForwardAuth(t *testing.T) {
	cl := newCluster(t, func(c *server.Config) { c.Auth.AdminToken = authAdminToken })
	before := cl.router.calls.Load()
	if r := cl.front.do("PUT", "/v1/stream/a", nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %s", r)
	}
	if n := cl.router.calls.Load(); n != before {
		t.Fatal("a request without credentials was routed")
	}
	cl.front.must(201, "PUT", "/v1/stream/a", bearer(authAdminToken), "")
	// The owner checks too: a front node with another token is refused
	// there.
	other := newServer(t, func(c *server.Config) {
		c.Auth.AdminToken = "another-admin-token"
		c.Router = &fakeRouter{to: mustURL(t, cl.owner.ts.URL)}
	}, nil)
	if r := other.do("GET", "/v1/stream/a", bearer("another-admin-token"), ""); r.status != http.StatusUnauthorized {
		t.Fatalf("token the owner does not know: %s", r)
	}
}

// TestForwardMountedUnderPrefixes has the front node and the owner mounted
// under different prefixes: the client sees Locations under the front's
// prefix, and fork sources given under it reach the owner right.
func TestForwardMountedUnderPrefixes(t *testing.T) {
	mount := func(prefix string) func(http.Handler) http.Handler {
		return func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
			return mux
		}
	}
	owner := newServer(t, nil, mount("/ds"))
	front := newServer(t, func(c *server.Config) {
		c.Router = &fakeRouter{to: mustURL(t, owner.ts.URL+"/ds/")}
	}, mount("/edge"))
	r := front.must(201, "PUT", "/edge/v1/stream/x", hdr{"Content-Type", "text/plain"}, "hello")
	if loc := r.header.Get("Location"); loc != front.ts.URL+"/edge/v1/stream/x" {
		t.Fatalf("Location %q, want the front's URL", loc)
	}
	for i, from := range []string{"/edge/v1/stream/x", front.ts.URL + "/edge/v1/stream/x", "/v1/stream/x"} {
		path := fmt.Sprintf("/edge/v1/stream/fork%d", i)
		r := front.must(201, "PUT", path, hdr{"Stream-Forked-From", from}, "")
		if loc := r.header.Get("Location"); loc != front.ts.URL+path {
			t.Fatalf("fork from %s: Location %q", from, loc)
		}
		if r := owner.must(200, "GET", fmt.Sprintf("/ds/v1/stream/fork%d?offset=-1", i), nil, ""); string(r.body) != "hello" {
			t.Fatalf("fork from %s reads %q on the owner", from, r.body)
		}
	}
	front.must(404, "GET", "/edge/v1/stream/nope", nil, "")
}

// TestForwardOwnerFailsMidBody checks that an answer the owner cuts short
// reaches the client as a broken response, never as a complete one.
func TestForwardOwnerFailsMidBody(t *testing.T) {
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the owner dies: no end of the chunked body
	}))
	t.Cleanup(owner.Close)
	front := newServer(t, func(c *server.Config) { c.Router = &fakeRouter{to: mustURL(t, owner.URL)} }, nil)
	resp, err := front.ts.Client().Get(front.ts.URL + "/v1/stream/cut?offset=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a cut answer arrived whole: %d %q", resp.StatusCode, body)
	}
}

// TestForwardOwnerDiesAfterRequest checks that an owner which got a
// request and died before answering is not reported as "not done, retry":
// it may have stored an append, and a client retrying a plain append on a
// 503 would store it twice. The answer is 502 without Retry-After.
func TestForwardOwnerDiesAfterRequest(t *testing.T) {
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler) // the append may be stored; the answer is lost
	}))
	t.Cleanup(owner.Close)
	front := newServer(t, func(c *server.Config) { c.Router = &fakeRouter{to: mustURL(t, owner.URL)} }, nil)
	r := front.do("POST", "/v1/stream/x", hdr{"Content-Type", "text/plain"}, "data")
	if r.status != http.StatusBadGateway || r.header.Get("Retry-After") != "" {
		t.Fatalf("owner died after the request: %s, want 502 without Retry-After", r)
	}
	wantJSONError(t, r)
}

// TestForwardOwnerDiesMidRequest checks that an owner which reset the
// connection before it got the whole request is reported as "not done,
// retry" (503): it cannot have acted on a body it never received. This
// is what a node killed under a pooled connection does.
func TestForwardOwnerDiesMidRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// The headers, then a reset while the body is still coming.
				http.ReadRequest(bufio.NewReader(conn))
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}()
		}
	}()
	front := newServer(t, func(c *server.Config) {
		c.MaxAppendBytes = 64 << 20
		c.Router = &fakeRouter{to: mustURL(t, "http://"+ln.Addr().String())}
	}, nil)
	// Far more than the sockets between the two nodes can buffer, so the
	// front is still writing the body when the reset arrives.
	r := front.do("POST", "/v1/stream/x", hdr{"Content-Type", "application/octet-stream"}, strings.Repeat("x", 48<<20))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("owner reset the connection mid-request: %s, want 503 with Retry-After", r)
	}
	wantJSONError(t, r)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// BenchmarkForward measures what one forwarding hop adds to a request, on
// loopback: run with -bench Forward and compare direct with forwarded.
func BenchmarkForward(b *testing.B) {
	for _, bc := range []struct {
		name string
		body int // bytes of the stream read
	}{
		{"read-100B", 100},
		{"read-1MiB", 1 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cl := newCluster(b, nil)
			cl.owner.create("bench", "application/octet-stream", strings.Repeat("x", bc.body))
			for _, via := range []struct {
				name string
				srv  *testServer
			}{{"direct", cl.owner}, {"forwarded", cl.front}} {
				b.Run(via.name, func(b *testing.B) {
					c := via.srv.ts.Client()
					url := via.srv.ts.URL + "/v1/stream/bench?offset=-1"
					b.SetBytes(int64(bc.body))
					b.ReportAllocs()
					for b.Loop() {
						resp, err := c.Get(url)
						if err != nil {
							b.Fatal(err)
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK || n != int64(bc.body) {
							b.Fatalf("%d, %d bytes", resp.StatusCode, n)
						}
					}
				})
			}
		})
	}
}
