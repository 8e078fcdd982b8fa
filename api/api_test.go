package api_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/server"
)

// ---- harness ----

type testServer struct {
	t    testing.TB
	srv  *server.Server
	ts   *httptest.Server
	addr string // host:port
}

// newServer starts a server on a temp dir behind an httptest.Server; mod
// adjusts the config, wrap the handler (nil: serve it at the root).
func newServer(t testing.TB, mod func(*server.Config), wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	cfg := server.Config{
		DataDir:         t.TempDir(),
		LongPollTimeout: 200 * time.Millisecond,
		SSEMaxDuration:  5 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	var h http.Handler = srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.BeginShutdown()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("server.Close: %v", err)
		}
	})
	return &testServer{t: t, srv: srv, ts: ts, addr: strings.TrimPrefix(ts.URL, "http://")}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %v %q", r.status, r.header, r.body)
}

// hdr is a list of header name/value pairs; a name may repeat.
type hdr []string

// raw sends one request exactly as given (request target untouched) over
// a new connection and reads the response.
func (s *testServer) raw(method, target string, h hdr, body string) *response {
	s.t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, s.addr)
	chunked := false
	for i := 0; i+1 < len(h); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", h[i], h[i+1])
		if strings.EqualFold(h[i], "Transfer-Encoding") {
			chunked = true
		}
	}
	if chunked {
		b.WriteString("\r\n")
		if body != "" {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(body), body)
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		s.t.Fatalf("write request: %v", err)
	}
	req := &http.Request{Method: method}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		s.t.Fatalf("%s %s: read response: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

// do sends a request with Go's client.
func (s *testServer) do(method, path string, h hdr, body string) *response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.ts.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Add(h[i], h[i+1])
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (s *testServer) must(want int, method, path string, h hdr, body string) *response {
	s.t.Helper()
	r := s.do(method, path, h, body)
	if r.status != want {
		s.t.Fatalf("%s %s: %s, want status %d", method, path, r, want)
	}
	return r
}

func (s *testServer) create(path, ct string, body string) *response {
	s.t.Helper()
	return s.must(http.StatusCreated, "PUT", "/v1/stream/"+path, hdr{"Content-Type", ct}, body)
}

func (s *testServer) appendTo(path, ct, body string) *response {
	s.t.Helper()
	return s.must(http.StatusNoContent, "POST", "/v1/stream/"+path, hdr{"Content-Type", ct}, body)
}

func tok(pos int64) string { return fmt.Sprintf("0000000000000000_%016d", pos) }

// wantJSONError checks an error response body: JSON with a message.
func wantJSONError(t *testing.T, r *response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q: %s", ct, r)
	}
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r)
	}
	if e.Message == "" || e.Error == "" {
		t.Fatalf("error body lacks error/message: %s", r)
	}
}

// ---- bad input ----

