package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/server"
	"github.com/streamtier/durable-streams/subscriptions"
)

// subsServer runs a server with webhooks on (loopback targets allowed),
// optionally under a mount prefix.
func subsServer(t *testing.T, prefix string, mod func(*server.Config)) *testServer {
	t.Helper()
	var wrap func(http.Handler) http.Handler
	if prefix != "" {
		wrap = func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
			return mux
		}
	}
	return newServer(t, func(c *server.Config) {
		c.Subscriptions = server.SubscriptionConfig{Webhooks: true, WebhookAllowPrivate: true}
		if mod != nil {
			mod(c)
		}
	}, wrap)
}

// hookReceiver records webhook deliveries and answers {}.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []subscriptions.Notification
	raw  [][]byte
	sigs []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var n subscriptions.Notification
		_ = json.Unmarshal(b, &n)
		r.mu.Lock()
		r.got, r.raw, r.sigs = append(r.got, n), append(r.raw, b), append(r.sigs, req.Header.Get(subscriptions.SignatureHeader))
		r.mu.Unlock()
		io.WriteString(w, "{}")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) first(t *testing.T) (subscriptions.Notification, []byte, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if len(r.got) > 0 {
			defer r.mu.Unlock()
			return r.got[0], r.raw[0], r.sigs[0]
		}
		r.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no webhook delivery")
	return subscriptions.Notification{}, nil, ""
}

// wantSubError checks a control error: the status and the protocol's
// {"error": {"code": ...}} body.
func wantSubError(t *testing.T, what string, r *response, status int, code string) {
	t.Helper()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if r.status != status || json.Unmarshal(r.body, &body) != nil || body.Error.Code != code {
		t.Errorf("%s: %s, want %d with code %s", what, r, status, code)
	}
}

func TestSubscriptionRoutes(t *testing.T) {
	s := subsServer(t, "", nil)
	hook := newHookReceiver(t)
	const sub = "/v1/stream/__ds/subscriptions/"
	create := `{"type":"webhook","pattern":"events/*","webhook":{"url":"` + hook.URL + `"},"lease_ttl_ms":5000}`
	jsonCT := hdr{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name         string
		method, path string
		h            hdr
		body         string
		status       int
		code         string // protocol error code, for error statuses
	}{
		{"create", "PUT", sub + "s1", jsonCT, create, 201, ""},
		{"re-confirm", "PUT", sub + "s1", jsonCT, create, 200, ""},
		{"other config", "PUT", sub + "s1", jsonCT, strings.Replace(create, "5000", "6000", 1), 409, subscriptions.CodeAlreadyExists},
		{"invalid JSON", "PUT", sub + "s2", jsonCT, `{"type":`, 400, subscriptions.CodeInvalidRequest},
		{"lease not an integer", "PUT", sub + "s2", jsonCT, `{"type":"pull-wake","pattern":"a/*","wake_stream":"w","lease_ttl_ms":1.5}`, 400, subscriptions.CodeInvalidRequest},
		{"private target", "PUT", sub + "s2", jsonCT, `{"type":"webhook","pattern":"a/*","webhook":{"url":"http://10.0.0.1/hook"}}`, 400, subscriptions.CodeWebhookRejected},
		{"metadata target", "PUT", sub + "s2", jsonCT, `{"type":"webhook","pattern":"a/*","webhook":{"url":"https://169.254.169.254/"}}`, 400, subscriptions.CodeWebhookRejected},
		{"get", "GET", sub + "s1", nil, "", 200, ""},
		{"get missing", "GET", sub + "nope", nil, "", 404, subscriptions.CodeNotFound},
		{"bad method", "PATCH", sub + "s1", nil, "", 405, ""},
		{"add streams", "POST", sub + "s1/streams", jsonCT, `{"streams":["x/y","z"]}`, 204, ""},
		{"add no streams", "POST", sub + "s1/streams", jsonCT, `{"streams":[]}`, 400, subscriptions.CodeInvalidRequest},
		{"add to missing", "POST", sub + "nope/streams", jsonCT, `{"streams":["a"]}`, 404, subscriptions.CodeNotFound},
		{"remove encoded path", "DELETE", sub + "s1/streams/x%2Fy", nil, "", 204, ""},
		{"remove absent", "DELETE", sub + "s1/streams/never", nil, "", 204, ""},
		{"claim a webhook subscription", "POST", sub + "s1/claim", jsonCT, `{"worker":"w"}`, 400, subscriptions.CodeInvalidRequest},
		{"claim without worker", "POST", sub + "s1/claim", jsonCT, `{}`, 400, subscriptions.CodeInvalidRequest},
		{"callback without token", "POST", sub + "s1/callback", jsonCT, `{}`, 401, subscriptions.CodeTokenInvalid},
		{"callback with a bad token", "POST", sub + "s1/callback", append(hdr{"Authorization", "Bearer x.y"}, jsonCT...), `{}`, 401, subscriptions.CodeTokenInvalid},
		{"unknown action", "POST", sub + "s1/frobnicate", jsonCT, `{}`, 404, subscriptions.CodeNotFound},
		{"unknown control route", "GET", "/v1/stream/__ds/other", nil, "", 404, subscriptions.CodeNotFound},
		{"no stream named __ds", "PUT", "/v1/stream/__ds", hdr{"Content-Type", "text/plain"}, "x", 404, subscriptions.CodeNotFound},
		{"jwks", "GET", "/v1/stream/__ds/jwks.json", nil, "", 200, ""},
		{"jwks is read-only", "POST", "/v1/stream/__ds/jwks.json", nil, "", 405, ""},
		{"delete", "DELETE", sub + "s1", nil, "", 204, ""},
		{"delete again", "DELETE", sub + "s1", nil, "", 204, ""},
		{"gone", "GET", sub + "s1", nil, "", 404, subscriptions.CodeNotFound},
	} {
		r := s.do(tc.method, tc.path, tc.h, tc.body)
		if tc.code != "" {
			wantSubError(t, tc.name, r, tc.status, tc.code)
		} else if r.status != tc.status {
			t.Errorf("%s: %s, want %d", tc.name, r, tc.status)
		}
	}
	r := s.must(200, "GET", "/v1/stream/__ds/jwks.json", nil, "")
	if ct := r.header.Get("Content-Type"); ct != "application/jwk-set+json" || r.header.Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("jwks headers: %v", r.header)
	}
}

