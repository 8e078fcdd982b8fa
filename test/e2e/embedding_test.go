package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
			send(t, "PUT", url, "", "Content-Type", "text/plain").want(t, http.StatusCreated)
			r := send(t, "POST", s.URL+"/_test/inject-error",
				`{"path":"/v1/stream/faults/x","status":503,"count":2,"retryAfter":1,"method":"POST"}`, "Content-Type", "application/json")
			r.want(t, tt.wantCtl)
			want := []int{204, 204, 204}
			if tt.faulting {
				want = []int{503, 503, 204}
			}
			for i, w := range want {
				r := send(t, "POST", url, "data", "Content-Type", "text/plain").want(t, w)
				if w == 503 && r.header.Get("Retry-After") != "1" {
					t.Errorf("append %d: Retry-After %q", i, r.header.Get("Retry-After"))
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
		r := send(t, "GET", url+"?offset=-1", "").want(t, http.StatusOK)
		if strings.Contains(r.body, needle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry stream %q lacks %s", r.body, needle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type sent struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, method, url, body string, header ...string) sent {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return sent{resp.StatusCode, resp.Header, string(b)}
}

func (s sent) want(t *testing.T, status int) sent {
	t.Helper()
	if s.status != status {
		t.Fatalf("status %d (%s), want %d", s.status, s.body, status)
	}
	return s
}
