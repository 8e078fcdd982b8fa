package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/api"
)

func TestAdminDrain(t *testing.T) {
	s := adminServer(t, adminToken)
	auth := hdr{"Authorization", "Bearer " + adminToken}
	text := append(hdr{"Content-Type", "text/plain"}, auth...)
	for _, p := range []string{"/v1/stream/drain/a", "/v1/stream/drain/b"} {
		s.must(http.StatusCreated, "PUT", p, text, "")
		s.must(http.StatusNoContent, "POST", p, text, "hello")
	}
	for _, q := range []string{"concurrency=0", "concurrency=x", "timeout=-1s", "timeout=soon"} {
		wantJSONError(t, s.must(http.StatusBadRequest, "POST", "/v1/admin/node/drain?"+q, auth, ""))
	}
	s.must(http.StatusUnauthorized, "POST", "/v1/admin/node/drain", nil, "")

	r := s.must(http.StatusOK, "POST", "/v1/admin/node/drain?concurrency=1&timeout=1m", auth, "")
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	var lines []api.DrainReport
	for _, l := range bytes.Split(bytes.TrimSpace(r.body), []byte("\n")) {
		var d api.DrainReport
		if err := json.Unmarshal(l, &d); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, d)
	}
	if len(lines) != 3 || lines[0].HandedOff != 1 || lines[0].Done {
		t.Fatalf("drain lines: %s", r.body)
	}
	if last := lines[2]; !last.Done || last.Total != 2 || last.HandedOff != 2 || last.Failed != 0 || last.Error != "" {
		t.Fatalf("last drain line: %+v", last)
	}
	// The node now takes no stream: the drained ones and new ones get 503.
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/stream/drain/a?offset=-1"}, {"PUT", "/v1/stream/drain/c"}} {
		r := s.must(http.StatusServiceUnavailable, tc.method, tc.path, text, "")
		if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "draining") {
			t.Errorf("%s %s after the drain: %s", tc.method, tc.path, r)
		}
	}
}