// TestSubscriptionWebhookOverHTTP runs a webhook subscription under a
// mount prefix: the delivery verifies against the JWKS the server serves,
// and its callback_url (prefix included) acks the wake.
func TestSubscriptionWebhookOverHTTP(t *testing.T) {
	s := subsServer(t, "/ds", nil)
	hook := newHookReceiver(t)
	r := s.must(201, "PUT", "/ds/v1/stream/__ds/subscriptions/s1", hdr{"Content-Type", "application/json"},
		`{"type":"webhook","pattern":"events/*","webhook":{"url":"`+hook.URL+`/hook"}}`)
	var v subscriptions.View
	if err := json.Unmarshal(r.body, &v); err != nil || v.Webhook == nil {
		t.Fatalf("create: %s", r)
	}
	if want := s.ts.URL + "/ds/v1/stream/__ds/jwks.json"; v.Webhook.Signing.JWKSURL != want {
		t.Fatalf("jwks_url = %s, want %s", v.Webhook.Signing.JWKSURL, want)
	}
	var jwks subscriptions.JWKS
	if err := json.Unmarshal(s.must(200, "GET", "/ds/v1/stream/__ds/jwks.json", nil, "").body, &jwks); err != nil {
		t.Fatal(err)
	}
	created := s.must(201, "PUT", "/ds/v1/stream/events/a", hdr{"Content-Type", "application/json"}, `{"n":1}`)
	tail := created.header.Get("Stream-Next-Offset")

	n, raw, sig := hook.first(t)
	if err := subscriptions.VerifySignature(sig, raw, jwks, time.Now(), 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if want := s.ts.URL + "/ds/v1/stream/__ds/subscriptions/s1/callback"; n.CallbackURL != want {
		t.Fatalf("callback_url = %s, want %s", n.CallbackURL, want)
	}
	if len(n.Streams) != 1 || n.Streams[0].TailOffset != tail || !n.Streams[0].HasPending {
		t.Fatalf("notification streams = %+v, want tail %s", n.Streams, tail)
	}
	body, _ := json.Marshal(subscriptions.AckRequest{WakeID: n.WakeID, Generation: &n.Generation, Done: true,
		Acks: []subscriptions.Ack{{Stream: "events/a", Offset: tail}}})
	path := strings.TrimPrefix(n.CallbackURL, s.ts.URL)
	auth := hdr{"Authorization", "Bearer " + n.CallbackToken, "Content-Type", "application/json"}
	if r := s.must(200, "POST", path, auth, string(body)); strings.TrimSpace(string(r.body)) != `{"ok":true,"next_wake":false}` {
		t.Fatalf("callback: %s", r)
	}
	wantSubError(t, "stale callback", s.do("POST", path, auth, string(body)), 409, subscriptions.CodeFenced)
}

// TestSubscriptionAuth checks the access rules of the control routes:
// admin for management, nothing for the keys, and a wake's own token for
// ack (the server's access control does not read it).
func TestSubscriptionAuth(t *testing.T) {
	s := authServer(t, func(c *server.Config) { c.Subscriptions = server.SubscriptionConfig{} })
	admin := bearer(authAdminToken)
	jsonAdmin := append(hdr{"Content-Type", "application/json"}, admin...)
	s.must(201, "PUT", "/v1/stream/wake", append(hdr{"Content-Type", "application/json"}, admin...), "[]")
	const sub = "/v1/stream/__ds/subscriptions/p"
	create := `{"type":"pull-wake","streams":["t/a"],"wake_stream":"wake"}`
	if r := s.do("PUT", sub, hdr{"Content-Type", "application/json"}, create); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous create: %s", r)
	}
	writer := bearer(jwtFor(t, "w", auth.Write, "", time.Hour))
	if r := s.do("PUT", sub, append(hdr{"Content-Type", "application/json"}, writer...), create); r.status != http.StatusForbidden {
		t.Errorf("create with a write token: %s", r)
	}
	s.must(201, "PUT", sub, jsonAdmin, create)
	s.must(200, "GET", "/v1/stream/__ds/jwks.json", nil, "")
	s.must(201, "PUT", "/v1/stream/t/a", append(hdr{"Content-Type", "text/plain"}, admin...), "abc")
	var c subscriptions.Claim
	if err := json.Unmarshal(s.must(200, "POST", sub+"/claim", jsonAdmin, `{"worker":"w1"}`).body, &c); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(subscriptions.AckRequest{WakeID: c.WakeID, Generation: &c.Generation, Done: true,
		Acks: []subscriptions.Ack{{Stream: "t/a", Offset: c.Streams[0].TailOffset}}})
	s.must(200, "POST", sub+"/ack", hdr{"Content-Type", "application/json", "Authorization", "Bearer " + c.Token}, string(body))
}

func TestSubscriptionsDisabled(t *testing.T) {
	s := newServer(t, func(c *server.Config) { c.Subscriptions.Disabled = true }, nil)
	wantSubError(t, "disabled", s.do("GET", "/v1/stream/__ds/jwks.json", nil, ""), 404, subscriptions.CodeNotFound)
}
