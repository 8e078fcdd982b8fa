package e2e

import (
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/client"
)

// chaosProxy sits between the client and the server and breaks appends:
// it answers 503 without forwarding, drops connections before forwarding,
// forwards and then drops the connection (so the server applied a request
// whose answer is lost), and delays requests so that pipelined batches
// reach the server out of order.
type chaosProxy struct {
	rp *httputil.ReverseProxy

	unavailable, dropBefore, dropAfter, forwarded, gaps, dups atomic.Int64
}

func newChaosProxy(t *testing.T, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	cp := &chaosProxy{rp: httputil.NewSingleHostReverseProxy(u)}
	cp.rp.ErrorLog = log.New(io.Discard, "", 0) // aborted requests are the point
	cp.rp.ModifyResponse = func(resp *http.Response) error {
		switch {
		case resp.StatusCode == http.StatusConflict && resp.Header.Get("Producer-Expected-Seq") != "":
			cp.gaps.Add(1)
		case resp.StatusCode == http.StatusNoContent && resp.Request.Method == http.MethodPost:
			cp.dups.Add(1)
		}
		return nil
	}
	srv := httptest.NewServer(cp)
	t.Cleanup(func() {
		srv.Close()
		t.Logf("chaos proxy: %d forwarded, %d answered 503, %d dropped before and %d after forwarding; server answered %d gaps, %d duplicates",
			cp.forwarded.Load(), cp.unavailable.Load(), cp.dropBefore.Load(), cp.dropAfter.Load(), cp.gaps.Load(), cp.dups.Load())
	})
	return srv
}

func (cp *chaosProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		cp.rp.ServeHTTP(w, r)
		return
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	switch x := rand.IntN(100); {
	case x < 10:
		cp.unavailable.Add(1)
		w.Header().Set("Retry-After", "0")
		http.Error(w, "chaos: unavailable", http.StatusServiceUnavailable)
	case x < 18:
		cp.dropBefore.Add(1)
		hangUp(w)
	case x < 30:
		cp.dropAfter.Add(1)
		cp.forwarded.Add(1)
		cp.rp.ServeHTTP(httptest.NewRecorder(), r)
		hangUp(w)
	default:
		cp.forwarded.Add(1)
		cp.rp.ServeHTTP(w, r)
	}
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// TestClientProducerExactlyOnce appends through the chaos proxy with
// several batches in flight and checks that every message is stored once,
// in order.
func TestClientProducerExactlyOnce(t *testing.T) {
	t.Parallel()
	s, direct, ctx := startClientServer(t)
	proxy := newChaosProxy(t, s.URL)
	c := client.New(proxy.URL, client.WithRetry(client.RetryPolicy{
		MaxAttempts: -1, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}))

	for _, tc := range []struct {
		name string
		opts client.ProducerOptions
		n    int
	}{
		{"pipelined", client.ProducerOptions{MaxInFlight: 4, MaxBatchMessages: 7}, 600},
		{"linger", client.ProducerOptions{MaxInFlight: 2, Linger: 2 * time.Millisecond, MaxBatchBytes: 64}, 300},
		{"serial", client.ProducerOptions{MaxInFlight: 1, MaxBatchMessages: 3}, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "client/producer/" + tc.name
			if _, err := direct.Stream(path).Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
				t.Fatal(err)
			}
			var reported atomic.Value
			opts := tc.opts
			opts.ID = "p-" + tc.name
			opts.OnError = func(err error) { reported.Store(err) }
			p := c.Stream(path).Producer(opts)
			start := time.Now()
			for i := range tc.n {
				if err := p.AppendJSON(ctx, map[string]int{"i": i}); err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
				if i%97 == 0 {
					if err := p.Flush(ctx); err != nil {
						t.Fatalf("Flush: %v", err)
					}
				}
			}
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			t.Logf("%d messages through the chaos proxy in %v", tc.n, time.Since(start).Round(time.Millisecond))
			if err, _ := reported.Load().(error); err != nil {
				t.Fatalf("OnError: %v", err)
			}
			verifySequence(ctx, t, direct.Stream(path), tc.n)
		})
	}
}

