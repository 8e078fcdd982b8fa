package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/proctest"
	"github.com/streamtier/durable-streams/server"
)

var authSecret = []byte("test-secret-test-secret-test-secret!")

const authAdminToken = "static-admin-token-42"

// authServer runs a server with access control: the admin token, HS256
// JWTs and the public-read prefix "pub/".
func authServer(t *testing.T, mod func(*server.Config)) *testServer {
	t.Helper()
	return newServer(t, func(c *server.Config) {
		c.Auth = auth.Config{AdminToken: authAdminToken, HS256Secret: authSecret, PublicRead: []string{"pub/"}}
		if mod != nil {
			mod(c)
		}
	}, nil)
}

func jwtFor(t *testing.T, sub string, scopes auth.Scope, prefix string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Sign(auth.NewClaims(sub, scopes, prefix, time.Now(), ttl), authSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(token string) hdr { return hdr{"Authorization", "Bearer " + token} }

// pass stands for any status but 401 and 403: the request got past access
// control (the route may not be served in this configuration).
const pass = 0

func TestAuthMatrix(t *testing.T) {
	s := authServer(t, nil)
	admin := bearer(authAdminToken)
	for _, p := range []string{"t/a", "o/a", "pub/a"} {
		s.must(http.StatusCreated, "PUT", "/v1/stream/"+p, append(hdr{"Content-Type", "text/plain"}, admin...), "x")
	}

	principals := []struct {
		name string
		h    hdr
	}{
		{"anonymous", nil},
		{"garbage token", bearer("garbage")},
		{"expired", bearer(jwtFor(t, "e", auth.AllScopes, "", -time.Minute))},
		{"read", bearer(jwtFor(t, "r", auth.Read, "", time.Hour))},
		{"write", bearer(jwtFor(t, "w", auth.Write, "", time.Hour))},
		{"read write t/", bearer(jwtFor(t, "rwt", auth.Read|auth.Write, "t/", time.Hour))},
		{"admin jwt", bearer(jwtFor(t, "a", auth.Admin, "", time.Hour))},
		{"admin token", admin},
		{"admin t/", bearer(jwtFor(t, "at", auth.Admin, "t/", time.Hour))},
	}
	const (
		unauth = http.StatusUnauthorized
		forbid = http.StatusForbidden
	)
	n := 0
	unique := func(prefix string) string { n++; return prefix + strconv.Itoa(n) }
	text := hdr{"Content-Type", "text/plain"}
	for _, rt := range []struct {
		name   string
		method string
		path   func() string // fresh per principal where the request changes state
		h      hdr
		want   [9]int // per principal, in the order above
	}{
		{"read in prefix", "GET", fixed("/v1/stream/t/a?offset=-1"), nil,
			[9]int{unauth, unauth, unauth, 200, forbid, 200, 200, 200, 200}},
		{"head in prefix", "HEAD", fixed("/v1/stream/t/a"), nil,
			[9]int{unauth, unauth, unauth, 200, forbid, 200, 200, 200, 200}},
		{"append in prefix", "POST", fixed("/v1/stream/t/a"), text,
			[9]int{unauth, unauth, unauth, forbid, 204, 204, 204, 204, 204}},
		{"create in prefix", "PUT", func() string { return "/v1/stream/" + unique("t/new") }, text,
			[9]int{unauth, unauth, unauth, forbid, 201, 201, 201, 201, 201}},
		{"delete in prefix", "DELETE", func() string {
			p := unique("t/del")
			s.must(http.StatusCreated, "PUT", "/v1/stream/"+p, append(hdr{"Content-Type", "text/plain"}, admin...), "")
			return "/v1/stream/" + p
		}, nil, [9]int{unauth, unauth, unauth, forbid, 204, 204, 204, 204, 204}},
		{"read outside prefix", "GET", fixed("/v1/stream/o/a?offset=-1"), nil,
			[9]int{unauth, unauth, unauth, 200, forbid, forbid, 200, 200, forbid}},
		{"append outside prefix", "POST", fixed("/v1/stream/o/a"), text,
			[9]int{unauth, unauth, unauth, forbid, 204, forbid, 204, 204, forbid}},
		{"public read", "GET", fixed("/v1/stream/pub/a?offset=-1"), nil,
			[9]int{200, unauth, unauth, 200, 200, 200, 200, 200, 200}},
		{"public head", "HEAD", fixed("/v1/stream/pub/a"), nil,
			[9]int{200, unauth, unauth, 200, 200, 200, 200, 200, 200}},
		{"public append", "POST", fixed("/v1/stream/pub/a"), text,
			[9]int{unauth, unauth, unauth, forbid, 204, forbid, 204, 204, forbid}},
		{"fork of a stream outside the prefix", "PUT", func() string { return "/v1/stream/" + unique("t/fork") }, hdr{"Stream-Forked-From", "/v1/stream/o/a"},
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, 201, 201, forbid}},
		{"fork of a public stream", "PUT", func() string { return "/v1/stream/" + unique("t/fork") }, hdr{"Stream-Forked-From", "pub/a"},
			[9]int{unauth, unauth, unauth, forbid, 201, 201, 201, 201, 201}},
		{"fork inside the prefix", "PUT", func() string { return "/v1/stream/" + unique("t/fork") }, hdr{"Stream-Forked-From", "t/a"},
			[9]int{unauth, unauth, unauth, forbid, forbid, 201, 201, 201, 201}},
		{"admin API", "GET", fixed("/v1/admin/stats"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, 200, 200, forbid}},
		{"admin gc", "POST", fixed("/v1/admin/gc"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, 200, 200, forbid}},
		{"metrics", "GET", fixed("/metrics"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, pass, pass, forbid}},
		{"stream listing", "GET", fixed("/v1/streams"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, pass, pass, forbid}},
		{"fault injection", "POST", fixed("/_test/inject-error"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, pass, pass, forbid}},
		{"unknown route", "GET", fixed("/nope"), nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, 404, 404, forbid}},
		{"health", "GET", fixed("/healthz"), nil,
			[9]int{200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"readiness", "GET", fixed("/readyz"), nil,
			[9]int{pass, pass, pass, pass, pass, pass, pass, pass, pass}},
		{"CORS preflight", "OPTIONS", fixed("/v1/stream/t/a"), hdr{"Origin", "https://example.com", "Access-Control-Request-Method", "POST"},
			[9]int{204, 204, 204, 204, 204, 204, 204, 204, 204}},
	} {
		for i, p := range principals {
			path := rt.path()
			r := s.do(rt.method, path, append(append(hdr{}, rt.h...), p.h...), "y")
			want := rt.want[i]
			if want == pass && (r.status == unauth || r.status == forbid) || want != pass && r.status != want {
				t.Errorf("%s (%s %s) as %s: %s, want %d", rt.name, rt.method, path, p.name, r, want)
				continue
			}
			checkAuthError(t, rt.method, r, p.h != nil)
		}
	}
}

func fixed(p string) func() string { return func() string { return p } }

// checkAuthError checks the challenge and body of 401 and 403 answers.
func checkAuthError(t *testing.T, method string, r *response, tokenGiven bool) {
	t.Helper()
	challenge := r.header.Get("WWW-Authenticate")
	switch r.status {
	case http.StatusUnauthorized:
		want := `Bearer realm="durable-streams"`
		if tokenGiven {
			want += `, error="invalid_token"`
		}
		if challenge != want {
			t.Errorf("401 challenge %q, want %q", challenge, want)
		}
	case http.StatusForbidden:
		if !strings.Contains(challenge, `error="insufficient_scope"`) {
			t.Errorf("403 challenge %q", challenge)
		}
	default:
		return
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%d with Cache-Control %q", r.status, cc)
	}
	if method != http.MethodHead {
		wantJSONError(t, r)
	}
}

func TestAuthInvalidTokenReasons(t *testing.T) {
	s := authServer(t, func(c *server.Config) { c.Auth.Issuer = "issuer" })
	c := auth.NewClaims("x", auth.Read, "", time.Now(), time.Hour)
	c.Issuer = "mallory"
	wrongIss, err := auth.Sign(c, authSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", jwtFor(t, "x", auth.Read, "", -time.Minute), "expired"},
		{"wrong issuer", wrongIss, "wrong issuer"},
		{"not a JWT", "abc.def", "malformed"},
		{"wrong admin token", authAdminToken + "x", "invalid token"},
	} {
		r := s.must(http.StatusUnauthorized, "GET", "/v1/stream/t/a?offset=-1", bearer(tc.token), "")
		wantJSONError(t, r)
		if !strings.Contains(string(r.body), tc.reason) || !strings.Contains(string(r.body), "INVALID_TOKEN") {
			t.Errorf("%s: body %s, want the reason %q", tc.name, r.body, tc.reason)
		}
		if strings.Contains(string(r.body), tc.token) {
			t.Errorf("%s: the answer echoes the token", tc.name)
		}
	}
}

func TestAuthForbiddenMessages(t *testing.T) {
	s := authServer(t, nil)
	r := s.must(http.StatusForbidden, "POST", "/v1/stream/o/a", append(hdr{"Content-Type", "text/plain"}, bearer(jwtFor(t, "x", auth.Write, "t/", time.Hour))...), "z")
	if !strings.Contains(string(r.body), `limited to streams under \"t/\"`) {
		t.Errorf("prefix refusal: %s", r.body)
	}
	r = s.must(http.StatusForbidden, "POST", "/v1/stream/t/a", append(hdr{"Content-Type", "text/plain"}, bearer(jwtFor(t, "x", auth.Read, "", time.Hour))...), "z")
	if !strings.Contains(string(r.body), "write scope") || !strings.Contains(r.header.Get("WWW-Authenticate"), `scope="write"`) {
		t.Errorf("scope refusal: %s", r)
	}
}

// TestAuthPrincipalInContext checks what handlers, hooks and the cache
// policy rely on: the principal is in the request's context.
func TestAuthPrincipalInContext(t *testing.T) {
	var (
		mu  sync.Mutex
		got []auth.Principal
	)
	s := authServer(t, func(c *server.Config) {
		c.Auth.PublicRead = []string{"pub/"}
		c.Hooks.BeforeAppend = func(ctx context.Context, _ *hooks.AppendInfo) error {
			p, ok := auth.FromContext(ctx)
			if !ok {
				t.Error("no principal in the append's context")
			}
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
			return nil
		}
	})
	s.must(http.StatusCreated, "PUT", "/v1/stream/t/a", append(hdr{"Content-Type", "text/plain"}, bearer(jwtFor(t, "u", auth.Write, "t/", time.Hour))...), "")
	s.must(http.StatusNoContent, "POST", "/v1/stream/t/a", append(hdr{"Content-Type", "text/plain"}, bearer(jwtFor(t, "u", auth.Write, "t/", time.Hour))...), "x")
	s.must(http.StatusNoContent, "POST", "/v1/stream/t/a", append(hdr{"Content-Type", "text/plain"}, bearer(authAdminToken)...), "y")
	mu.Lock()
	defer mu.Unlock()
	want := []auth.Principal{{Subject: "u", Scopes: auth.Write, Prefix: "t/"}, {Subject: "admin", Scopes: auth.AllScopes}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("principals %+v, want %+v", got, want)
	}
}

func TestAuthDisabledAllowsEverything(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("open/a", "text/plain", "")
	s.appendTo("open/a", "text/plain", "x")
	s.must(http.StatusOK, "GET", "/v1/stream/open/a?offset=-1", nil, "")
	s.must(http.StatusOK, "GET", "/v1/admin/stats", nil, "")
	// A token is ignored, not rejected, when nothing is configured.
	s.must(http.StatusOK, "GET", "/v1/stream/open/a?offset=-1", bearer("whatever"), "")
}

func TestAuthAdminTokenAlone(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.AdminToken = authAdminToken }, nil)
	s.must(http.StatusUnauthorized, "PUT", "/v1/stream/a", hdr{"Content-Type", "text/plain"}, "")
	s.must(http.StatusCreated, "PUT", "/v1/stream/a", append(hdr{"Content-Type", "text/plain"}, bearer(authAdminToken)...), "")
	// Without a JWT key, any other token is invalid.
	s.must(http.StatusUnauthorized, "GET", "/v1/stream/a?offset=-1", bearer(jwtFor(t, "x", auth.Read, "", time.Hour)), "")
}

