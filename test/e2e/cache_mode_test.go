package e2e

import (
	"net/http"
	"testing"

	"github.com/streamtier/durable-streams/internal/httpcall"
)

// cacheCall sends one request with headers h and returns the response's
// status and headers.
func cacheCall(t *testing.T, method, url string, h map[string]string, body string) (int, http.Header) {
	t.Helper()
	var hdr []string
	for k, v := range h {
		hdr = append(hdr, k, v)
	}
	r := httpcall.Do(t, method, url, body, hdr...)
	return r.Status, r.Header
}

// TestCacheModeFlags: --cache-mode sets the default, and DS_EDGE_SECRET
// lets a request that presents it pick the mode with X-Cache-Mode.
func TestCacheModeFlags(t *testing.T) {
	const secret = "e2e-edge-secret-value"
	srv := StartServer(t, BuildServer(t), WithArgs("--cache-mode", "private"), WithEnv("DS_EDGE_SECRET="+secret))
	url := srv.StreamURL("cache/mode")
	if st, _ := cacheCall(t, "PUT", url, map[string]string{"Content-Type": "text/plain"}, "abc"); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	read := url + "?offset=-1"
	tests := []struct {
		name string
		h    map[string]string
		want string
		code int
	}{
		{"default", nil, "private, no-store", 200},
		{"edge shared", map[string]string{"X-Cache-Mode": "shared", "X-Edge-Secret": secret}, "public, max-age=60, stale-while-revalidate=300", 200},
		{"without secret", map[string]string{"X-Cache-Mode": "shared"}, "private, no-store", 200},
		{"wrong secret", map[string]string{"X-Cache-Mode": "shared", "X-Edge-Secret": "x" + secret}, "private, no-store", 200},
		{"edge bad mode", map[string]string{"X-Cache-Mode": "everyone", "X-Edge-Secret": secret}, "no-store", 400},
	}
	for _, tc := range tests {
		st, h := cacheCall(t, "GET", read, tc.h, "")
		if st != tc.code || h.Get("Cache-Control") != tc.want {
			t.Errorf("%s: %d %q, want %d %q", tc.name, st, h.Get("Cache-Control"), tc.code, tc.want)
		}
		if st == 200 && h.Get("Vary") != "X-Cache-Mode" {
			t.Errorf("%s: Vary %q", tc.name, h.Get("Vary"))
		}
	}
}
