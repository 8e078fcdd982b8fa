package client

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeProducerServer implements the protocol's producer validation for
// one JSON stream, and breaks requests on purpose: 503 before applying,
// hang-ups before and after applying, and random delays that reorder
// pipelined requests.
type fakeProducerServer struct {
	mu     sync.Mutex
	msgs   []string
	epochs map[string]int64
	last   map[string]int64
	chaos  bool
}

func (f *fakeProducerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		return
	}
	if f.chaos {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		switch rand.IntN(10) {
		case 0:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case 1:
			hangUp(w)
			return
		}
	}
	id := r.Header.Get(hdrProducerID)
	epoch, _ := strconv.ParseInt(r.Header.Get(hdrProducerEpoch), 10, 64)
	seq, _ := strconv.ParseInt(r.Header.Get(hdrProducerSeq), 10, 64)
	var body []json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	cur, known := f.epochs[id]
	last := f.last[id]
	status := http.StatusOK
	switch {
	case known && epoch < cur:
		w.Header().Set(hdrProducerEpoch, strconv.FormatInt(cur, 10))
		status = http.StatusForbidden
	case known && epoch == cur && seq <= last:
		status = http.StatusNoContent
	case (!known || epoch > cur) && seq != 0:
		if known {
			status = http.StatusBadRequest
			break
		}
		fallthrough
	case known && epoch == cur && seq != last+1:
		w.Header().Set(hdrProducerExpectedSeq, strconv.FormatInt(last+1, 10))
		if !known {
			w.Header().Set(hdrProducerExpectedSeq, "0")
		}
		w.Header().Set(hdrProducerReceivedSeq, strconv.FormatInt(seq, 10))
		status = http.StatusConflict
	default:
		f.epochs[id], f.last[id] = epoch, seq
		for _, m := range body {
			f.msgs = append(f.msgs, string(m))
		}
	}
	f.mu.Unlock()
	if f.chaos && status == http.StatusOK && rand.IntN(8) == 0 {
		hangUp(w) // applied, but the answer is lost
		return
	}
	w.WriteHeader(status)
}

func newFakeProducerServer(t *testing.T, chaos bool) (*fakeProducerServer, *Client) {
	t.Helper()
	f := &fakeProducerServer{epochs: map[string]int64{}, last: map[string]int64{}, chaos: chaos}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, New(srv.URL, WithRetry(RetryPolicy{MaxAttempts: -1, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}))
}

// TestProducerExactlyOnce runs concurrent appends through a faulty server
// with several batches in flight and checks each message is stored once,
// in order.
func TestProducerExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts ProducerOptions
	}{
		{"pipelined", ProducerOptions{MaxInFlight: 5, MaxBatchMessages: 4}},
		{"bytes", ProducerOptions{MaxInFlight: 3, MaxBatchBytes: 20}},
		{"linger", ProducerOptions{MaxInFlight: 2, Linger: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, c := newFakeProducerServer(t, true)
			ctx := testCtx(t)
			opts := tc.opts
			opts.ID = "p"
			p := c.Stream("s").Producer(opts)
			const n = 400
			for i := range n {
				if err := p.AppendJSON(ctx, i); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.msgs) != n {
				t.Fatalf("stored %d messages, want %d", len(f.msgs), n)
			}
			for i, m := range f.msgs {
				if m != strconv.Itoa(i) {
					t.Fatalf("message %d = %s", i, m)
				}
			}
		})
	}
}

func TestProducerStaleEpoch(t *testing.T) {
	t.Parallel()
	f, c := newFakeProducerServer(t, false)
	f.epochs["p"], f.last["p"] = 3, 10
	ctx := testCtx(t)

	var reported error
	p := c.Stream("s").Producer(ProducerOptions{ID: "p", Epoch: 1, OnError: func(err error) { reported = err }})
	_ = p.Append(ctx, []byte(`"a"`))
	err := p.Flush(ctx)
	var se *StaleEpochError
	if !errors.As(err, &se) || se.CurrentEpoch != 3 || se.Epoch != 1 {
		t.Fatalf("Flush = %v, want StaleEpochError 1 < 3", err)
	}
	if !errors.Is(p.Close(ctx), err) || reported != err {
		t.Fatalf("Close and OnError must report the same error; OnError got %v", reported)
	}
	if err := p.Append(ctx, []byte(`"b"`)); !errors.As(err, &se) {
		t.Fatalf("Append after failure = %v", err)
	}

	// With AutoClaim, the epoch moves past the server's.
	p = c.Stream("s").Producer(ProducerOptions{ID: "p", AutoClaim: true, MaxInFlight: 3, MaxBatchMessages: 1})
	for i := range 10 {
		if err := p.AppendJSON(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil || p.Epoch() != 4 {
		t.Fatalf("Close = %v with epoch %d, want epoch 4", err, p.Epoch())
	}
	if len(f.msgs) != 10 || f.epochs["p"] != 4 || f.last["p"] != 9 {
		t.Fatalf("server state: %d messages, epoch %d, last seq %d", len(f.msgs), f.epochs["p"], f.last["p"])
	}
}

func TestProducerValidation(t *testing.T) {
	t.Parallel()
	_, c := newFakeProducerServer(t, false)
	ctx := testCtx(t)
	p := c.Stream("s").Producer(ProducerOptions{ID: "p"})
	if err := p.Append(ctx, []byte(`{"unterminated`)); err == nil {
		t.Fatal("invalid JSON accepted")
	}
	if err := p.Append(ctx, nil); err == nil {
		t.Fatal("empty message accepted")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Append(ctx, []byte("1")); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if err := c.Stream("s").Producer(ProducerOptions{}).Close(ctx); err == nil {
		t.Fatal("producer without ID accepted")
	}
}