// verifySequence checks that the stream holds {"i":0} .. {"i":n-1} once
// each, in order.
func verifySequence(ctx context.Context, t *testing.T, st *client.Stream, n int) {
	t.Helper()
	i := 0
	for m, err := range st.Read(ctx, client.ReadOptions{}).Messages() {
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"i":` + strconv.Itoa(i) + `}`; string(m.Data) != want {
			t.Fatalf("message %d = %s, want %s", i, m.Data, want)
		}
		i++
	}
	if i != n {
		t.Fatalf("stream holds %d messages, want %d", i, n)
	}
}

// TestClientProducerFencing checks epoch fencing and AutoClaim between
// producers sharing one id.
func TestClientProducerFencing(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	st := c.Stream("client/fencing")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reported []error
	producer := func(epoch int64, autoClaim bool) *client.Producer {
		return st.Producer(client.ProducerOptions{ID: "writer", Epoch: epoch, AutoClaim: autoClaim,
			OnError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }})
	}
	write := func(p *client.Producer, s string) error {
		if err := p.Append(ctx, []byte(s)); err != nil {
			return err
		}
		return p.Flush(ctx)
	}
	staleEpoch := func(err error) int64 {
		t.Helper()
		var se *client.StaleEpochError
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want a *StaleEpochError", err)
		}
		return se.CurrentEpoch
	}

	p0 := producer(0, false)
	if err := write(p0, "a"); err != nil {
		t.Fatal(err)
	}
	p1 := producer(1, false)
	if err := write(p1, "b"); err != nil {
		t.Fatal(err)
	}
	// The newer epoch fenced the older producer.
	if cur := staleEpoch(write(p0, "x")); cur != 1 {
		t.Fatalf("fenced producer saw epoch %d, want 1", cur)
	}
	if err := p0.Append(ctx, []byte("x")); staleEpoch(err) != 1 {
		t.Fatal("a failed producer must keep failing")
	}
	// AutoClaim takes the id over from epoch 0: server epoch + 1.
	p2 := producer(0, true)
	if err := write(p2, "c"); err != nil {
		t.Fatalf("auto-claim: %v", err)
	}
	if p2.Epoch() != 2 {
		t.Fatalf("claimed epoch %d, want 2", p2.Epoch())
	}
	if cur := staleEpoch(write(p1, "x")); cur != 2 {
		t.Fatalf("fenced producer saw epoch %d, want 2", cur)
	}
	// Reusing the epoch in use is detected instead of silently deduplicated.
	p3 := producer(2, false)
	staleEpoch(write(p3, "x"))
	// ... and AutoClaim moves past it.
	p4 := producer(2, true)
	if err := write(p4, "d"); err != nil || p4.Epoch() != 3 {
		t.Fatalf("auto-claim past a reused epoch: epoch %d, %v", p4.Epoch(), err)
	}
	// A claim happens once: fenced again later, the producer stops.
	p5 := producer(4, false)
	if err := write(p5, "e"); err != nil {
		t.Fatal(err)
	}
	if cur := staleEpoch(write(p4, "x")); cur != 4 {
		t.Fatalf("claimed producer fenced at epoch %d, want 4", cur)
	}
	for _, p := range []*client.Producer{p0, p1, p2, p3, p4, p5} {
		_ = p.Close(ctx)
	}
	mu.Lock()
	if len(reported) != 4 {
		t.Errorf("OnError was called %d times, want 4 (p0, p1, p3, p4): %v", len(reported), reported)
	}
	mu.Unlock()
	got, _ := readAll(t, st.Read(ctx, client.ReadOptions{}))
	if got != "abcde" {
		t.Fatalf("stream holds %q, want %q", got, "abcde")
	}
}

// TestClientProducerThroughput measures a producer against plain
// sequential appends on the real server (logged, not asserted beyond
// correctness: the machine is shared).
func TestClientProducerThroughput(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	const plain, produced = 300, 20000
	st := c.Stream("client/throughput/plain")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range plain {
		if _, err := st.AppendJSON(ctx, map[string]int{"i": i}, client.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	plainRate := float64(plain) / time.Since(start).Seconds()

	st = c.Stream("client/throughput/producer")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	p := st.Producer(client.ProducerOptions{ID: "bench"})
	start = time.Now()
	for i := range produced {
		if err := p.AppendJSON(ctx, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	prodRate := float64(produced) / time.Since(start).Seconds()
	t.Logf("sequential Append: %.0f msg/s; Producer (defaults): %.0f msg/s", plainRate, prodRate)
	verifySequence(ctx, t, st, produced)
}