func TestBadInput(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.MaxAppendBytes = 64 }, nil)
	s.create("bin", "application/octet-stream", "hello")
	s.create("js", "application/json", `{"a":1}`)
	s.create("txt", "text/plain", "")

	octet := hdr{"Content-Type", "application/octet-stream"}
	withCT := func(h ...string) hdr { return append(hdr{"Content-Type", "application/octet-stream"}, h...) }
	long := strings.Repeat("a", 1025)
	big := strings.Repeat("x", 65)

	tests := []struct {
		name   string
		method string
		target string
		h      hdr
		body   string
		want   int
	}{
		// offsets
		{"offset word", "GET", "/v1/stream/bin?offset=abc", nil, "", 400},
		{"offset empty", "GET", "/v1/stream/bin?offset=", nil, "", 400},
		{"offset list", "GET", "/v1/stream/bin?offset=0,1", nil, "", 400},
		{"offset repeated", "GET", "/v1/stream/bin?offset=-1&offset=-1", nil, "", 400},
		{"offset 15-digit halves", "GET", "/v1/stream/bin?offset=000000000000000_000000000000000", nil, "", 400},
		{"offset 17-digit position", "GET", "/v1/stream/bin?offset=0000000000000000_00000000000000001", nil, "", 400},
		{"offset with sign", "GET", "/v1/stream/bin?offset=%2B000000000000000_0000000000000000", nil, "", 400},
		{"offset negative other than -1", "GET", "/v1/stream/bin?offset=-2", nil, "", 400},
		{"offset NOW uppercase", "GET", "/v1/stream/bin?offset=NOW", nil, "", 400},
		{"offset beyond tail", "GET", "/v1/stream/bin?offset=" + tok(6), nil, "", 400},
		{"offset far beyond tail", "GET", "/v1/stream/bin?offset=9999999999999999_9999999999999999", nil, "", 400},
		{"long-poll offset beyond tail", "GET", "/v1/stream/bin?live=long-poll&offset=" + tok(6), nil, "", 400},
		{"sse offset beyond tail", "GET", "/v1/stream/txt?live=sse&offset=" + tok(1), nil, "", 400},
		{"json offset inside a message", "GET", "/v1/stream/js?offset=" + tok(1), nil, "", 400},
		{"long-poll without offset", "GET", "/v1/stream/bin?live=long-poll", nil, "", 400},
		{"sse without offset", "GET", "/v1/stream/txt?live=sse", nil, "", 400},
		{"bad live value", "GET", "/v1/stream/bin?offset=-1&live=poll", nil, "", 400},
		{"live case", "GET", "/v1/stream/bin?offset=-1&live=SSE", nil, "", 400},
		{"live repeated", "GET", "/v1/stream/bin?offset=-1&live=sse&live=sse", nil, "", 400},
		{"read missing stream", "GET", "/v1/stream/nope", nil, "", 404},

		// producer headers
		{"producer id only", "POST", "/v1/stream/bin", withCT("Producer-Id", "p"), "x", 400},
		{"producer without seq", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0"), "x", 400},
		{"producer without id", "POST", "/v1/stream/bin", withCT("Producer-Epoch", "0", "Producer-Seq", "0"), "x", 400},
		{"producer epoch word", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "abc", "Producer-Seq", "0"), "x", 400},
		{"producer seq decimal", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "1.0"), "x", 400},
		{"producer epoch negative", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "-1", "Producer-Seq", "0"), "x", 400},
		{"producer seq negative", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "-1"), "x", 400},
		{"producer seq above 2^53-1", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "9007199254740992"), "x", 400},
		{"producer epoch huge", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "99999999999999999999999", "Producer-Seq", "0"), "x", 400},
		{"producer epoch leading zero", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "01", "Producer-Seq", "0"), "x", 400},
		{"producer id empty", "POST", "/v1/stream/bin", withCT("Producer-Id", "", "Producer-Epoch", "0", "Producer-Seq", "0"), "x", 400},
		{"producer seq repeated", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "0", "Producer-Seq", "1"), "x", 400},
		{"producer seq 2^53-1 parses (unknown producer: gap)", "POST", "/v1/stream/bin", withCT("Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "9007199254740991"), "x", 409},
		{"producer on close-only with bad seq", "POST", "/v1/stream/bin", hdr{"Stream-Closed", "true", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "x"}, "", 400},

		// TTL and expiry
		{"ttl leading zero", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "060"}, "", 400},
		{"ttl float", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "1.5"}, "", 400},
		{"ttl negative", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "-1"}, "", 400},
		{"ttl exponent", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "1e3"}, "", 400},
		{"ttl empty", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", ""}, "", 400},
		{"ttl above 2^53-1", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "9007199254740992"}, "", 400},
		{"ttl and expires-at", "PUT", "/v1/stream/t1", hdr{"Stream-TTL", "60", "Stream-Expires-At", "2099-01-01T00:00:00Z"}, "", 400},
		{"expires-at garbage", "PUT", "/v1/stream/t1", hdr{"Stream-Expires-At", "not-a-timestamp"}, "", 400},
		{"expires-at month 13", "PUT", "/v1/stream/t1", hdr{"Stream-Expires-At", "2099-13-01T00:00:00Z"}, "", 400},
		{"expires-at space separator", "PUT", "/v1/stream/t1", hdr{"Stream-Expires-At", "2099-01-01 00:00:00Z"}, "", 400},
		{"expires-at no zone", "PUT", "/v1/stream/t1", hdr{"Stream-Expires-At", "2099-01-01T00:00:00"}, "", 400},
		{"expires-at date only", "PUT", "/v1/stream/t1", hdr{"Stream-Expires-At", "2099-01-01"}, "", 400},
		{"content type garbage", "PUT", "/v1/stream/t1", hdr{"Content-Type", "notatype"}, "", 400},
		{"invalid json initial body", "PUT", "/v1/stream/t1", hdr{"Content-Type", "application/json"}, `{"a":`, 400},

		// appends
		{"invalid json", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, `{"a":`, 400},
		{"json trailing data", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, `{"a":1} 2`, 400},
		{"json invalid utf-8", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, "\"\xff\"", 400},
		{"empty json array", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, `[]`, 400},
		{"empty json array with spaces", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, ` [ ] `, 400},
		{"whitespace-only json", "POST", "/v1/stream/js", hdr{"Content-Type", "application/json"}, "  \n", 400},
		{"empty body without close", "POST", "/v1/stream/bin", octet, "", 400},
		{"empty body to missing stream", "POST", "/v1/stream/nope", octet, "", 400},
		{"body without content type", "POST", "/v1/stream/bin", nil, "x", 400},
		{"content type mismatch", "POST", "/v1/stream/bin", hdr{"Content-Type", "text/plain"}, "x", 409},
		{"json to binary stream", "POST", "/v1/stream/bin", hdr{"Content-Type", "application/json"}, "1", 409},
		{"append to missing stream", "POST", "/v1/stream/nope", octet, "x", 404},
		{"close missing stream", "POST", "/v1/stream/nope", hdr{"Stream-Closed", "true"}, "", 404},
		{"oversized body", "POST", "/v1/stream/bin", octet, big, 413},
		{"oversized chunked body", "POST", "/v1/stream/bin", withCT("Transfer-Encoding", "chunked"), big, 413},
		{"oversized initial body", "PUT", "/v1/stream/t2", octet, big, 413},
		{"body at the limit is fine", "POST", "/v1/stream/txt", hdr{"Content-Type", "text/plain"}, big[:64], 204},

		// paths
		{"dot-dot segment", "PUT", "/v1/stream/a/../b", nil, "", 400},
		{"encoded dot-dot", "PUT", "/v1/stream/a/%2e%2e/b", nil, "", 400},
		{"leading dot-dot", "GET", "/v1/stream/../bin", nil, "", 400},
		{"dot segment", "PUT", "/v1/stream/./a", nil, "", 400},
		{"trailing dot", "PUT", "/v1/stream/a/.", nil, "", 400},
		{"NUL", "PUT", "/v1/stream/a%00b", nil, "", 400},
		{"newline", "PUT", "/v1/stream/a%0ab", nil, "", 400},
		{"carriage return", "PUT", "/v1/stream/a%0db", nil, "", 400},
		{"DEL", "PUT", "/v1/stream/a%7fb", nil, "", 400},
		{"backslash", "PUT", "/v1/stream/a%5cb", nil, "", 400},
		{"invalid utf-8", "PUT", "/v1/stream/a%ffb", nil, "", 400},
		{"double slash", "PUT", "/v1/stream//a", nil, "", 400},
		{"inner double slash", "PUT", "/v1/stream/a//b", nil, "", 400},
		{"trailing slash", "PUT", "/v1/stream/a/", nil, "", 400},
		{"empty name", "PUT", "/v1/stream/", nil, "", 400},
		{"over-long name", "PUT", "/v1/stream/" + long, nil, "", 400},
		{"over-long name read", "GET", "/v1/stream/" + long, nil, "", 400},
		{"name at the length limit", "PUT", "/v1/stream/" + long[:1024], nil, "", 201},

		// forks
		{"fork offset without source", "PUT", "/v1/stream/f1", hdr{"Stream-Fork-Offset", tok(0)}, "", 400},
		{"fork sub-offset without source", "PUT", "/v1/stream/f1", hdr{"Stream-Fork-Sub-Offset", "1"}, "", 400},
		{"fork source with dot-dot", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/../bin"}, "", 400},
		{"fork source empty", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", ""}, "", 400},
		{"fork offset garbage", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Stream-Fork-Offset", "abc"}, "", 400},
		{"fork sub-offset without offset", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Stream-Fork-Sub-Offset", "1"}, "", 400},
		{"fork sub-offset negative", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Stream-Fork-Offset", tok(0), "Stream-Fork-Sub-Offset", "-1"}, "", 400},
		{"fork sub-offset overshoots", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Stream-Fork-Offset", tok(0), "Stream-Fork-Sub-Offset", "6"}, "", 400},
		{"fork offset beyond source", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Stream-Fork-Offset", tok(6)}, "", 400},
		{"fork content type mismatch", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/bin", "Content-Type", "text/plain"}, "", 409},
		{"fork of json inside a message", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/js", "Stream-Fork-Offset", tok(2)}, "", 400},
		{"fork of missing source", "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/nope"}, "", 404},

		// methods
		{"PATCH", "PATCH", "/v1/stream/bin", nil, "", 405},
		{"delete missing", "DELETE", "/v1/stream/nope", nil, "", 404},
		{"head missing", "HEAD", "/v1/stream/nope", nil, "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.raw(tc.method, tc.target, tc.h, tc.body)
			if r.status >= 500 {
				t.Fatalf("server error: %s", r)
			}
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r)
			}
			if r.status >= 400 && tc.method != "HEAD" {
				wantJSONError(t, r)
			}
			if r.status >= 400 && r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("error Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
			}
			if tc.method == "HEAD" && len(r.body) != 0 {
				t.Fatalf("HEAD error with a body: %q", r.body)
			}
			if tc.want == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}

	// Nothing above changed the streams' data.
	if r := s.must(200, "GET", "/v1/stream/bin", nil, ""); string(r.body) != "hello" {
		t.Fatalf("bin = %q", r.body)
	}
	if r := s.must(200, "GET", "/v1/stream/js", nil, ""); string(r.body) != `[{"a":1}]` {
		t.Fatalf("js = %q", r.body)
	}
	for _, p := range []string{"t1", "t2", "f1"} {
		if r := s.do("HEAD", "/v1/stream/"+p, nil, ""); r.status != 404 {
			t.Fatalf("rejected PUT left stream %s behind: %d", p, r.status)
		}
	}
}

// ---- CORS and security headers ----

func TestCORSPreflight(t *testing.T) {
	s := newServer(t, nil, nil)
	for _, path := range []string{"/v1/stream/x", "/v1/stream/missing/deep", "/healthz"} {
		r := s.must(204, "OPTIONS", path, hdr{"Origin", "https://example.com", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "if-none-match"}, "")
		h := r.header
		if h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: Allow-Origin %q", path, h.Get("Access-Control-Allow-Origin"))
		}
		allow := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
		for _, want := range []string{"if-none-match", "content-type", "producer-id", "producer-epoch", "producer-seq",
			"stream-seq", "stream-ttl", "stream-expires-at", "stream-closed", "stream-forked-from", "stream-fork-offset", "stream-fork-sub-offset"} {
			if !containsToken(allow, want) {
				t.Fatalf("%s: Access-Control-Allow-Headers %q lacks %s", path, allow, want)
			}
		}
		methods := h.Get("Access-Control-Allow-Methods")
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"} {
			if !containsToken(methods, m) {
				t.Fatalf("%s: Allow-Methods %q lacks %s", path, methods, m)
			}
		}
		expose := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
		for _, want := range []string{"etag", "stream-next-offset", "stream-cursor", "stream-up-to-date", "stream-closed",
			"producer-epoch", "producer-seq", "producer-expected-seq", "producer-received-seq", "stream-sse-data-encoding", "location"} {
			if !containsToken(expose, want) {
				t.Fatalf("%s: Expose-Headers %q lacks %s", path, expose, want)
			}
		}
		if len(r.body) != 0 {
			t.Fatalf("preflight body %q", r.body)
		}
	}
}

func containsToken(list, tok string) bool {
	for _, p := range strings.Split(list, ",") {
		if strings.TrimSpace(p) == tok {
			return true
		}
	}
	return false
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("x", "text/plain", "hi")
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/stream/missing", 404},
		{"HEAD", "/v1/stream/missing", 404},
		{"GET", "/not-a-route", 404},
		{"GET", "/v1/stream/x?offset=zzz", 400},
		{"GET", "/v1/stream/x", 200},
		{"HEAD", "/v1/stream/x", 200},
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
	}
	for _, tc := range tests {
		r := s.must(tc.want, tc.method, tc.path, nil, "")
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
			t.Fatalf("%s %s: security headers missing: %v", tc.method, tc.path, r.header)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s %s: CORS header missing: %v", tc.method, tc.path, r.header)
		}
	}
}

// ---- SSE ----

type sseEvent struct {
	name string
	data string // data lines joined with "\n"
}

// parseSSE splits a complete SSE body into events.
func parseSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("SSE body does not end with a blank line: %q", body)
	}
	var out []sseEvent
	for _, block := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		var ev sseEvent
		var data []string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data:"):
				// One space after the colon is dropped, as SSE parsers do.
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			default:
				t.Fatalf("unexpected SSE line %q in %q", line, body)
			}
		}
		ev.data = strings.Join(data, "\n")
		out = append(out, ev)
	}
	return out
}

