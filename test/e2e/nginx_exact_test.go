package e2e

import (
	"bytes"
	"net/http"
	"testing"
)

// TestNginxExactMode checks the edge's default cache mode (DS_EDGE_CACHE
// empty, i.e. exact; docs/deploy-nginx.md "Cache modes"): sealed chunks
// are stored and served from the edge, even with the origin down; a read
// of the open tail is never answered from the store, so re-reading a URL
// after an append shows the append; If-None-Match reaches the origin,
// which answers 304, and that 304 is never served to a plain request;
// long-polls pass through uncached.
func TestNginxExactMode(t *testing.T) {
	env := startEdgeEnv(t, edgeConfig{}, "--cache-mode", "shared", "--seal-bytes", "4096", "--read-response-max", "1048576")
	const (
		path = "edge/exact"
		ct   = "application/octet-stream"
	)
	createStream(t, env.client, env.srv.StreamURL(path), ct, nil)
	var want []byte
	for i := range 12 {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		appendTo(t, env.client, env.srv.StreamURL(path), ct, msg)
		want = append(want, msg...)
	}

	// readAll follows the stream from its start to its tail through the
	// edge.
	readAll := func() []edgeRead {
		t.Helper()
		var reads []edgeRead
		var got []byte
		for off := "-1"; len(reads) < 100; {
			r := mustEdgeGet(t, env.client, env.edge.URL, StreamPrefix+path+"?offset="+off, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", r.uri, r.status, r.body)
			}
			reads = append(reads, r)
			got = append(got, r.body...)
			if r.upToDate {
				break
			}
			off = r.next
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes through the edge, want the %d appended (first difference at %d)", len(got), len(want), firstDiff(got, want))
		}
		return reads
	}
	readAll()
	second := readAll()
	sealed := 0
	var tail edgeRead
	for _, r := range second {
		immutable := hasDirective(r.cacheControl, "immutable")
		wantStatus, wantOrigin := "MISS", 2
		if immutable {
			sealed++
			wantStatus, wantOrigin = "HIT", 1
		} else {
			tail = r
		}
		if r.cacheStatus != wantStatus || env.origin.count(r.uri) != wantOrigin {
			t.Errorf("second read of %s (%q): %s, origin saw it %d times; want %s and %d",
				r.uri, r.cacheControl, r.cacheStatus, env.origin.count(r.uri), wantStatus, wantOrigin)
		}
	}
	if sealed < 2 || tail.uri == "" {
		t.Fatalf("%d sealed chunks and tail %q; the test needs sealed chunks and an open tail", sealed, tail.uri)
	}

	// The same tail URL again after an append: the new bytes, at once.
	more := bytes.Repeat([]byte{'z'}, 100)
	appendTo(t, env.client, env.srv.StreamURL(path), ct, more)
	want = append(want, more...)
	again := mustEdgeGet(t, env.client, env.edge.URL, tail.uri, nil)
	if !bytes.Equal(again.body, append(append([]byte(nil), tail.body...), more...)) {
		t.Errorf("re-read of %s after an append: %d bytes, want %d (the append included)", tail.uri, len(again.body), len(tail.body)+len(more))
	}

	// A conditional request is the origin's to answer, and its 304 is
	// not stored.
	resp, _ := coldDo(t, env.client, http.MethodGet, env.edge.URL+tail.uri, nil, nil)
	etag := resp.Header.Get("ETag")
	resp, body := coldDo(t, env.client, http.MethodGet, env.edge.URL+tail.uri, nil, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("GET %s with If-None-Match %s: %d with %d bytes, want 304 from the origin", tail.uri, etag, resp.StatusCode, len(body))
	}
	if plain := mustEdgeGet(t, env.client, env.edge.URL, tail.uri, nil); plain.status != http.StatusOK || len(plain.body) == 0 {
		t.Errorf("GET %s after a conditional one: %d with %d bytes, want 200 with the data", tail.uri, plain.status, len(plain.body))
	}

	// Long-polls with data pass through, each to the origin.
	lp := tail.uri + "&live=long-poll"
	for range 2 {
		if r := mustEdgeGet(t, env.client, env.edge.URL, lp, nil); r.status != http.StatusOK || r.cacheStatus != "" {
			t.Errorf("long-poll %s: %d, cache status %q; want 200 and no cache", lp, r.status, r.cacheStatus)
		}
	}
	if n := env.origin.count(lp); n != 2 {
		t.Errorf("origin saw the long-poll %s %d times, want 2", lp, n)
	}

	// With the origin down the stored sealed chunks are still served.
	env.srv.Stop()
	for _, r := range second {
		if !hasDirective(r.cacheControl, "immutable") {
			continue
		}
		if got := mustEdgeGet(t, env.client, env.edge.URL, r.uri, nil); got.status != http.StatusOK || got.cacheStatus != "HIT" || !bytes.Equal(got.body, r.body) {
			t.Errorf("origin stopped: GET %s = %d %s with %d bytes, want 200 HIT with %d", r.uri, got.status, got.cacheStatus, len(got.body), len(r.body))
		}
	}
}