func TestRateLimit(t *testing.T) {
	s := authServer(t, func(c *server.Config) {
		c.RateLimit = ratelimit.Config{Rate: 0.001, Burst: 3}
		c.Auth.PublicRead = []string{"pub/"}
	})
	admin := bearer(authAdminToken)
	// The admin token is one client ("admin"): three requests, then 429.
	for range 3 {
		s.must(http.StatusOK, "GET", "/v1/admin/stats", admin, "")
	}
	r := s.must(http.StatusTooManyRequests, "GET", "/v1/admin/stats", admin, "")
	wantJSONError(t, r)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if !strings.Contains(string(r.body), "RATE_LIMITED") {
		t.Fatalf("body %s", r.body)
	}
	// Other subjects have their own buckets, even from the same address.
	alice, bob := bearer(jwtFor(t, "alice", auth.Read, "", time.Hour)), bearer(jwtFor(t, "bob", auth.Read, "", time.Hour))
	for range 3 {
		s.must(http.StatusNotFound, "GET", "/v1/stream/pub/none?offset=-1", alice, "")
	}
	s.must(http.StatusTooManyRequests, "GET", "/v1/stream/pub/none?offset=-1", alice, "")
	s.must(http.StatusNotFound, "GET", "/v1/stream/pub/none?offset=-1", bob, "")
	// Anonymous requests share the bucket of their address; failed
	// authentications count against it too.
	s.must(http.StatusNotFound, "GET", "/v1/stream/pub/none?offset=-1", nil, "")
	s.must(http.StatusUnauthorized, "GET", "/v1/stream/pub/none?offset=-1", bearer("bad"), "")
	s.must(http.StatusUnauthorized, "GET", "/v1/admin/stats", nil, "")
	s.must(http.StatusTooManyRequests, "GET", "/v1/stream/pub/none?offset=-1", nil, "")
	// Health checks are never limited.
	s.must(http.StatusOK, "GET", "/healthz", nil, "")
}

