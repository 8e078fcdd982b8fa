package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

// streamingConfig reads 16 bytes at a time and seals every 3 messages, so
// a catch-up response spans many storage reads and segments.
func streamingConfig(responseMax int) func(*server.Config) {
	return func(c *server.Config) {
		c.MaxReadChunk, c.ReadResponseMax = 16, responseMax
		c.Rotation = sequencer.RotationPolicy{SealMessages: 3}
	}
}

// TestCatchUpWholeStream: by default one catch-up response carries
// everything from the offset to the tail, with headers that describe
// exactly that.
func TestCatchUpWholeStream(t *testing.T) {
	s := newServer(t, streamingConfig(0), nil)
	s.create("b", "application/octet-stream", "")
	var want strings.Builder
	for i := range 40 {
		m := fmt.Sprintf("message-%02d;", i)
		s.appendTo("b", "application/octet-stream", m)
		want.WriteString(m)
	}
	tail := s.must(200, "HEAD", "/v1/stream/b", nil, "").header.Get("Stream-Next-Offset")
	cases := []struct {
		name, offset string
		from         int
	}{
		{"from the start", "-1", 0},
		{"from the middle", tok(int64(11 * 7)), 11 * 7},
		{"from inside a message", tok(5), 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.must(200, "GET", "/v1/stream/b?offset="+tc.offset, nil, "")
			if string(r.body) != want.String()[tc.from:] {
				t.Fatalf("body %q, want %q", r.body, want.String()[tc.from:])
			}
			if got := r.header.Get("Content-Length"); got != fmt.Sprint(want.Len()-tc.from) {
				t.Errorf("Content-Length %s, want %d", got, want.Len()-tc.from)
			}
			if r.header.Get("Stream-Next-Offset") != tail || r.header.Get("Stream-Up-To-Date") != "true" {
				t.Errorf("headers %v, want next offset %s and up to date", r.header, tail)
			}
			if cc := r.header.Get("Cache-Control"); cc != hotPublic {
				t.Errorf("Cache-Control %q, want %q (the response reaches the open segment)", cc, hotPublic)
			}
			etag := r.header.Get("ETag")
			if !strings.HasSuffix(etag, ":"+tail+`"`) {
				t.Errorf("ETag %s does not end at the tail %s", etag, tail)
			}
			nm := s.must(304, "GET", "/v1/stream/b?offset="+tc.offset, hdr{"If-None-Match", etag}, "")
			if len(nm.body) != 0 || nm.header.Get("ETag") != etag {
				t.Errorf("304: %s", nm)
			}
		})
	}

	// Closed: the whole rest is final.
	s.must(204, "POST", "/v1/stream/b", hdr{"Stream-Closed", "true"}, "")
	r := s.must(200, "GET", "/v1/stream/b?offset=-1", nil, "")
	if string(r.body) != want.String() || r.header.Get("Stream-Closed") != "true" || r.header.Get("Cache-Control") != immPublic {
		t.Fatalf("closed stream: %s", r)
	}
}

// TestCatchUpWholeStreamJSON: a JSON response over many storage reads is
// one JSON array of every message.
func TestCatchUpWholeStreamJSON(t *testing.T) {
	s := newServer(t, streamingConfig(0), nil)
	s.create("j", "application/json", "")
	var want []any
	for i := range 30 {
		s.appendTo("j", "application/json", fmt.Sprintf(`[{"n":%d},"x%d"]`, i, i))
		want = append(want, map[string]any{"n": float64(i)}, fmt.Sprintf("x%d", i))
	}
	r := s.must(200, "GET", "/v1/stream/j?offset=-1", nil, "")
	var got []any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, r.body)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if r.header.Get("Stream-Up-To-Date") != "true" {
		t.Fatalf("not up to date: %s", r)
	}
}

