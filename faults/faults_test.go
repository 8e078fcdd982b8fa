package faults

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestInjectCountsDown(t *testing.T) {
	in := New()
	if err := in.Inject(Fault{Path: "/v1/stream/x", Status: 503, Count: 2, RetryAfter: 3, Method: "post"}); err != nil {
		t.Fatal(err)
	}
	h := in.Middleware(okHandler())
	steps := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/stream/x", 200},   // method does not match
		{"POST", "/v1/stream/xy", 200}, // exact path only
		{"POST", "/v1/stream/x", 503},  // 1st
		{"POST", "/v1/stream/x", 503},  // 2nd
		{"POST", "/v1/stream/x", 200},  // used up
	}
	for i, s := range steps {
		rec := do(t, h, s.method, s.path, "")
		if rec.Code != s.want {
			t.Fatalf("step %d %s %s: status %d, want %d", i, s.method, s.path, rec.Code, s.want)
		}
		if s.want == 503 {
			if got := rec.Header().Get("Retry-After"); got != "3" {
				t.Errorf("Retry-After = %q, want 3", got)
			}
			if !strings.Contains(rec.Body.String(), `"INJECTED_FAULT"`) {
				t.Errorf("body %q lacks the error code", rec.Body)
			}
		}
	}
	if p := in.Pending(); len(p) != 0 {
		t.Errorf("pending after use: %+v", p)
	}
}

func TestPrefixAndReplace(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/v1/stream/a/", Prefix: true, Status: 500, Count: 5}))
	must(t, in.Inject(Fault{Path: "/v1/stream/a/", Prefix: true, Status: 429, Count: 1})) // replaces
	h := in.Middleware(okHandler())
	if rec := do(t, h, "GET", "/v1/stream/a/b/c", ""); rec.Code != 429 {
		t.Fatalf("status %d, want 429", rec.Code)
	}
	if rec := do(t, h, "GET", "/v1/stream/a/b", ""); rec.Code != 200 {
		t.Fatalf("status %d, want 200 after the replacing fault was used", rec.Code)
	}
}

func TestDelayOnlyPassesThrough(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/p", Delay: 30 * time.Millisecond}))
	start := time.Now()
	rec := do(t, in.Middleware(okHandler()), "GET", "/p", "")
	if rec.Code != 200 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("status %d after %v, want 200 after the delay", rec.Code, time.Since(start))
	}
}

func TestDropConnection(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/p", DropConnection: true}))
	srv := httptest.NewServer(in.Middleware(okHandler()))
	defer srv.Close()
	if _, err := http.Get(srv.URL + "/p"); err == nil {
		t.Fatal("request succeeded, want a dropped connection")
	}
	resp, err := http.Get(srv.URL + "/p")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after the fault, want 200", resp.StatusCode)
	}
}

func TestControlEndpoint(t *testing.T) {
	tests := []struct {
		name, method, body string
		want               int
		wantMsg            string
	}{
		{"ok", "POST", `{"path":"/v1/stream/x","status":503,"count":2,"retryAfter":1,"method":"POST"}`, 200, `"ok":true`},
		{"delay", "POST", `{"path":"/v1/stream/y","delayMs":10}`, 200, `"ok":true`},
		{"clear", "DELETE", ``, 200, `"ok":true`},
		{"no path", "POST", `{"status":503}`, 400, "path must start with /"},
		{"no fault", "POST", `{"path":"/x","jitterMs":0,"count":2}`, 400, "needs a status"},
		{"bad status", "POST", `{"path":"/x","status":200}`, 400, "not an error status"},
		{"negative count", "POST", `{"path":"/x","status":500,"count":-1}`, 400, "count"},
		{"unknown field", "POST", `{"path":"/x","status":500,"truncateBodyByte":3}`, 400, "truncateBodyByte"},
		{"reference body", "POST", `{"path":"/x","count":1,"delayMs":300,"jitterMs":300,"truncateBodyBytes":0,"probability":0.5,"method":"GET","corruptBody":true,"injectSseEvent":{"eventType":"control","data":"{"}}`, 200, `"ok":true`},
		{"negative truncate", "POST", `{"path":"/x","truncateBodyBytes":-1}`, 400, "truncateBodyBytes"},
		{"probability", "POST", `{"path":"/x","status":500,"probability":1.5}`, 400, "probability"},
		{"event type", "POST", `{"path":"/x","injectSseEvent":{"eventType":"a\nb","data":""}}`, 400, "eventType"},
		{"no event type", "POST", `{"path":"/x","injectSseEvent":{"data":"x"}}`, 400, "eventType"},
		{"huge jitter", "POST", `{"path":"/x","delayMs":1,"jitterMs":999999999}`, 400, "jitterMs"},
		{"bad json", "POST", `{`, 400, "invalid fault JSON"},
		{"huge delay", "POST", `{"path":"/x","delayMs":999999999}`, 400, "delayMs"},
		{"method", "GET", ``, 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := New()
			rec := do(t, http.HandlerFunc(in.ServeControl), tt.method, ControlPath, tt.body)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantMsg) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, rec.Body, tt.want, tt.wantMsg)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestControlPathIsNeverFaulted(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/", Prefix: true, Status: 500, Count: 100}))
	if answered, _ := in.Apply(httptest.NewRecorder(), httptest.NewRequest("POST", ControlPath, nil)); answered {
		t.Fatal("control path was faulted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