// nextSSE reads the next event of a live SSE response.
func nextSSE(t *testing.T, br *bufio.Reader) sseEvent {
	t.Helper()
	var block strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading SSE: %v (so far %q)", err, block.String())
		}
		block.WriteString(line)
		if line == "\n" {
			return parseSSE(t, block.String())[0]
		}
	}
}

type control struct {
	StreamNextOffset string `json:"streamNextOffset"`
	StreamCursor     string `json:"streamCursor"`
	UpToDate         bool   `json:"upToDate"`
	StreamClosed     bool   `json:"streamClosed"`
}

func parseControl(t *testing.T, ev sseEvent) control {
	t.Helper()
	if ev.name != "control" {
		t.Fatalf("event %q, want control", ev.name)
	}
	var c control
	if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
		t.Fatalf("control data %q: %v", ev.data, err)
	}
	return c
}

func TestSSEFraming(t *testing.T) {
	tests := []struct {
		name     string
		ct       string
		appends  []string
		wantData string // the data event's payload (lines joined with \n)
		rawData  string // exact bytes of the data event
		base64   bool
	}{
		{
			name:     "text lines",
			ct:       "text/plain",
			appends:  []string{"line1\nline2\r\nline3\rx\n", "y"},
			wantData: "line1\nline2\nline3\nx\ny",
			rawData:  "event: data\ndata:line1\ndata:line2\ndata:line3\ndata:x\ndata:y\n\n",
		},
		{
			// "data:" and the line, as the reference writes it: an SSE
			// parser drops the first of a line's leading spaces.
			name:     "text leading spaces",
			ct:       "text/plain",
			appends:  []string{" one\n  two\n\tthree"},
			wantData: "one\n two\n\tthree",
			rawData:  "event: data\ndata: one\ndata:  two\ndata:\tthree\n\n",
		},
		{
			name:     "text trailing newline",
			ct:       "text/plain; charset=utf-8",
			appends:  []string{"a\n"},
			wantData: "a\n",
			rawData:  "event: data\ndata:a\ndata:\n\n",
		},
		{
			name:     "CRLF injection stays inside data lines",
			ct:       "text/plain",
			appends:  []string{"a\r\n\r\nevent: control\r\ndata: {\"streamNextOffset\":\"evil\",\"streamClosed\":true}\r\n\r\nb"},
			wantData: "a\n\nevent: control\ndata: {\"streamNextOffset\":\"evil\",\"streamClosed\":true}\n\nb",
			rawData:  "event: data\ndata:a\ndata:\ndata:event: control\ndata:data: {\"streamNextOffset\":\"evil\",\"streamClosed\":true}\ndata:\ndata:b\n\n",
		},
		{
			name:     "json batches",
			ct:       "application/json",
			appends:  []string{`[{"a":1}, {"b":"x\ny"}]`, ` 3 `},
			wantData: `[{"a":1},{"b":"x\ny"},3]`,
			rawData:  "event: data\ndata:[{\"a\":1},{\"b\":\"x\\ny\"},3]\n\n",
		},
		{
			name:     "binary",
			ct:       "application/octet-stream",
			appends:  []string{"\x00\n\xff\r", "\n\nevent: x"},
			wantData: base64.StdEncoding.EncodeToString([]byte("\x00\n\xff\r\n\nevent: x")),
			base64:   true,
		},
		{
			name:     "ndjson is not text",
			ct:       "application/x-ndjson",
			appends:  []string{"{\"a\":1}\n"},
			wantData: base64.StdEncoding.EncodeToString([]byte("{\"a\":1}\n")),
			base64:   true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, nil, nil)
			s.create("s", tc.ct, "")
			for _, a := range tc.appends {
				s.appendTo("s", tc.ct, a)
			}
			closed := s.must(204, "POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, "")
			tail := closed.header.Get("Stream-Next-Offset")

			r := s.must(200, "GET", "/v1/stream/s?offset=-1&live=sse", nil, "")
			if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-cache" {
				t.Fatalf("Cache-Control %q", cc)
			}
			enc := r.header.Get("Stream-SSE-Data-Encoding")
			if tc.base64 != (enc == "base64") || (!tc.base64 && enc != "") {
				t.Fatalf("Stream-SSE-Data-Encoding %q (base64 %v)", enc, tc.base64)
			}
			body := string(r.body)
			evs := parseSSE(t, body)
			if len(evs) != 2 {
				t.Fatalf("%d events, want data + control: %q", len(evs), body)
			}
			if evs[0].name != "data" || evs[0].data != tc.wantData {
				t.Fatalf("data event %+v, want data %q", evs[0], tc.wantData)
			}
			if tc.rawData != "" && !strings.HasPrefix(body, tc.rawData) {
				t.Fatalf("raw body %q, want prefix %q", body, tc.rawData)
			}
			if tc.base64 {
				if _, err := base64.StdEncoding.DecodeString(evs[0].data); err != nil {
					t.Fatalf("data is not base64: %v", err)
				}
			}
			c := parseControl(t, evs[1])
			if c.StreamNextOffset != tail || !c.StreamClosed || c.StreamCursor != "" {
				t.Fatalf("final control %+v, want next %s, closed, no cursor", c, tail)
			}
		})
	}
}

