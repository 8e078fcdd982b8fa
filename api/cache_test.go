package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

const (
	hotPublic   = "public, max-age=60, stale-while-revalidate=300"
	hotPrivate  = "private, max-age=60, stale-while-revalidate=300"
	immPublic   = "public, max-age=31536000, immutable"
	immPrivate  = "private, max-age=31536000, immutable"
	tailPublic  = "public, no-cache"
	tailPrivate = "private, no-cache"
	// privateMode is every read in private cache mode.
	privateMode = "private, no-store"
)

// wantCache checks the caching headers of a response: Cache-Control and
// Vary exactly, and whether ETag and Stream-Cursor are present.
func wantCache(t *testing.T, what string, r *response, cc, vary string, etag, cursor bool) {
	t.Helper()
	if got := r.header.Get("Cache-Control"); got != cc {
		t.Errorf("%s: Cache-Control %q, want %q", what, got, cc)
	}
	if got := strings.Join(r.header.Values("Vary"), ", "); got != vary {
		t.Errorf("%s: Vary %q, want %q", what, got, vary)
	}
	if got := r.header.Get("ETag") != ""; got != etag {
		t.Errorf("%s: ETag %q, want present %v", what, r.header.Get("ETag"), etag)
	}
	if got := r.header.Get("Stream-Cursor") != ""; got != cursor {
		t.Errorf("%s: Stream-Cursor %q, want present %v", what, r.header.Get("Stream-Cursor"), cursor)
	}
}