func TestRateLimitWithoutAuth(t *testing.T) {
	s := newServer(t, func(c *server.Config) {
		c.RateLimit = ratelimit.Config{Rate: 0.001, Burst: 2, TrustProxyHeaders: true}
	}, nil)
	for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		xff := hdr{"X-Forwarded-For", "198.51.100.7, " + ip}
		s.must(http.StatusNotFound, "GET", "/v1/stream/x?offset=-1", xff, "")
		s.must(http.StatusNotFound, "GET", "/v1/stream/x?offset=-1", xff, "")
		s.must(http.StatusTooManyRequests, "GET", "/v1/stream/x?offset=-1", xff, "")
	}
}

// TestAuthTokensNotLogged runs requests with valid and invalid credentials,
// including failing ones, with debug logging, and looks for the tokens in
// the log.
func TestAuthTokensNotLogged(t *testing.T) {
	var buf proctest.Output
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := authServer(t, func(c *server.Config) {
		c.Logger = lg
		c.RateLimit = ratelimit.Config{Rate: 1000, Burst: 1000}
	})
	good := jwtFor(t, "logged-subject", auth.Read|auth.Write, "", time.Hour)
	expired := jwtFor(t, "x", auth.Read, "", -time.Hour)
	tokens := []string{authAdminToken, good, expired, "garbage-token-value", authAdminToken + "-wrong"}
	for _, tok := range tokens {
		h := bearer(tok)
		s.do("PUT", "/v1/stream/log/a", append(hdr{"Content-Type", "text/plain"}, h...), "x")
		s.do("POST", "/v1/stream/log/a", append(hdr{"Content-Type", "text/plain"}, h...), "y")
		s.do("GET", "/v1/stream/log/a?offset=-1", h, "")
		s.do("GET", "/v1/stream/log/a?offset=-1&live=long-poll", h, "")
		s.do("GET", "/v1/stream/log/a?offset=bogus", h, "")
		s.do("GET", "/v1/admin/stats", h, "")
		s.do("DELETE", "/v1/stream/log/missing", h, "")
	}
	s.srv.BeginShutdown()
	logs := buf.String()
	if !strings.Contains(logs, "/v1/stream/log/a") {
		t.Logf("the server logged no requests; the check is weaker:\n%s", logs)
	}
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 8 && strings.Contains(logs, part) {
				t.Errorf("the log contains (part of) a token %q:\n%s", part, logs)
			}
		}
	}
	for _, h := range []string{"Authorization", "Bearer"} {
		if strings.Contains(logs, h) {
			t.Errorf("the log mentions %q:\n%s", h, logs)
		}
	}
}