func TestSSELive(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("s", "text/plain", "old")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.ts.URL+"/v1/stream/s?offset=now&live=sse", nil)
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	next := func() sseEvent { t.Helper(); return nextSSE(t, br) }
	first := parseControl(t, next())
	if !first.UpToDate || first.StreamNextOffset != tok(3) || first.StreamClosed {
		t.Fatalf("first control %+v", first)
	}
	if _, err := strconv.ParseUint(first.StreamCursor, 10, 64); err != nil {
		t.Fatalf("cursor %q is not numeric", first.StreamCursor)
	}
	s.appendTo("s", "text/plain", "new")
	if ev := next(); ev.name != "data" || ev.data != "new" {
		t.Fatalf("live data event %+v", ev)
	}
	if c := parseControl(t, next()); c.StreamNextOffset != tok(6) || !c.UpToDate {
		t.Fatalf("control after live data %+v", c)
	}
	s.must(204, "POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, "")
	if c := parseControl(t, next()); !c.StreamClosed || c.StreamNextOffset != tok(6) {
		t.Fatalf("control after close %+v", c)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("data after the final control: %q", rest)
	}
}

// ---- long-poll ----

func TestLongPoll(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.LongPollTimeout = 100 * time.Millisecond }, nil)
	s.create("s", "text/plain", "abc")

	for _, off := range []string{tok(3), "now"} {
		start := time.Now()
		r := s.must(204, "GET", "/v1/stream/s?live=long-poll&offset="+off, nil, "")
		if d := time.Since(start); d < 90*time.Millisecond {
			t.Fatalf("offset %s: 204 after %v, before the long-poll timeout", off, d)
		}
		h := r.header
		if h.Get("Stream-Next-Offset") != tok(3) || h.Get("Stream-Up-To-Date") != "true" {
			t.Fatalf("offset %s: 204 headers %v", off, h)
		}
		if _, err := strconv.ParseUint(h.Get("Stream-Cursor"), 10, 64); err != nil {
			t.Fatalf("offset %s: Stream-Cursor %q not numeric", off, h.Get("Stream-Cursor"))
		}
		if h.Get("Stream-Closed") != "" || len(r.body) != 0 {
			t.Fatalf("offset %s: 204 %s", off, r)
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Fatalf("offset %s: Cache-Control %q", off, h.Get("Cache-Control"))
		}
	}

	// A client cursor at or ahead of the current interval is pushed ahead.
	r := s.must(204, "GET", "/v1/stream/s?live=long-poll&offset=now&cursor=900000000000", nil, "")
	if c, err := strconv.ParseInt(r.header.Get("Stream-Cursor"), 10, 64); err != nil || c <= 900000000000 || c > 900000000180 {
		t.Fatalf("cursor %q after client cursor 900000000000", r.header.Get("Stream-Cursor"))
	}

	// Data already there: 200 at once, with a cursor.
	r = s.must(200, "GET", "/v1/stream/s?live=long-poll&offset="+tok(1), nil, "")
	if string(r.body) != "bc" || r.header.Get("Stream-Cursor") == "" || r.header.Get("Stream-Up-To-Date") != "true" {
		t.Fatalf("long-poll with data: %s", r)
	}

	// Data arriving during the wait.
	slow := newServer(t, func(c *server.Config) { c.LongPollTimeout = 3 * time.Second }, nil)
	slow.create("s", "text/plain", "abc")
	done := make(chan *response, 1)
	go func() { done <- slow.do("GET", "/v1/stream/s?live=long-poll&offset=now", nil, "") }()
	time.Sleep(50 * time.Millisecond)
	slow.appendTo("s", "text/plain", "de")
	select {
	case r := <-done:
		if r.status != 200 || string(r.body) != "de" || r.header.Get("Stream-Next-Offset") != tok(5) || r.header.Get("Stream-Cursor") == "" {
			t.Fatalf("long-poll woken by an append: %s", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("long-poll not woken by an append")
	}

	// Closed stream at its tail: 204 at once (well before the 3s timeout),
	// closed, no cursor.
	slow.must(204, "POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, "")
	start := time.Now()
	r = slow.must(204, "GET", "/v1/stream/s?live=long-poll&offset="+tok(5), nil, "")
	if time.Since(start) > time.Second {
		t.Fatal("long-poll on a closed stream waited")
	}
	if r.header.Get("Stream-Closed") != "true" || r.header.Get("Stream-Cursor") != "" || r.header.Get("Stream-Next-Offset") != tok(5) {
		t.Fatalf("closed long-poll: %s", r)
	}
	// Closed during the wait: 204 reporting the close.
	slow.create("c", "text/plain", "x")
	go func() { done <- slow.do("GET", "/v1/stream/c?live=long-poll&offset=now", nil, "") }()
	time.Sleep(50 * time.Millisecond)
	slow.must(204, "POST", "/v1/stream/c", hdr{"Stream-Closed", "true"}, "")
	select {
	case r := <-done:
		if r.status != 204 || r.header.Get("Stream-Closed") != "true" || r.header.Get("Stream-Next-Offset") != tok(1) {
			t.Fatalf("long-poll woken by a close: %s", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("long-poll not woken by a close")
	}
}

// ---- ETag ----

func TestETagRevalidation(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("s", "text/plain", "abc")
	r := s.must(200, "GET", "/v1/stream/s?offset=-1", nil, "")
	etag := r.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || strings.HasSuffix(etag, `:c"`) {
		t.Fatalf("ETag %q", etag)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		r := s.must(304, "GET", "/v1/stream/s?offset=-1", hdr{"If-None-Match", inm}, "")
		if len(r.body) != 0 || r.header.Get("ETag") != etag {
			t.Fatalf("304 for %q: %s", inm, r)
		}
	}
	s.must(200, "GET", "/v1/stream/s?offset=-1", hdr{"If-None-Match", `"other"`}, "")
	// Same range from another start offset spelling: no offset and -1 read the same.
	if r := s.must(200, "GET", "/v1/stream/s", nil, ""); r.header.Get("ETag") != etag {
		t.Fatalf("ETag without offset %q, with -1 %q", r.header.Get("ETag"), etag)
	}
	// New data changes the entity.
	s.appendTo("s", "text/plain", "d")
	r = s.must(200, "GET", "/v1/stream/s?offset=-1", hdr{"If-None-Match", etag}, "")
	if string(r.body) != "abcd" || r.header.Get("ETag") == etag {
		t.Fatalf("after append: %s", r)
	}
	etag2 := r.header.Get("ETag")
	// Closing changes it too, though the bytes are the same.
	s.must(204, "POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, "")
	r = s.must(200, "GET", "/v1/stream/s?offset=-1", hdr{"If-None-Match", etag2}, "")
	if string(r.body) != "abcd" || r.header.Get("ETag") == etag2 || !strings.HasSuffix(r.header.Get("ETag"), `:c"`) ||
		r.header.Get("Stream-Closed") != "true" {
		t.Fatalf("after close: %s", r)
	}
	// A read that stops short of the tail of a closed stream is not marked closed.
	r = s.must(200, "GET", "/v1/stream/s?offset="+tok(4), nil, "")
	if len(r.body) != 0 || r.header.Get("Stream-Closed") != "true" {
		t.Fatalf("empty read at the tail of a closed stream: %s", r)
	}
}

// ---- mounting under a prefix ----

func TestMountedUnderPrefix(t *testing.T) {
	s := newServer(t, nil, func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/ds/", http.StripPrefix("/ds", h))
		return mux
	})
	r := s.must(201, "PUT", "/ds/v1/stream/x", hdr{"Content-Type", "text/plain"}, "hello")
	loc := r.header.Get("Location")
	if loc != s.ts.URL+"/ds/v1/stream/x" {
		t.Fatalf("Location %q, want %q", loc, s.ts.URL+"/ds/v1/stream/x")
	}
	if !strings.HasSuffix(loc, "/ds/v1/stream/x") {
		t.Fatalf("Location %q", loc)
	}
	tests := []struct {
		name, from string
	}{
		{"path with prefix", "/ds/v1/stream/x"},
		{"absolute URL", loc},
		{"path without prefix", "/v1/stream/x"},
	}
	for i, tc := range tests {
		path := fmt.Sprintf("/ds/v1/stream/fork%d", i)
		r := s.must(201, "PUT", path, hdr{"Stream-Forked-From", tc.from}, "")
		if r.header.Get("Location") != s.ts.URL+path {
			t.Fatalf("%s: fork Location %q", tc.name, r.header.Get("Location"))
		}
		s.must(204, "POST", path, hdr{"Content-Type", "text/plain"}, "!")
		if r := s.must(200, "GET", path+"?offset=-1", nil, ""); string(r.body) != "hello!" {
			t.Fatalf("%s: fork reads %q", tc.name, r.body)
		}
	}
	if r := s.must(200, "GET", "/ds/v1/stream/x", nil, ""); string(r.body) != "hello" {
		t.Fatalf("source reads %q after fork appends", r.body)
	}
	// Not-found and errors work under the prefix too.
	r = s.must(404, "GET", "/ds/v1/stream/nope", nil, "")
	wantJSONError(t, r)
}

// ---- forks over HTTP ----

func TestForkReadsOverHTTP(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("src", "text/plain", "hello")
	s.appendTo("src", "text/plain", "world")
	tests := []struct {
		name string
		h    hdr
		want string
	}{
		{"tail", hdr{}, "helloworld"},
		{"boundary", hdr{"Stream-Fork-Offset", tok(5)}, "hello"},
		{"mid-message", hdr{"Stream-Fork-Offset", tok(7)}, "hellowo"},
		{"start sentinel", hdr{"Stream-Fork-Offset", "-1"}, ""},
		{"now sentinel", hdr{"Stream-Fork-Offset", "now"}, "helloworld"},
		{"sub-offset", hdr{"Stream-Fork-Offset", tok(5), "Stream-Fork-Sub-Offset", "3"}, "hellowor"},
	}
	for i, tc := range tests {
		path := fmt.Sprintf("/v1/stream/f%d", i)
		r := s.must(201, "PUT", path, append(hdr{"Stream-Forked-From", "/v1/stream/src"}, tc.h...), "")
		if got := r.header.Get("Stream-Next-Offset"); got != tok(int64(len(tc.want))) {
			t.Fatalf("%s: fork tail %s", tc.name, got)
		}
		if r.header.Get("Content-Type") != "text/plain" {
			t.Fatalf("%s: fork content type %q", tc.name, r.header.Get("Content-Type"))
		}
		s.must(204, "POST", path, hdr{"Content-Type", "text/plain"}, "!")
		if r := s.must(200, "GET", path, nil, ""); string(r.body) != tc.want+"!" {
			t.Fatalf("%s: fork reads %q, want %q", tc.name, r.body, tc.want+"!")
		}
		// Reading the fork never changes the source.
		if r := s.must(200, "GET", "/v1/stream/src", nil, ""); string(r.body) != "helloworld" {
			t.Fatalf("%s: source reads %q after a fork read", tc.name, r.body)
		}
	}
	// Idempotent re-create of a fork; another fork point conflicts. (A plain
	// PUT on a fork: sequencer TestPlainCreateOnForkConflicts.)
	s.must(200, "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/src", "Stream-Fork-Offset", tok(5), "Content-Type", "text/plain"}, "")
	s.must(409, "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/src", "Stream-Fork-Offset", tok(4)}, "")
	s.must(409, "PUT", "/v1/stream/f1", hdr{"Stream-Forked-From", "/v1/stream/f0", "Stream-Fork-Offset", tok(5)}, "")
	// Deleting a forked source: 410 for it, forks still read.
	s.must(204, "DELETE", "/v1/stream/src", nil, "")
	for _, m := range []string{"GET", "HEAD", "DELETE"} {
		s.must(410, m, "/v1/stream/src", nil, "")
	}
	s.must(410, "POST", "/v1/stream/src", hdr{"Content-Type", "text/plain"}, "x")
	s.must(409, "PUT", "/v1/stream/src", hdr{"Content-Type", "text/plain"}, "")
	s.must(409, "PUT", "/v1/stream/g", hdr{"Stream-Forked-From", "/v1/stream/src"}, "")
	if r := s.must(200, "GET", "/v1/stream/f1", nil, ""); string(r.body) != "hello!" {
		t.Fatalf("fork of deleted source reads %q", r.body)
	}
}

// TestAbsoluteFormRequestLocation: RFC 9112 section 3.2.2 requires servers
// to accept the absolute form of the request target; the Location of a
// created stream must still be its URL.
func TestAbsoluteFormRequestLocation(t *testing.T) {
	s := newServer(t, nil, nil)
	r := s.raw("PUT", "http://"+s.addr+"/v1/stream/abs", hdr{"Content-Type", "text/plain"}, "")
	if r.status != 201 {
		t.Fatalf("status %s", r)
	}
	if loc := r.header.Get("Location"); loc != "http://"+s.addr+"/v1/stream/abs" {
		t.Fatalf("Location %q, want %q", loc, "http://"+s.addr+"/v1/stream/abs")
	}
}

// TestJSONForkReadInsideInheritedMessageHTTP: a read of a JSON stream from
// an offset inside a message is a 400 on the source and must be on a fork
// too, never a body that is not JSON.
func TestJSONForkReadInsideInheritedMessageHTTP(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("js", "application/json", `{"a":4}`)
	s.must(201, "PUT", "/v1/stream/jf", hdr{"Stream-Forked-From", "/v1/stream/js"}, "")
	s.must(400, "GET", "/v1/stream/js?offset="+tok(1), nil, "")
	r := s.do("GET", "/v1/stream/jf?offset="+tok(1), nil, "")
	if r.status == 200 && !json.Valid(r.body) {
		t.Fatalf("fork read from inside a JSON message: 200 with invalid JSON %q", r.body)
	}
	if r.status != 400 {
		t.Fatalf("fork read from inside a JSON message: %s, want 400", r)
	}
}

// TestForkTokensOverHTTP: with rotation, the tokens a fork hands out for
// inherited positions must be the source's (docs/offsets.md, "Forks share
// the offset space"), and position 0 is all zeros.
func TestForkTokensOverHTTP(t *testing.T) {
	// Bounded responses end at segment boundaries, where tokens change.
	s := newServer(t, func(c *server.Config) { c.Rotation.SealMessages, c.ReadResponseMax = 2, 1<<20 }, nil)
	s.create("src", "text/plain", "")
	for _, m := range []string{"a", "bb", "ccc"} { // segment 0 = [0,3) sealed; "ccc" in open segment 1
		s.appendTo("src", "text/plain", m)
	}
	src := s.must(200, "GET", "/v1/stream/src?offset=-1", nil, "")
	if src.header.Get("Stream-Next-Offset") != tok(3) || string(src.body) != "abb" {
		t.Fatalf("source first chunk: %s", src)
	}
	s.must(201, "PUT", "/v1/stream/shared", hdr{"Stream-Forked-From", "/v1/stream/src"}, "")
	f := s.must(200, "GET", "/v1/stream/shared?offset=-1", nil, "")
	if got := f.header.Get("Stream-Next-Offset"); got != tok(3) {
		t.Fatalf("fork's first chunk ends at %s, the source calls that position %s", got, tok(3))
	}
	s.must(201, "PUT", "/v1/stream/own", hdr{"Stream-Forked-From", "/v1/stream/src", "Stream-Fork-Offset", tok(3)}, "")
	o := s.must(200, "GET", "/v1/stream/own?offset=-1", nil, "")
	if etag := o.header.Get("ETag"); !strings.Contains(etag, ":"+tok(0)+":") {
		t.Fatalf("ETag of a read from the start %s does not start at %s", etag, tok(0))
	}
}

// ---- producers and metadata over HTTP ----

func TestProducerOverHTTP(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("s", "text/plain", "")
	p := func(epoch, seq string) hdr {
		return hdr{"Content-Type", "text/plain", "Producer-Id", "w", "Producer-Epoch", epoch, "Producer-Seq", seq}
	}
	tests := []struct {
		name   string
		h      hdr
		body   string
		status int
		want   map[string]string // headers that must have these values ("" = absent)
	}{
		{"first", p("0", "0"), "a", 200, map[string]string{"Producer-Epoch": "0", "Producer-Seq": "0", "Stream-Next-Offset": tok(1)}},
		{"next", p("0", "1"), "b", 200, map[string]string{"Producer-Seq": "1", "Stream-Next-Offset": tok(2)}},
		{"duplicate", p("0", "0"), "a", 204, map[string]string{"Producer-Epoch": "0", "Producer-Seq": "1"}},
		{"gap", p("0", "5"), "x", 409, map[string]string{"Producer-Expected-Seq": "2", "Producer-Received-Seq": "5"}},
		{"new epoch", p("1", "0"), "c", 200, map[string]string{"Producer-Epoch": "1", "Producer-Seq": "0"}},
		{"stale epoch", p("0", "2"), "x", 403, map[string]string{"Producer-Epoch": "1"}},
		{"new epoch must start at 0", p("2", "1"), "x", 400, nil},
		{"close with producer", append(p("1", "1"), "Stream-Closed", "true"), "", 204,
			map[string]string{"Stream-Closed": "true", "Producer-Seq": "1", "Stream-Next-Offset": tok(3)}},
		{"closing retry", append(p("1", "1"), "Stream-Closed", "true"), "", 204, map[string]string{"Stream-Closed": "true"}},
		{"append after close", p("1", "2"), "x", 409, map[string]string{"Stream-Closed": "true", "Stream-Next-Offset": tok(3)}},
		{"plain append after close", hdr{"Content-Type", "text/plain"}, "x", 409, map[string]string{"Stream-Closed": "true"}},
		{"plain close is idempotent", hdr{"Stream-Closed", "true"}, "", 204, map[string]string{"Stream-Closed": "true", "Stream-Next-Offset": tok(3)}},
	}
	for _, tc := range tests {
		r := s.do("POST", "/v1/stream/s", tc.h, tc.body)
		if r.status != tc.status {
			t.Fatalf("%s: %s, want %d", tc.name, r, tc.status)
		}
		for k, v := range tc.want {
			if got := r.header.Get(k); got != v {
				t.Fatalf("%s: %s = %q, want %q (%s)", tc.name, k, got, v, r)
			}
		}
		if r.status >= 400 {
			wantJSONError(t, r)
		}
	}
	if r := s.must(200, "GET", "/v1/stream/s", nil, ""); string(r.body) != "abc" || r.header.Get("Stream-Closed") != "true" {
		t.Fatalf("final read: %s", r)
	}
}

func TestHeadAndCreateHeaders(t *testing.T) {
	s := newServer(t, nil, nil)
	r := s.must(201, "PUT", "/v1/stream/ttl", hdr{"Content-Type", "Text/Plain; Charset=UTF-8", "Stream-TTL", "3600"}, "abc")
	if r.header.Get("Location") != s.ts.URL+"/v1/stream/ttl" || r.header.Get("Stream-Next-Offset") != tok(3) {
		t.Fatalf("create: %s", r)
	}
	ct := r.header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		t.Fatalf("create content type %q", ct)
	}
	// Idempotent create: 200, no Location, same content type.
	r = s.must(200, "PUT", "/v1/stream/ttl", hdr{"Content-Type", "text/plain", "Stream-TTL", "3600"}, "ignored")
	if r.header.Get("Location") != "" || r.header.Get("Stream-Next-Offset") != tok(3) {
		t.Fatalf("idempotent create: %s", r)
	}
	s.must(409, "PUT", "/v1/stream/ttl", hdr{"Content-Type", "text/plain"}, "")
	h := s.must(200, "HEAD", "/v1/stream/ttl", nil, "")
	if h.header.Get("Stream-TTL") != "3600" || h.header.Get("Stream-Expires-At") != "" ||
		h.header.Get("Cache-Control") != "no-store" || h.header.Get("Stream-Next-Offset") != tok(3) || h.header.Get("Content-Type") != ct {
		t.Fatalf("HEAD: %s", h)
	}
	s.must(201, "PUT", "/v1/stream/exp", hdr{"Stream-Expires-At", "2099-01-02T03:04:05.5+02:00"}, "")
	h = s.must(200, "HEAD", "/v1/stream/exp", nil, "")
	if got := h.header.Get("Stream-Expires-At"); got != "2099-01-02T01:04:05.5Z" {
		t.Fatalf("Stream-Expires-At %q", got)
	}
	if h.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("default content type %q", h.header.Get("Content-Type"))
	}
	// offset=now: empty body ([] for JSON), tail, no-store.
	s.create("j", "application/json", "[1,2]")
	r = s.must(200, "GET", "/v1/stream/j?offset=now", nil, "")
	// The two messages are one record, "1,2": the tail is at 3.
	if string(r.body) != "[]" || r.header.Get("Stream-Next-Offset") != tok(3) || r.header.Get("Cache-Control") != "no-store" ||
		r.header.Get("Stream-Up-To-Date") != "true" {
		t.Fatalf("offset=now: %s", r)
	}
	r = s.must(200, "GET", "/v1/stream/j", nil, "")
	if string(r.body) != "[1,2]" || r.header.Get("ETag") == "" || !strings.Contains(r.header.Get("Cache-Control"), "max-age") {
		t.Fatalf("catch-up: %s", r)
	}
	s.must(204, "DELETE", "/v1/stream/j", nil, "")
	s.must(404, "GET", "/v1/stream/j", nil, "")
}
