package api_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/server"
)

func TestParseCORS(t *testing.T) {
	tests := []struct {
		in      string
		want    api.CORS
		wantErr string
	}{
		{in: "*", want: api.CORS{}},
		{in: "off", want: api.CORS{Off: true}},
		{in: " ", want: api.CORS{Off: true}},
		{in: "https://App.Example.com, http://localhost:3000,", want: api.CORS{Origins: []string{"https://app.example.com", "http://localhost:3000"}}},
		{in: "https://a.example/", want: api.CORS{Origins: []string{"https://a.example"}}},
		{in: "https://a.example,*", want: api.CORS{Origins: []string{"https://a.example", "*"}}},
		{in: "a.example", wantErr: "scheme://host"},
		{in: "ftp://a.example", wantErr: "scheme://host"},
		{in: "https://a.example/path", wantErr: "scheme://host"},
	}
	for _, tt := range tests {
		got, err := api.ParseCORS(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCORS(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Off != tt.want.Off || strings.Join(got.Origins, " ") != strings.Join(tt.want.Origins, " ") {
			t.Errorf("ParseCORS(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestCORSPolicies checks the headers of a preflight and of a read, from
// an allowed and from another origin, under each kind of policy.
func TestCORSPolicies(t *testing.T) {
	const allowed, other = "https://app.example.com", "https://evil.example"
	tests := []struct {
		name   string
		cors   api.CORS
		origin string
		want   string // Access-Control-Allow-Origin; "" absent
		vary   bool   // Vary: Origin
	}{
		{"any origin", api.CORS{}, other, "*", false},
		{"listed origin", api.CORS{Origins: []string{allowed}}, allowed, allowed, true},
		{"listed origin, other case", api.CORS{Origins: []string{allowed}}, "https://APP.example.com", "https://APP.example.com", true},
		{"unlisted origin", api.CORS{Origins: []string{allowed}}, other, "", true},
		{"no origin", api.CORS{Origins: []string{allowed}}, "", "", true},
		{"star in a list", api.CORS{Origins: []string{allowed, "*"}}, other, "*", false},
		{"off", api.CORS{Off: true}, allowed, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(c *server.Config) { c.CORS = tt.cors }, nil)
			s.create("s", "text/plain", "x")
			var h hdr
			if tt.origin != "" {
				h = hdr{"Origin", tt.origin}
			}
			pre := s.must(204, "OPTIONS", "/v1/stream/s", append(h, "Access-Control-Request-Method", "POST"), "")
			get := s.must(200, "GET", "/v1/stream/s", h, "")
			for _, r := range []*response{pre, get} {
				if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.want {
					t.Errorf("Allow-Origin %q, want %q", got, tt.want)
				}
				if got := containsToken(strings.Join(r.header.Values("Vary"), ","), "Origin"); got != tt.vary {
					t.Errorf("Vary %q, want Origin in it: %v", r.header.Values("Vary"), tt.vary)
				}
				if got := r.header.Get("Access-Control-Expose-Headers") != ""; got != (tt.want != "") {
					t.Errorf("Expose-Headers %q with Allow-Origin %q", r.header.Get("Access-Control-Expose-Headers"), tt.want)
				}
			}
			if got := pre.header.Get("Access-Control-Allow-Methods") != ""; got != (tt.want != "") {
				t.Errorf("preflight Allow-Methods %q with Allow-Origin %q", pre.header.Get("Access-Control-Allow-Methods"), tt.want)
			}
			if pre.header.Get("Allow") == "" {
				t.Errorf("OPTIONS without Allow")
			}
		})
	}
}

// TestCursorClockConfig: the configured epoch and interval set the
// Stream-Cursor of live reads.
func TestCursorClockConfig(t *testing.T) {
	epoch := time.Now().Add(-90 * time.Minute)
	s := newServer(t, func(c *server.Config) { c.CursorEpoch, c.CursorInterval = epoch, time.Minute }, nil)
	s.create("s", "text/plain", "x")
	r := s.must(204, "GET", "/v1/stream/s?offset="+tok(1)+"&live=long-poll", nil, "")
	v, err := strconv.Atoi(r.header.Get("Stream-Cursor"))
	if err != nil || v < 90 || v > 91 {
		t.Fatalf("Stream-Cursor %q, want 90 minutes since the epoch", r.header.Get("Stream-Cursor"))
	}
	r = s.must(204, "GET", "/v1/stream/s?offset="+tok(1)+"&live=long-poll&cursor="+strconv.Itoa(v), nil, "")
	if w, _ := strconv.Atoi(r.header.Get("Stream-Cursor")); w <= v || w > v+60 {
		t.Fatalf("Stream-Cursor %d after %d, want 1 to 60 one-minute intervals ahead", w, v)
	}
}
