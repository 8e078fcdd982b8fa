package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/internal/httpcall"
)

const e2eAdminToken = "e2e-admin-token-value"

// authCall sends one request and returns its status, header and body.
func authCall(t *testing.T, method, url, token string, h map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	var hdr []string
	if token != "" {
		hdr = append(hdr, "Authorization", "Bearer "+token)
	}
	for k, v := range h {
		hdr = append(hdr, k, v)
	}
	r := httpcall.Do(t, method, url, body, hdr...)
	return r.Status, r.Header, r.Body
}

// TestAuthServe runs the binary with an admin token, an HS256 secret file
// and a public-read prefix, and uses tokens minted by `durable-streams
// token`.
func TestAuthServe(t *testing.T) {
	bin := BuildServer(t)
	secretFile := filepath.Join(t.TempDir(), "hs256.secret")
	if err := os.WriteFile(secretFile, []byte("e2e-secret-e2e-secret-e2e-secret-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := StartServer(t, bin, WithLogLevel("info"),
		WithEnv("DS_ADMIN_TOKEN="+e2eAdminToken, "DS_AUTH_HS256_SECRET_FILE="+secretFile),
		WithArgs("--auth-public-read", "pub/"))
	mint := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"token", "--hs256-secret-file", secretFile}, args...)...)
		cmd.Env = serverEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("token %q: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	rw := mint("--scope", "read write", "--prefix", "t/", "--subject", "writer")
	reader := mint("--scope", "read", "--subject", "reader")
	text := map[string]string{"Content-Type": "text/plain"}

	for _, step := range []struct {
		name, method, path, token string
		h                         map[string]string
		body                      string
		want                      int
	}{
		{"anonymous create", "PUT", "t/a", "", text, "", 401},
		{"create in prefix", "PUT", "t/a", rw, text, "", 201},
		{"append in prefix", "POST", "t/a", rw, text, "hello", 204},
		{"read in prefix", "GET", "t/a?offset=-1", rw, nil, "", 200},
		{"reader reads", "GET", "t/a?offset=-1", reader, nil, "", 200},
		{"reader appends", "POST", "t/a", reader, text, "x", 403},
		{"create outside prefix", "PUT", "o/a", rw, text, "", 403},
		{"admin creates public", "PUT", "pub/a", e2eAdminToken, text, "news", 201},
		{"anonymous public read", "GET", "pub/a?offset=-1", "", nil, "", 200},
		{"anonymous public append", "POST", "pub/a", "", text, "x", 401},
		{"fork of public into prefix", "PUT", "t/fork", rw, map[string]string{"Content-Type": "text/plain", "Stream-Forked-From": "pub/a"}, "", 201},
		{"bad token on public", "GET", "pub/a?offset=-1", "nope", nil, "", 401},
	} {
		status, h, body := authCall(t, step.method, srv.StreamURL(step.path), step.token, step.h, step.body)
		if status != step.want {
			t.Errorf("%s: %d %s, want %d", step.name, status, body, step.want)
		}
		if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="durable-streams"`) {
			t.Errorf("%s: WWW-Authenticate %q", step.name, h.Get("WWW-Authenticate"))
		}
	}
	if status, _, body := authCall(t, "GET", srv.URL+"/v1/admin/stats", reader, nil, ""); status != 403 {
		t.Errorf("admin API with a read token: %d %s", status, body)
	}
	if status, _, body := authCall(t, "GET", srv.URL+"/v1/admin/stats", e2eAdminToken, nil, ""); status != 200 {
		t.Errorf("admin API with the admin token: %d %s", status, body)
	}
	srv.Stop()
	logs := srv.Log()
	if !strings.Contains(logs, "access control on") {
		t.Errorf("the log does not say access control is on:\n%s", logs)
	}
	for _, tok := range []string{e2eAdminToken, rw, reader} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token shows in the server log")
		}
	}
}

func TestRateLimitServe(t *testing.T) {
	srv := StartServer(t, BuildServer(t), WithArgs("--rate-limit", "0.01", "--rate-burst", "2"))
	for i := range 3 {
		status, h, body := authCall(t, "GET", srv.StreamURL("none?offset=-1"), "", nil, "")
		if i < 2 {
			if status != 404 {
				t.Fatalf("request %d: %d %s", i, status, body)
			}
			continue
		}
		secs, err := strconv.Atoi(h.Get("Retry-After"))
		if status != 429 || err != nil || secs < 1 || !strings.Contains(body, "RATE_LIMITED") {
			t.Fatalf("over the burst: %d Retry-After %q %s", status, h.Get("Retry-After"), body)
		}
	}
}