// TestCatchUpBounded: with ReadResponseMax a response is one read that
// ends at a segment boundary, so a sealed one is immutable.
func TestCatchUpBounded(t *testing.T) {
	s := newServer(t, streamingConfig(1<<20), nil)
	s.create("b", "text/plain", "")
	for _, m := range []string{"ab", "cd", "ef", "gh"} { // [0,6) sealed, "gh" in the open segment
		s.appendTo("b", "text/plain", m)
	}
	r := s.must(200, "GET", "/v1/stream/b?offset=-1", nil, "")
	if string(r.body) != "abcdef" || r.header.Get("Stream-Up-To-Date") != "" || r.header.Get("Cache-Control") != immPublic {
		t.Fatalf("first bounded response: %s", r)
	}
	r = s.must(200, "GET", "/v1/stream/b?offset="+r.header.Get("Stream-Next-Offset"), nil, "")
	if string(r.body) != "gh" || r.header.Get("Stream-Up-To-Date") != "true" {
		t.Fatalf("second bounded response: %s", r)
	}
}

// TestZeroCopyCatchUp: catch-up reads of cached cold segments sent from
// the file (sendfile) have the same status, headers and bytes as the same
// reads through memory, including segments of small messages (which are
// read through memory even on the zero-copy path) and reads that start
// inside a message or revalidate.
func TestZeroCopyCatchUp(t *testing.T) {
	cfg := func(noZeroCopy bool) func(*server.Config) {
		return func(c *server.Config) {
			c.MaxReadChunk = 48 << 10
			c.Rotation = sequencer.RotationPolicy{SealBytes: 100 << 10}
			c.DisableZeroCopy = noZeroCopy
		}
	}
	zc, cp := newServer(t, cfg(false), nil), newServer(t, cfg(true), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs []string
	for i := range 30 {
		n := 20 << 10 // larger than a segment block: sent from the file
		if i >= 10 && i < 15 {
			n = 100 // small messages share blocks: read through memory
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		msgs = append(msgs, string(b))
	}
	var all strings.Builder
	for _, s := range []*testServer{zc, cp} {
		s.create("z", "application/octet-stream", "")
		for _, m := range msgs {
			s.appendTo("z", "application/octet-stream", m)
		}
		waitFor(t, "segments uploaded", func() bool {
			st := s.srv.Rotator().Stats()
			return st.Uploaded > 0 && st.OldestQueued.IsZero()
		})
	}
	for _, m := range msgs {
		all.WriteString(m)
	}
	// Tokens name the segment, so take them from the stream itself.
	first := zc.must(200, "GET", "/v1/stream/z?offset=-1", nil, "")
	if string(first.body) != all.String() {
		t.Fatalf("zero-copy body: %d bytes, want %d", len(first.body), all.Len())
	}
	if readStats(t, zc)().ZeroCopyBytes == 0 {
		t.Fatal("no bytes were sent from segment files")
	}
	offsets := []string{"-1", tok(0), tok(7), tok(25 << 10), tok(200 << 10)}
	for _, off := range offsets {
		a := zc.raw("GET", "/v1/stream/z?offset="+off, nil, "")
		b := cp.raw("GET", "/v1/stream/z?offset="+off, nil, "")
		sameResponse(t, "offset "+off, a, b)
		if a.status == 200 {
			etag := a.header.Get("ETag")
			sameResponse(t, "revalidated "+off,
				zc.raw("GET", "/v1/stream/z?offset="+off, hdr{"If-None-Match", etag}, ""),
				cp.raw("GET", "/v1/stream/z?offset="+off, hdr{"If-None-Match", etag}, ""))
		}
	}
	if n := readStats(t, cp)().ZeroCopyBytes; n != 0 {
		t.Fatalf("DisableZeroCopy: %d bytes sent from files", n)
	}
}

// sameResponse fails unless a and b have the same status, body and
// headers, except those that differ per request.
func sameResponse(t *testing.T, what string, a, b *response) {
	t.Helper()
	if a.status != b.status || string(a.body) != string(b.body) {
		t.Fatalf("%s: status %d with %d bytes, want %d with %d bytes", what, a.status, len(a.body), b.status, len(b.body))
	}
	for _, h := range []http.Header{a.header, b.header} {
		h.Del("Date")
		h.Del("X-Request-Id")
	}
	if fmt.Sprint(a.header) != fmt.Sprint(b.header) {
		t.Fatalf("%s: headers\n%v\nwant\n%v", what, a.header, b.header)
	}
}