// sealedStream builds "s" in s: a sealed segment ab|cd|ef (3 messages per
// segment) and the open segment gh|ij; with 2-byte chunks every message is
// a chunk.
func sealedStream(t *testing.T, s *testServer) {
	t.Helper()
	s.create("s", "text/plain", "ab")
	for _, m := range []string{"cd", "ef", "gh", "ij"} {
		s.appendTo("s", "text/plain", m)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		// Private mode shows no difference between hot and sealed
		// chunks, so the segment index tells when the seal is done there.
		r := s.must(200, "GET", "/v1/stream/s?offset=-1", nil, "")
		cc := r.header.Get("Cache-Control")
		if strings.Contains(cc, "immutable") {
			return
		}
		page, err := s.srv.Admin().ListSegments(t.Context(), admin.Filter{StreamPath: "s"})
		if err != nil {
			t.Fatalf("segments: %v", err)
		}
		if cc == privateMode && len(page.Segments) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("first segment not sealed: %s", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sealingConfig(mode cache.Mode) func(*server.Config) {
	return func(c *server.Config) {
		c.MaxReadChunk = 2
		c.Rotation = sequencer.RotationPolicy{SealMessages: 3}
		c.CacheMode = mode
	}
}

// TestCacheHeadersByState walks one stream through its states and checks
// every kind of response in the shared and private modes.
func TestCacheHeadersByState(t *testing.T) {
	for _, mode := range []cache.Mode{cache.Shared, cache.Private} {
		t.Run(mode.String(), func(t *testing.T) {
			hot, imm, tail, sse := hotPublic, immPublic, tailPublic, "no-cache"
			if mode == cache.Private {
				hot, imm, tail, sse = privateMode, privateMode, privateMode, privateMode
			}
			s := newServer(t, sealingConfig(mode), nil)
			sealedStream(t, s)
			get := func(q string, h hdr) *response { return s.must(200, "GET", "/v1/stream/s?"+q, h, "") }

			wantCache(t, "sealed chunk", get("offset="+tok(0), nil), imm, "", true, false)
			wantCache(t, "sealed chunk at the segment end", get("offset="+tok(4), nil), imm, "", true, false)
			wantCache(t, "hot chunk", get("offset="+tok(6), nil), hot, "", true, false)
			r := get("offset="+tok(8), nil)
			wantCache(t, "hot chunk ending at the tail", r, hot, "", true, false)
			if r.header.Get("Stream-Up-To-Date") != "true" || string(r.body) != "ij" {
				t.Fatalf("hot tail: %s", r)
			}
			wantCache(t, "empty read at the open tail", get("offset="+tok(10), nil), tail, "", true, false)
			wantCache(t, "offset=now", get("offset=now", nil), "no-store", "", false, false)
			wantCache(t, "long-poll 200", get("offset="+tok(8)+"&live=long-poll", nil), hot, "", true, true)
			wantCache(t, "long-poll 200 in a sealed segment", get("offset="+tok(0)+"&live=long-poll", nil), imm, "", true, true)
			r = s.must(204, "GET", "/v1/stream/s?offset="+tok(10)+"&live=long-poll", nil, "")
			wantCache(t, "long-poll 204", r, "no-store", "", false, true)
			wantCache(t, "HEAD", s.must(200, "HEAD", "/v1/stream/s", nil, ""), "no-store", "", false, false)
			wantCache(t, "append", s.must(204, "POST", "/v1/stream/s", hdr{"Content-Type", "text/plain"}, "kl"), "no-store", "", false, false)
			wantCache(t, "error", s.must(400, "GET", "/v1/stream/s?offset=bogus", nil, ""), "no-store", "", false, false)

			// Closed: the final chunk and the end are final, so immutable,
			// with an ETag that differs from the open stream's.
			open := get("offset="+tok(10), nil).header.Get("ETag")
			wantCache(t, "close", s.must(204, "POST", "/v1/stream/s", hdr{"Stream-Closed", "true"}, ""), "no-store", "", false, false)
			r = get("offset="+tok(10), nil)
			wantCache(t, "final chunk", r, imm, "", true, false)
			if r.header.Get("Stream-Closed") != "true" || r.header.Get("ETag") == open || !strings.HasSuffix(r.header.Get("ETag"), `:c"`) {
				t.Fatalf("final chunk: %s (open ETag %s)", r, open)
			}
			r = get("offset="+tok(12), nil)
			wantCache(t, "end of a closed stream", r, imm, "", true, false)
			if r.header.Get("Stream-Closed") != "true" || len(r.body) != 0 {
				t.Fatalf("end of a closed stream: %s", r)
			}
			r = s.must(204, "GET", "/v1/stream/s?offset="+tok(12)+"&live=long-poll", nil, "")
			wantCache(t, "long-poll 204 closed", r, "no-store", "", false, false)
			wantCache(t, "SSE", get("offset="+tok(10)+"&live=sse", nil), sse, "", false, false)
		})
	}
}

// TestCacheExpiryClamp: nothing is cacheable beyond the stream's expiry.
func TestCacheExpiryClamp(t *testing.T) {
	s := newServer(t, sealingConfig(cache.Shared), nil)
	s.must(201, "PUT", "/v1/stream/e", hdr{"Content-Type", "text/plain", "Stream-TTL", "120"}, "ab")
	r := s.must(200, "GET", "/v1/stream/e?offset=-1", nil, "")
	wantCache(t, "hot chunk", r, hotPublic, "", true, false)
	s.must(204, "POST", "/v1/stream/e", hdr{"Stream-Closed", "true"}, "")
	r = s.must(200, "GET", "/v1/stream/e?offset=-1", nil, "")
	cc := r.header.Get("Cache-Control")
	var age int
	if _, err := fmt.Sscanf(cc, "public, max-age=%d", &age); err != nil || age < 100 || age > 120 || strings.Contains(cc, "immutable") {
		t.Fatalf("final chunk of a stream expiring in 120s: Cache-Control %q", cc)
	}
}

// TestRevalidationAtTheTail: the empty read at the open tail is
// revalidated with a 304 until an append or the close changes its ETag.
func TestRevalidationAtTheTail(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("t", "text/plain", "abc")
	url := "/v1/stream/t?offset=" + tok(3)
	r := s.must(200, "GET", url, nil, "")
	etag := r.header.Get("ETag")
	r = s.must(304, "GET", url, hdr{"If-None-Match", etag}, "")
	wantCache(t, "304", r, tailPublic, "", true, false)
	s.appendTo("t", "text/plain", "d")
	r = s.must(200, "GET", url, hdr{"If-None-Match", etag}, "")
	if string(r.body) != "d" {
		t.Fatalf("after append: %s", r)
	}
	url = "/v1/stream/t?offset=" + tok(4)
	etag = s.must(200, "GET", url, nil, "").header.Get("ETag")
	s.must(204, "POST", "/v1/stream/t", hdr{"Stream-Closed", "true"}, "")
	r = s.must(200, "GET", url, hdr{"If-None-Match", etag}, "")
	if r.header.Get("Stream-Closed") != "true" || r.header.Get("ETag") == etag {
		t.Fatalf("the close was hidden by a 304: %s", r)
	}
	wantCache(t, "after close", r, immPublic, "", true, false)
}

// TestEdgeCacheMode: X-Cache-Mode is honoured only with the edge secret,
// and cacheable responses vary with it once an edge secret is set.
func TestEdgeCacheMode(t *testing.T) {
	const secret = "edge-secret-0123456789"
	s := newServer(t, func(c *server.Config) { c.EdgeSecret = secret }, nil)
	s.create("s", "text/plain", "abc")
	const url = "/v1/stream/s?offset=-1"
	tests := []struct {
		name string
		h    hdr
		cc   string
	}{
		{"default", nil, hotPublic},
		{"edge private", hdr{"X-Cache-Mode", "private", "X-Edge-Secret", secret}, privateMode},
		{"edge shared", hdr{"X-Cache-Mode", "shared", "X-Edge-Secret", secret}, hotPublic},
		{"no secret", hdr{"X-Cache-Mode", "private"}, hotPublic},
		{"wrong secret", hdr{"X-Cache-Mode", "private", "X-Edge-Secret", "guess"}, hotPublic},
		{"wrong secret bad mode", hdr{"X-Cache-Mode", "bogus", "X-Edge-Secret", "guess"}, hotPublic},
	}
	for _, tc := range tests {
		wantCache(t, tc.name, s.must(200, "GET", url, tc.h, ""), tc.cc, "X-Cache-Mode", true, false)
	}
	r := s.must(200, "GET", "/v1/stream/s?offset=now", hdr{"X-Cache-Mode", "private", "X-Edge-Secret", secret}, "")
	wantCache(t, "offset=now", r, "no-store", "", false, false)
	r = s.must(400, "GET", url, hdr{"X-Cache-Mode", "bogus", "X-Edge-Secret", secret}, "")
	wantJSONError(t, r)
	if !strings.Contains(string(r.body), "X-Cache-Mode") {
		t.Fatalf("bad mode error does not name the header: %s", r)
	}

	// Without an edge secret the headers mean nothing and nothing varies.
	plain := newServer(t, nil, nil)
	plain.create("s", "text/plain", "abc")
	r = plain.must(200, "GET", url, hdr{"X-Cache-Mode", "private", "X-Edge-Secret", ""}, "")
	wantCache(t, "no edge configured", r, hotPublic, "", true, false)
}

// TestCacheWithAuth: authenticated reads of streams that need credentials
// are private and vary on Authorization; public-read streams stay public.
func TestCacheWithAuth(t *testing.T) {
	const token = "admin-token-for-cache-tests"
	bearer := hdr{"Authorization", "Bearer " + token}
	s := newServer(t, func(c *server.Config) {
		c.Auth = auth.Config{AdminToken: token, PublicRead: []string{"pub/"}}
	}, nil)
	for _, p := range []string{"pub/s", "priv/s"} {
		s.must(201, "PUT", "/v1/stream/"+p, hdr{"Content-Type", "text/plain", "Authorization", "Bearer " + token}, "abc")
	}
	wantCache(t, "restricted, token", s.must(200, "GET", "/v1/stream/priv/s?offset=-1", bearer, ""), hotPrivate, "Authorization", true, false)
	wantCache(t, "restricted, token, empty tail", s.must(200, "GET", "/v1/stream/priv/s?offset="+tok(3), bearer, ""),
		tailPrivate, "Authorization", true, false)
	wantCache(t, "restricted, long-poll", s.must(200, "GET", "/v1/stream/priv/s?offset=-1&live=long-poll", bearer, ""),
		hotPrivate, "Authorization", true, true)
	wantCache(t, "restricted, anonymous", s.must(401, "GET", "/v1/stream/priv/s?offset=-1", nil, ""), "no-store", "", false, false)
	wantCache(t, "public-read, token", s.must(200, "GET", "/v1/stream/pub/s?offset=-1", bearer, ""), hotPublic, "", true, false)
	wantCache(t, "public-read, anonymous", s.must(200, "GET", "/v1/stream/pub/s?offset=-1", nil, ""), hotPublic, "", true, false)
	wantCache(t, "restricted, HEAD", s.must(200, "HEAD", "/v1/stream/priv/s", bearer, ""), "no-store", "", false, false)
}

// ---- read collapsing ----

type readStatser interface{ ReadStats() api.ReadStats }

func readStats(t *testing.T, s *testServer) func() api.ReadStats {
	t.Helper()
	rs, ok := s.srv.Handler().(readStatser)
	if !ok {
		t.Fatalf("handler %T has no ReadStats", s.srv.Handler())
	}
	return rs.ReadStats
}

// waitFor polls cond until it holds or 2 minutes pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLongPollCollapsing: one append wakes 2,000 long-polls waiting at the
// same offset; all get the bytes from exactly one storage read.
func TestLongPollCollapsing(t *testing.T) {
	const n = 2000
	s := newServer(t, func(c *server.Config) { c.LongPollTimeout = 5 * time.Minute }, nil)
	stats := readStats(t, s)
	s.create("lp", "text/plain", "x")
	h := s.srv.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan *httptest.ResponseRecorder, n)
	for range n {
		go func() {
			req := httptest.NewRequestWithContext(ctx, "GET", "/v1/stream/lp?live=long-poll&offset="+tok(1), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			results <- rec
		}()
	}
	waitFor(t, "the long-polls to wait", func() bool { return stats().LiveWaiters == n })
	before := stats()
	s.appendTo("lp", "text/plain", "hello")
	for range n {
		rec := <-results
		if rec.Code != 200 || rec.Body.String() != "hello" || rec.Header().Get("Stream-Next-Offset") != tok(6) {
			t.Fatalf("long-poll: %d %v %q", rec.Code, rec.Header(), rec.Body)
		}
	}
	after := stats()
	if reads, collapsed := after.StorageReads-before.StorageReads, after.CollapsedReads-before.CollapsedReads; reads != 1 || collapsed != n-1 {
		t.Fatalf("%d long-polls woken by one append: %d storage reads, %d collapsed; want 1 and %d", n, reads, collapsed, n-1)
	}
	if after.LiveWaiters != 0 {
		t.Fatalf("LiveWaiters %d after all answered", after.LiveWaiters)
	}
}

// sseRecorder is a ResponseWriter for concurrent SSE handlers that tells
// when the body contains a string.
type sseRecorder struct {
	header http.Header
	want   []byte
	got    chan struct{}

	mu   sync.Mutex
	code int
	body bytes.Buffer
	once sync.Once
}

func newSSERecorder(want string) *sseRecorder {
	return &sseRecorder{header: http.Header{}, want: []byte(want), got: make(chan struct{})}
}

func (w *sseRecorder) Header() http.Header { return w.header }
func (w *sseRecorder) Flush()              {}

func (w *sseRecorder) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = code
	}
}

func (w *sseRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body.Write(p)
	if bytes.Contains(w.body.Bytes(), w.want) {
		w.once.Do(func() { close(w.got) })
	}
	return len(p), nil
}

// TestSSECollapsing: one append reaches 500 SSE subscribers from exactly
// one storage read.
func TestSSECollapsing(t *testing.T) {
	const n = 500
	s := newServer(t, func(c *server.Config) { c.SSEMaxDuration = 5 * time.Minute }, nil)
	stats := readStats(t, s)
	s.create("sse", "text/plain", "x")
	h := s.srv.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := make([]*sseRecorder, n)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newSSERecorder("data:hello\n")
		wg.Add(1)
		go func(w *sseRecorder) {
			defer wg.Done()
			req := httptest.NewRequestWithContext(ctx, "GET", "/v1/stream/sse?live=sse&offset="+tok(1), nil)
			h.ServeHTTP(w, req)
		}(recs[i])
	}
	waitFor(t, "the subscribers to wait", func() bool { return stats().LiveWaiters == n })
	before := stats()
	s.appendTo("sse", "text/plain", "hello")
	for i, w := range recs {
		select {
		case <-w.got:
		case <-time.After(2 * time.Minute):
			w.mu.Lock()
			t.Fatalf("subscriber %d did not get the append: %q", i, w.body.String())
		}
	}
	waitFor(t, "the subscribers to wait again", func() bool { return stats().LiveWaiters == n })
	after := stats()
	cancel()
	wg.Wait()
	if reads, collapsed := after.StorageReads-before.StorageReads, after.CollapsedReads-before.CollapsedReads; reads != 1 || collapsed != n-1 {
		t.Fatalf("%d SSE subscribers woken by one append: %d storage reads, %d collapsed; want 1 and %d", n, reads, collapsed, n-1)
	}
	for i, w := range recs {
		if w.code != 200 || w.header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("subscriber %d: %d %v", i, w.code, w.header)
		}
	}
}

