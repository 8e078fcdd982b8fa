package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
)

// TestTestFaultsFlag checks that the binary serves the fault control
// endpoint only with --enable-test-faults (or DS_ENABLE_TEST_FAULTS), and
// that the registry stream flag records creates.
func TestTestFaultsFlag(t *testing.T) {
	t.Parallel()
	bin := BuildServer(t)
	tests := []struct {
		name     string
		opts     []Option
		wantCtl  int
		faulting bool
	}{
		{"off by default", nil, http.StatusNotFound, false},
		{"flag", []Option{WithArgs("--enable-test-faults", "--registry-stream", "__registry__")}, http.StatusOK, true},
		{"env", []Option{WithEnv("DS_ENABLE_TEST_FAULTS=true")}, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartServer(t, bin, tt.opts...)
			url := s.StreamURL("faults/x")
			httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
			r := httpcall.Do(t, "POST", s.URL+"/_test/inject-error",
				`{"path":"/v1/stream/faults/x","status":503,"count":2,"retryAfter":1,"method":"POST"}`, "Content-Type", "application/json")
			r.Want(t, tt.wantCtl)
			want := []int{204, 204, 204}
			if tt.faulting {
				want = []int{503, 503, 204}
			}
			for i, w := range want {
				r := httpcall.Do(t, "POST", url, "data", "Content-Type", "text/plain").Want(t, w)
				if w == 503 && r.Header.Get("Retry-After") != "1" {
					t.Errorf("append %d: Retry-After %q", i, r.Header.Get("Retry-After"))
				}
			}
			if tt.name == "flag" {
				waitRegistry(t, s.StreamURL("__registry__"), `"path":"faults/x"`)
			}
		})
	}
}

// waitRegistry polls the registry stream until it holds needle.
func waitRegistry(t *testing.T, url, needle string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := httpcall.Do(t, "GET", url+"?offset=-1", "").Want(t, http.StatusOK)
		if strings.Contains(r.Body, needle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry stream %q lacks %s", r.Body, needle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
