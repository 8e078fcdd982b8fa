package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

const adminToken = "s3cret-admin-token"

func adminServer(t *testing.T, token string) *testServer {
	return newServer(t, func(c *server.Config) {
		c.AdminToken = token
		c.Rotation = sequencer.RotationPolicy{SealMessages: 1}
	}, nil)
}

func decode[T any](t *testing.T, r *response) T {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q: %s", ct, r)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func TestAdminAuth(t *testing.T) {
	s := adminServer(t, adminToken)
	bearer := hdr{"Authorization", "Bearer " + adminToken}
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		h          hdr
		want       int
		challenged bool
	}{
		{"no header", "GET", "/v1/admin/segments", nil, http.StatusUnauthorized, true},
		{"other scheme", "GET", "/v1/admin/segments", hdr{"Authorization", "Basic " + adminToken}, http.StatusUnauthorized, true},
		{"empty bearer", "GET", "/v1/admin/segments", hdr{"Authorization", "Bearer "}, http.StatusUnauthorized, true},
		{"wrong token", "GET", "/v1/admin/segments", hdr{"Authorization", "Bearer nope"}, http.StatusUnauthorized, true},
		{"token prefix", "GET", "/v1/admin/segments", hdr{"Authorization", "Bearer " + adminToken[:5]}, http.StatusUnauthorized, true},
		{"unknown route without token", "GET", "/v1/admin/nope", nil, http.StatusUnauthorized, true},
		{"gc without token", "POST", "/v1/admin/gc?dry_run=false", nil, http.StatusUnauthorized, true},
		{"right token", "GET", "/v1/admin/segments", bearer, http.StatusOK, false},
		{"scheme is case-insensitive", "GET", "/v1/admin/stats", hdr{"Authorization", "bearer " + adminToken}, http.StatusOK, false},
	} {
		r := s.do(tc.method, tc.path, tc.h, "")
		if r.status != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, r, tc.want)
			continue
		}
		if got := r.header.Get("WWW-Authenticate"); tc.challenged != strings.HasPrefix(got, "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
		}
		if r.status >= 400 {
			wantJSONError(t, r)
		}
		if strings.Contains(string(r.body), adminToken) {
			t.Errorf("%s: the answer contains the token: %s", tc.name, r.body)
		}
	}
}

func TestAdminOpenWithoutToken(t *testing.T) {
	s := adminServer(t, "")
	s.must(http.StatusOK, "GET", "/v1/admin/segments", nil, "")
}

func TestAdminNotServedWithoutService(t *testing.T) {
	s := adminServer(t, "")
	ts := httptest.NewServer(api.New(api.Options{Registry: s.srv.Registry()}))
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL + "/v1/admin/segments")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("admin route without a service: %d", resp.StatusCode)
	}
}

func TestAdminRoutes(t *testing.T) {
	s := adminServer(t, adminToken)
	auth := hdr{"Authorization", "Bearer " + adminToken}
	s.must(http.StatusCreated, "PUT", "/v1/stream/adm/x", append(hdr{"Content-Type", "text/plain"}, auth...), "")
	s.must(http.StatusNoContent, "POST", "/v1/stream/adm/x", append(hdr{"Content-Type", "text/plain"}, auth...), "hello")

	// segments
	r := s.must(http.StatusOK, "GET", "/v1/admin/segments?stream=adm/x&limit=10", auth, "")
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	page := decode[struct {
		Segments []map[string]any `json:"segments"`
		Next     *string          `json:"next"`
	}](t, r)
	if page.Segments == nil || page.Next != nil {
		t.Fatalf("segments page: %s", r.body)
	}
	for _, g := range page.Segments {
		for _, k := range []string{"stream_id", "stream", "stream_state", "seg", "first_pos", "end_pos", "bytes", "messages", "object_key", "checksum", "created_at", "state"} {
			if _, ok := g[k]; !ok {
				t.Errorf("segment without %q: %v", k, g)
			}
		}
	}
	for _, q := range []string{"limit=abc", "limit=0", "state=bogus", "after=%21%21"} {
		wantJSONError(t, s.must(http.StatusBadRequest, "GET", "/v1/admin/segments?"+q, auth, ""))
	}

	// stats
	st := decode[map[string]any](t, s.must(http.StatusOK, "GET", "/v1/admin/stats?stream=adm/x", auth, ""))
	if st["path"] != "adm/x" || st["tail"] != float64(5) || st["hot"] == nil || st["cold"] == nil {
		t.Fatalf("stream stats: %v", st)
	}
	tot := decode[map[string]any](t, s.must(http.StatusOK, "GET", "/v1/admin/stats", auth, ""))
	if tot["streams"] != float64(1) || tot["cold"] == nil {
		t.Fatalf("totals: %v", tot)
	}
	wantJSONError(t, s.must(http.StatusNotFound, "GET", "/v1/admin/stats?stream=adm/missing", auth, ""))

	// verify
	rep := decode[map[string]any](t, s.must(http.StatusOK, "POST", "/v1/admin/verify", auth, ""))
	if rep["clean"] != true {
		t.Fatalf("verify: %v", rep)
	}

	// gc
	g := decode[map[string]any](t, s.must(http.StatusOK, "POST", "/v1/admin/gc", auth, ""))
	if g["dry_run"] != true {
		t.Fatalf("gc defaults to a dry run: %v", g)
	}
	g = decode[map[string]any](t, s.must(http.StatusOK, "POST", "/v1/admin/gc?dry_run=false", auth, ""))
	if g["dry_run"] != false || g["object_count"] != float64(0) {
		t.Fatalf("gc: %v", g)
	}
	wantJSONError(t, s.must(http.StatusBadRequest, "POST", "/v1/admin/gc?dry_run=maybe", auth, ""))

	// cluster: a single node answers for itself
	cl := decode[map[string]any](t, s.must(http.StatusOK, "GET", "/v1/admin/cluster", auth, ""))
	nodes, _ := cl["nodes"].([]any)
	if cl["mode"] != "single" || len(nodes) != 1 || nodes[0].(map[string]any)["streams"] != float64(1) ||
		nodes[0].(map[string]any)["live"] != true {
		t.Fatalf("cluster status: %v", cl)
	}
	leases := decode[map[string]any](t, s.must(http.StatusOK, "GET", "/v1/admin/cluster?node=n1&limit=5", auth, ""))
	if leases["node"] != "n1" || leases["leases"] == nil {
		t.Fatalf("cluster leases: %v", leases)
	}
	for _, q := range []string{"node=", "node=n1&limit=0", "node=n1&after=%21%21"} {
		wantJSONError(t, s.must(http.StatusBadRequest, "GET", "/v1/admin/cluster?"+q, auth, ""))
	}
	s.must(http.StatusMethodNotAllowed, "POST", "/v1/admin/cluster", auth, "")

	// methods and unknown routes
	r = s.must(http.StatusMethodNotAllowed, "GET", "/v1/admin/verify", auth, "")
	if r.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	wantJSONError(t, r)
	s.must(http.StatusMethodNotAllowed, "POST", "/v1/admin/segments", auth, "")
	wantJSONError(t, s.must(http.StatusNotFound, "GET", "/v1/admin/nope", auth, ""))
}
