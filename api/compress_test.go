package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/streamtier/durable-streams/internal/contentenc"
	"github.com/streamtier/durable-streams/server"
)

// decodeBody undoes the response's Content-Encoding.
func decodeBody(t *testing.T, r *response) []byte {
	t.Helper()
	rd, err := contentenc.NewReader(contentenc.Encoding(r.header.Get("Content-Encoding")), bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decode %s: %v", r.header.Get("Content-Encoding"), err)
	}
	return b
}

// TestCompression: read responses are compressed with the coding the
// client prefers, when the content type is compressible and the body is
// not tiny; each coding has its own ETag; every negotiable response
// varies with Accept-Encoding.
func TestCompression(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(fmt.Sprintf("streamed=%v", streamed), func(t *testing.T) {
			s := newServer(t, func(c *server.Config) {
				if streamed {
					c.MaxReadChunk = 512 // many storage reads per response
				}
			}, nil)
			s.create("j", "application/json", "")
			var want []string
			for i := range 100 {
				m := fmt.Sprintf(`{"n":%d,"text":"the same words again and again"}`, i)
				s.appendTo("j", "application/json", m)
				want = append(want, m)
			}
			wantBody := "[" + strings.Join(want, ",") + "]"
			s.create("tiny", "application/json", `{"a":1}`)
			s.create("bin", "application/octet-stream", strings.Repeat("x", 4096))

			cases := []struct {
				name, path, accept, coding string
				vary                       bool
			}{
				{"gzip", "j", "gzip", "gzip", true},
				{"zstd", "j", "gzip, deflate, br, zstd", "zstd", true},
				{"preferred by q", "j", "zstd;q=0.5, gzip", "gzip", true},
				{"identity", "j", "", "", true},
				{"unsupported only", "j", "br", "", true},
				{"tiny body", "tiny", "gzip", "", true},
				{"octet-stream", "bin", "gzip", "", false},
			}
			etags := map[string]string{}
			for _, tc := range cases {
				r := s.raw("GET", "/v1/stream/"+tc.path+"?offset=-1", hdr{"Accept-Encoding", tc.accept}, "")
				if r.status != 200 {
					t.Fatalf("%s: %s", tc.name, r)
				}
				if got := r.header.Get("Content-Encoding"); got != tc.coding {
					t.Errorf("%s: Content-Encoding %q, want %q", tc.name, got, tc.coding)
				}
				if got := strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Accept-Encoding"); got != tc.vary {
					t.Errorf("%s: Vary %v, want Accept-Encoding: %v", tc.name, r.header.Values("Vary"), tc.vary)
				}
				if tc.coding != "" && r.header.Get("Content-Length") != "" && r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
					t.Errorf("%s: Content-Length %s for %d bytes", tc.name, r.header.Get("Content-Length"), len(r.body))
				}
				body := decodeBody(t, r)
				if tc.path == "j" {
					if string(body) != wantBody || !json.Valid(body) {
						t.Fatalf("%s: body %q", tc.name, body)
					}
					etags[tc.coding] = r.header.Get("ETag")
				}
				// Revalidation with the coding's own ETag.
				nm := s.raw("GET", "/v1/stream/"+tc.path+"?offset=-1", hdr{"Accept-Encoding", tc.accept, "If-None-Match", r.header.Get("ETag")}, "")
				if nm.status != 304 {
					t.Errorf("%s: revalidation: %s", tc.name, nm)
				}
			}
			if etags["gzip"] == etags[""] || etags["zstd"] == etags[""] || etags["gzip"] == etags["zstd"] {
				t.Fatalf("codings share ETags: %v", etags)
			}
			// Another coding's ETag does not validate this coding's copy.
			r := s.raw("GET", "/v1/stream/j?offset=-1", hdr{"If-None-Match", etags["gzip"]}, "")
			if r.status != 200 || r.header.Get("Content-Encoding") != "" {
				t.Fatalf("identity request with the gzip ETag: %s", r)
			}
			if streamed {
				return // long-poll answers one small read: not worth compressing
			}
			// Long-poll 200s are compressed the same way.
			r = s.raw("GET", "/v1/stream/j?offset=-1&live=long-poll", hdr{"Accept-Encoding", "gzip"}, "")
			if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" || string(decodeBody(t, r)) != wantBody {
				t.Fatalf("long-poll: %s", r)
			}
		})
	}
}

// TestCompressionOff: with compression off nothing is compressed and
// nothing varies with Accept-Encoding.
func TestCompressionOff(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.DisableCompression = true }, nil)
	s.create("j", "application/json", `[`+strings.Repeat(`"abcdefgh",`, 500)+`"z"]`)
	r := s.raw("GET", "/v1/stream/j?offset=-1", hdr{"Accept-Encoding", "gzip, zstd"}, "")
	if r.status != 200 || r.header.Get("Content-Encoding") != "" || len(r.header.Values("Vary")) != 0 || !json.Valid(r.body) {
		t.Fatalf("compression off: %s", r)
	}
}

// TestSSECompressionDoesNotDelay: a compressed SSE response delivers each
// event when it is sent, not when the compressor's buffer fills or the
// connection ends.
func TestSSECompressionDoesNotDelay(t *testing.T) {
	s := newServer(t, nil, nil) // SSE connections last 5 s
	s.create("j", "application/json", `{"first":true}`)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.ts.URL+"/v1/stream/j?offset=-1&live=sse", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("SSE Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(2 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q within 2 s: held back by the compressor", want)
			}
		}
	}
	expect(`{"first":true}`)
	expect(`"upToDate":true`)
	s.appendTo("j", "application/json", `{"second":true}`)
	expect(`{"second":true}`)
}