// TestCatchUpCollapsing: identical catch-up reads share one storage read,
// and the next snapshot is read afresh.
func TestCatchUpCollapsing(t *testing.T) {
	const n = 200
	s := newServer(t, nil, nil)
	stats := readStats(t, s)
	s.create("cu", "text/plain", strings.Repeat("z", 1000))
	h := s.srv.Handler()
	before := stats()
	var wg sync.WaitGroup
	bodies := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/stream/cu?offset=-1", nil))
			if rec.Code != 200 {
				t.Errorf("catch-up: %d %q", rec.Code, rec.Body)
			}
			bodies <- rec.Body.String()
		}()
	}
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if len(b) != 1000 {
			t.Fatalf("catch-up body of %d bytes", len(b))
		}
	}
	after := stats()
	if reads, collapsed := after.StorageReads-before.StorageReads, after.CollapsedReads-before.CollapsedReads; reads != 1 || collapsed != n-1 {
		t.Fatalf("%d identical catch-up reads: %d storage reads, %d collapsed; want 1 and %d", n, reads, collapsed, n-1)
	}
	// An append makes a new snapshot: the same request reads again and
	// sees the new byte, never the kept result.
	s.appendTo("cu", "text/plain", "!")
	r := s.must(200, "GET", "/v1/stream/cu?offset=-1", nil, "")
	if len(r.body) != 1001 || !strings.HasSuffix(string(r.body), "!") {
		t.Fatalf("read after append returned %d bytes", len(r.body))
	}
	if got := stats().StorageReads - after.StorageReads; got != 1 {
		t.Fatalf("read after append: %d storage reads, want 1", got)
	}
	if st := stats(); st.KeptReads != 1 || st.KeptReadBytes != 1001 {
		t.Fatalf("kept after the new snapshot: %+v", st)
	}
}

