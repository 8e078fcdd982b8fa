package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry keeps retry tests quick.
var fastRetry = RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 5}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		is     []error
		isNot  []error
		check  func(t *testing.T, err error)
	}{
		{name: "not found", status: 404, body: `{"error":"NOT_FOUND","message":"no such stream"}`,
			is: []error{ErrNotFound}, isNot: []error{ErrGone, ErrConflict},
			check: func(t *testing.T, err error) {
				var he *HTTPError
				if !errors.As(err, &he) || he.Code != "NOT_FOUND" || he.Message != "no such stream" {
					t.Errorf("HTTPError = %+v", he)
				}
			}},
		{name: "gone", status: 410, body: `{"error":"GONE","message":"deleted"}`, is: []error{ErrGone}, isNot: []error{ErrNotFound}},
		{name: "closed", status: 409, header: map[string]string{"Stream-Closed": "true"}, body: `{"error":"STREAM_CLOSED","message":"stream is closed"}`,
			is: []error{ErrClosed, ErrConflict}},
		{name: "conflict", status: 409, body: `{"error":"CONFLICT","message":"different config"}`,
			is: []error{ErrConflict}, isNot: []error{ErrClosed}},
		{name: "stale epoch", status: 403, header: map[string]string{"Producer-Epoch": "7"}, body: `{"error":"STALE_EPOCH"}`,
			check: func(t *testing.T, err error) {
				var se *StaleEpochError
				if !errors.As(err, &se) || se.CurrentEpoch != 7 {
					t.Errorf("StaleEpochError = %+v", se)
				}
				var he *HTTPError
				if !errors.As(err, &he) || he.Status != 403 {
					t.Errorf("no HTTPError beneath: %v", err)
				}
			}},
		{name: "sequence gap", status: 409, header: map[string]string{"Producer-Expected-Seq": "3", "Producer-Received-Seq": "5"},
			body: `{"error":"SEQUENCE_GAP"}`, is: []error{ErrConflict}, isNot: []error{ErrClosed},
			check: func(t *testing.T, err error) {
				var ge *SequenceGapError
				if !errors.As(err, &ge) || ge.Expected != 3 || ge.Received != 5 {
					t.Errorf("SequenceGapError = %+v", ge)
				}
			}},
		{name: "plain text body", status: 400, body: "bad things\n",
			check: func(t *testing.T, err error) {
				var he *HTTPError
				if !errors.As(err, &he) || he.Message != "bad things" || !strings.Contains(err.Error(), "400 Bad Request") {
					t.Errorf("HTTPError = %+v (%v)", he, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := New(srv.URL).Stream("s").Append(testCtx(t), []byte("x"), AppendOptions{ContentType: "text/plain"})
			if err == nil {
				t.Fatal("no error")
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			for _, target := range tc.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = true", err, target)
				}
			}
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	for n, ceil := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		ceil *= time.Millisecond
		for range 50 {
			if d := p.backoff(n); d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, ceil/2, ceil)
			}
		}
	}
	if d := p.backoff(1000); d > time.Second {
		t.Fatalf("backoff(1000) = %v: not capped", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, true},
	} {
		got := parseRetryAfter(tc.in)
		if got.ok != tc.ok || got.d != tc.want {
			t.Errorf("parseRetryAfter(%q) = %+v, want %v %v", tc.in, got, tc.want, tc.ok)
		}
	}
	future := parseRetryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat))
	if !future.ok || future.d < 55*time.Second || future.d > time.Minute {
		t.Errorf("HTTP-date a minute ahead = %+v", future)
	}
}

// TestRetryAfter checks that a 503's Retry-After is waited for (capped by
// MaxRetryAfter), instead of the much shorter backoff.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Stream-Next-Offset", "1")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	pol := fastRetry
	pol.MaxRetryAfter = 300 * time.Millisecond
	c := New(srv.URL, WithRetry(pol))
	start := time.Now()
	res, err := c.Stream("s").Append(testCtx(t), []byte("x"), AppendOptions{ContentType: "text/plain"})
	if err != nil || res.NextOffset != "1" {
		t.Fatalf("Append = %+v, %v", res, err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Fatalf("retried after %v, want the capped Retry-After of 300ms", el)
	}
	if n.Load() != 2 {
		t.Fatalf("%d requests, want 2", n.Load())
	}
}

// TestRetrySafety checks which failures are retried: a request whose
// connection broke after sending is retried only when idempotent.
func TestRetrySafety(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fail     func(w http.ResponseWriter)
		op       func(ctx context.Context, s *Stream) error
		requests int32
		ok       bool
	}{
		{"append after hang-up", hangUp, appendOp, 1, false},
		{"create after hang-up", hangUp, createOp, 2, true},
		{"append after 502", status(502), appendOp, 1, false},
		{"head after 502", status(502), headOp, 2, true},
		{"append after 503", status(503), appendOp, 2, true},
		{"append after 429", status(429), appendOp, 2, true},
		{"append after 400", status(400), appendOp, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					tc.fail(w)
					return
				}
				w.Header().Set("Stream-Next-Offset", "1")
				w.WriteHeader(http.StatusOK)
			}))
			defer srv.Close()
			err := tc.op(testCtx(t), New(srv.URL, WithRetry(fastRetry)).Stream("s"))
			if (err == nil) != tc.ok || n.Load() != tc.requests {
				t.Fatalf("err %v after %d requests; want ok=%v after %d", err, n.Load(), tc.ok, tc.requests)
			}
		})
	}
}

func appendOp(ctx context.Context, s *Stream) error {
	_, err := s.Append(ctx, []byte("x"), AppendOptions{ContentType: "text/plain"})
	return err
}

func createOp(ctx context.Context, s *Stream) error {
	_, err := s.Create(ctx, CreateOptions{})
	return err
}

func headOp(ctx context.Context, s *Stream) error {
	_, err := s.Head(ctx)
	return err
}

func status(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	pol := fastRetry
	pol.MaxAttempts = 3
	_, err := New(srv.URL, WithRetry(pol)).Stream("s").Head(testCtx(t))
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 500 || n.Load() != 3 {
		t.Fatalf("err %v after %d requests, want a 500 after 3", err, n.Load())
	}
}

// TestRequestShape checks URLs, escaping, the stream prefix and the
// headers every request carries.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c := New(srv.URL+"/mount/", WithToken("t0k"), WithUserAgent("ua/1"), WithStreamPrefix("streams"))
	_, err := c.Stream("/a b/c?d").Create(testCtx(t), CreateOptions{ContentType: "text/plain", TTL: 1500 * time.Millisecond,
		InitialData: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	for k, v := range map[string]string{
		"path":          r.URL.EscapedPath(),
		"Authorization": r.Header.Get("Authorization"),
		"User-Agent":    r.Header.Get("User-Agent"),
		"Stream-TTL":    r.Header.Get("Stream-TTL"),
		"Content-Type":  r.Header.Get("Content-Type"),
	} {
		exp := map[string]string{"path": "/mount/streams/a%20b/c%3Fd", "Authorization": "Bearer t0k", "User-Agent": "ua/1",
			"Stream-TTL": "2", "Content-Type": "text/plain"}[k]
		if v != exp {
			t.Errorf("%s = %q, want %q", k, v, exp)
		}
	}
}
