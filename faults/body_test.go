package faults

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixedHandler answers with status, Content-Type ct and body, declaring
// Content-Length and writing the body in two parts with a flush between.
func fixedHandler(status int, ct, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		half := len(body) / 2
		io.WriteString(w, body[:half])
		http.NewResponseController(w).Flush()
		io.WriteString(w, body[half:])
	})
}

func ptr[T any](v T) *T { return &v }

func TestBodyFaults(t *testing.T) {
	const body = `[{"valid":"json data here"}]`
	tests := []struct {
		name    string
		fault   Fault
		status  int
		ct      string
		check   func(t *testing.T, resp *http.Response, got string)
		noAlter bool
	}{
		{name: "truncate", fault: Fault{TruncateBody: ptr[int64](10)}, status: 200, ct: "application/json",
			check: func(t *testing.T, resp *http.Response, got string) {
				if got != body[:10] {
					t.Errorf("body %q, want %q", got, body[:10])
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
				}
			}},
		{name: "truncate to nothing", fault: Fault{TruncateBody: ptr[int64](0)}, status: 200, ct: "text/plain",
			check: func(t *testing.T, _ *http.Response, got string) {
				if got != "" {
					t.Errorf("body %q, want empty", got)
				}
			}},
		{name: "truncate longer than body", fault: Fault{TruncateBody: ptr[int64](1000)}, status: 200, ct: "text/plain", noAlter: true},
		{name: "corrupt", fault: Fault{CorruptBody: true}, status: 200, ct: "application/json",
			check: func(t *testing.T, resp *http.Response, got string) {
				if len(got) != len(body) || !strings.HasPrefix(got, "XY") {
					t.Errorf("body %q, want %d bytes starting with XY", got, len(body))
				}
				if resp.ContentLength != int64(len(body)) {
					t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(body))
				}
			}},
		{name: "errors untouched", fault: Fault{TruncateBody: ptr[int64](3), CorruptBody: true}, status: 404, ct: "application/json", noAlter: true},
		{name: "SSE not cut", fault: Fault{TruncateBody: ptr[int64](3)}, status: 200, ct: "text/event-stream", noAlter: true},
		{name: "SSE event", fault: Fault{SSEEvent: &SSEEvent{Type: "control", Data: "{bad\nline"}}, status: 200, ct: "text/event-stream",
			check: func(t *testing.T, _ *http.Response, got string) {
				if want := "event: control\ndata: {bad\ndata: line\n\n" + body; got != want {
					t.Errorf("body %q, want %q", got, want)
				}
			}},
		{name: "SSE event not on plain reads", fault: Fault{SSEEvent: &SSEEvent{Type: "control"}}, status: 200, ct: "application/json", noAlter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := New()
			tt.fault.Path = "/p"
			must(t, in.Inject(tt.fault))
			srv := httptest.NewServer(in.Middleware(fixedHandler(tt.status, tt.ct, body)))
			defer srv.Close()
			for i, alter := range []bool{!tt.noAlter, false} { // the second request is past Count
				resp, err := http.Get(srv.URL + "/p")
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("request %d: reading the body: %v", i, err)
				}
				if resp.StatusCode != tt.status {
					t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, tt.status)
				}
				if !alter {
					if string(b) != body {
						t.Errorf("request %d: body %q, want it unchanged", i, b)
					}
					continue
				}
				tt.check(t, resp, string(b))
			}
		})
	}
}

func TestProbability(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/never", Status: 500, Probability: ptr(0.0)}))
	must(t, in.Inject(Fault{Path: "/always", Status: 500, Probability: ptr(1.0)}))
	h := in.Middleware(okHandler())
	for range 20 {
		if rec := do(t, h, "GET", "/never", ""); rec.Code != 200 {
			t.Fatalf("probability 0 fired: %d", rec.Code)
		}
	}
	if p := in.Pending(); len(p) != 2 || p[0].Count != 1 {
		t.Fatalf("spared requests used up the fault: %+v", p)
	}
	if rec := do(t, h, "GET", "/always", ""); rec.Code != 500 {
		t.Fatalf("probability 1 did not fire: %d", rec.Code)
	}
}

func TestJitter(t *testing.T) {
	in := New()
	must(t, in.Inject(Fault{Path: "/p", Delay: 20 * time.Millisecond, Jitter: 30 * time.Millisecond}))
	start := time.Now()
	if rec := do(t, in.Middleware(okHandler()), "GET", "/p", ""); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("served after %v, want at least the delay", d)
	}
	for range 1000 {
		if d := randDuration(30 * time.Millisecond); d < 0 || d >= 30*time.Millisecond {
			t.Fatalf("jitter %v out of [0, 30ms)", d)
		}
	}
}
