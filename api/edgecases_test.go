package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/internal/protocol"
)

// TestTTLMaxSafeIntegerIdempotentCreate: a TTL beyond what a Duration
// holds is stored saturated, and the identical PUT compares equal to it
// (it used to be stored rounded and compared unrounded: 201, then 409).
func TestTTLMaxSafeIntegerIdempotentCreate(t *testing.T) {
	s := newServer(t, nil, nil)
	for _, ttl := range []string{"9007199254740991", "9223372037", "9223372036"} {
		path := "/v1/stream/ttl-" + ttl
		h := hdr{"Content-Type", "text/plain", "Stream-TTL", ttl}
		s.must(http.StatusCreated, "PUT", path, h, "")
		s.must(http.StatusOK, "PUT", path, h, "")
		r := s.must(http.StatusOK, "HEAD", path, nil, "")
		if got := r.header.Get("Stream-TTL"); got != "9223372036" {
			t.Errorf("TTL %s: HEAD Stream-TTL %q, want the saturated 9223372036", ttl, got)
		}
		s.must(http.StatusConflict, "PUT", path, hdr{"Content-Type", "text/plain", "Stream-TTL", "3600"}, "")
	}
}

// TestExpiresAtYearOne: 0001-01-01T00:00:00Z is long past, like 1970, and
// the stream expires at once; it used to be Go's zero time ("no expiry").
func TestExpiresAtYearOne(t *testing.T) {
	s := newServer(t, nil, nil)
	for _, at := range []string{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0001Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z"} {
		path := "/v1/stream/exp-" + strings.NewReplacer(":", "", ".", "").Replace(at)
		s.must(http.StatusCreated, "PUT", path, hdr{"Content-Type", "text/plain", "Stream-Expires-At", at}, "")
		if r := s.do("HEAD", path, nil, ""); r.status != http.StatusNotFound {
			t.Errorf("Stream-Expires-At %s: HEAD %s, want 404 (expired)", at, r)
		}
	}
}

// TestStreamClosedNonTrueIsAbsent: only "true" closes; every other value
// is treated as if the header were absent, never as an error.
func TestStreamClosedNonTrueIsAbsent(t *testing.T) {
	s := newServer(t, nil, nil)
	for i, tc := range []struct {
		value  []string
		closes bool
	}{
		{[]string{"true"}, true},
		{[]string{"TRUE"}, true},
		{[]string{"yes"}, false},
		{[]string{"1"}, false},
		{[]string{""}, false},
		{[]string{"false"}, false},
		{[]string{"true", "true"}, false},
	} {
		path := "/v1/stream/closed-" + string(rune('a'+i))
		var h hdr
		for _, v := range tc.value {
			h = append(h, protocol.HeaderStreamClosed, v)
		}
		// On create.
		r := s.must(http.StatusCreated, "PUT", path, append(hdr{"Content-Type", "text/plain"}, h...), "")
		if got := r.header.Get(protocol.HeaderStreamClosed) == "true"; got != tc.closes {
			t.Errorf("PUT with %q: closed %v, want %v", tc.value, got, tc.closes)
		}
		if tc.closes {
			continue
		}
		// On append: data goes in, the stream stays open.
		r = s.must(http.StatusNoContent, "POST", path, append(hdr{"Content-Type", "text/plain"}, h...), "x")
		if r.header.Get(protocol.HeaderStreamClosed) != "" {
			t.Errorf("POST with %q closed the stream: %s", tc.value, r)
		}
		// Without data it is an empty append, which is a 400 for that
		// reason and not for the header.
		r = s.must(http.StatusBadRequest, "POST", path, append(hdr{"Content-Type", "text/plain"}, h...), "")
		if !strings.Contains(string(r.body), "empty append body") {
			t.Errorf("empty POST with %q: %s", tc.value, r)
		}
	}
}

// TestHeaderLengthLimits: every header the server stores or echoes has a
// documented bound, answered with 400 and a reason past it.
func TestHeaderLengthLimits(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("lim", "text/plain", "")
	long := func(n int) string { return strings.Repeat("a", n) }
	ctOf := func(n int) string { return "text/" + long(n-len("text/")) }
	for _, tc := range []struct {
		name, method, path string
		h                  hdr
		body               string
		want               int
		reason             string
	}{
		{"content type at limit", "PUT", "/v1/stream/ct-ok", hdr{"Content-Type", ctOf(protocol.MaxContentTypeLen)}, "", 201, ""},
		{"content type past limit", "PUT", "/v1/stream/ct-long", hdr{"Content-Type", ctOf(protocol.MaxContentTypeLen + 1)}, "", 400, "Content-Type must be at most 256 bytes"},
		{"content type past limit on append", "POST", "/v1/stream/lim", hdr{"Content-Type", ctOf(20000)}, "x", 400, "Content-Type must be at most 256 bytes"},
		{"stream seq at limit", "POST", "/v1/stream/lim", hdr{"Content-Type", "text/plain", "Stream-Seq", long(protocol.MaxStreamSeqLen)}, "x", 204, ""},
		{"stream seq past limit", "POST", "/v1/stream/lim", hdr{"Content-Type", "text/plain", "Stream-Seq", long(500_000)}, "x", 400, "Stream-Seq must be at most 256 bytes"},
		{"stream seq control character", "POST", "/v1/stream/lim", hdr{"Content-Type", "text/plain", "Stream-Seq", "b\tc"}, "x", 400, "Stream-Seq must not contain control characters"},
		{"stream seq twice", "POST", "/v1/stream/lim", hdr{"Content-Type", "text/plain", "Stream-Seq", "c", "Stream-Seq", "d"}, "x", 400, "Stream-Seq must be sent at most once"},
		{"producer id past limit", "POST", "/v1/stream/lim", hdr{"Content-Type", "text/plain", "Producer-Id", long(protocol.MaxProducerIDLen + 1), "Producer-Epoch", "0", "Producer-Seq", "0"}, "x", 400, "Producer-Id must be at most 256 bytes"},
		{"stream path at limit", "PUT", "/v1/stream/" + long(protocol.MaxStreamPathLen), nil, "", 201, ""},
		{"stream path past limit", "PUT", "/v1/stream/" + long(protocol.MaxStreamPathLen+1), nil, "", 400, "stream path must be at most 1024 bytes"},
		{"request id at limit", "HEAD", "/v1/stream/lim", hdr{"X-Request-Id", long(128)}, "", 200, ""},
		{"request id past limit", "GET", "/v1/stream/lim", hdr{"X-Request-Id", long(129)}, "", 400, "X-Request-Id must be at most 128 bytes"},
		{"fork source past limit", "PUT", "/v1/stream/fork", hdr{"Stream-Forked-From", "/v1/stream/" + long(protocol.MaxStreamPathLen+1)}, "", 400, "stream path must be at most 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(tc.method, tc.path, tc.h, tc.body)
			if r.status != tc.want {
				t.Fatalf("%s, want %d", r, tc.want)
			}
			if tc.reason != "" {
				wantJSONError(t, r)
				if !strings.Contains(string(r.body), tc.reason) {
					t.Errorf("body %q lacks %q", r.body, tc.reason)
				}
				if len(r.body) > 512 {
					t.Errorf("error body of %d bytes echoes the input", len(r.body))
				}
			}
		})
	}
}