// newBenchServer starts a server for benchmarks; reads go straight to
// its handler.
func newBenchServer(b *testing.B) http.Handler {
	b.Helper()
	srv, err := server.New(context.Background(), server.Config{DataDir: b.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.BeginShutdown()
		_ = srv.Close(context.Background())
	})
	return srv.Handler()
}

// benchCatchUp reads offsets of one 8 KiB message from the tail cache,
// the fastest storage path, so that any overhead shows the most. With
// distinct offsets it cycles through more than the kept results, so every
// read misses: the cost a lone reader pays.
func benchCatchUp(b *testing.B, distinct int) {
	h := newBenchServer(b)
	req := httptest.NewRequest("PUT", "/v1/stream/b", strings.NewReader(strings.Repeat("z", 8192)))
	req.Header.Set("Content-Type", "application/octet-stream")
	h.ServeHTTP(httptest.NewRecorder(), req)
	urls := make([]string, distinct)
	for i := range urls {
		urls[i] = "/v1/stream/b?offset=" + tok(int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", urls[i%distinct], nil))
		if rec.Code != 200 {
			b.Fatalf("read: %d %q", rec.Code, rec.Body)
		}
	}
}

func BenchmarkCatchUpReadMiss(b *testing.B) { benchCatchUp(b, 8000) }
func BenchmarkCatchUpReadSame(b *testing.B) { benchCatchUp(b, 1) }
