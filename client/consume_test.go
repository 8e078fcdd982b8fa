package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStream serves one stream of messages, a few per response, with
// integer offsets (the number of messages before). JSON streams answer
// arrays; others the messages' bytes concatenated. Long-polls at the end
// answer 204 at once (or after a short wait), so tests never hang.
type fakeStream struct {
	json   bool
	chunk  int // messages per response
	mu     sync.Mutex
	msgs   []string
	closed bool
	fail   map[int]int // GETs by number (1-based) answered with this status
	gets   int
}

func (f *fakeStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ct := "text/plain"
	if f.json {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if r.Method == http.MethodHead {
		w.Header().Set("Stream-Next-Offset", strconv.Itoa(len(f.msgs)))
		return
	}
	f.gets++
	if st := f.fail[f.gets]; st != 0 {
		w.WriteHeader(st)
		return
	}
	q := r.URL.Query()
	from := 0
	switch off := q.Get("offset"); off {
	case "-1":
	case "now":
		from = len(f.msgs)
	default:
		n, err := strconv.Atoi(off)
		if err != nil || n > len(f.msgs) {
			http.Error(w, `{"error":"BAD_OFFSET"}`, http.StatusBadRequest)
			return
		}
		from = n
	}
	to := min(from+f.chunk, len(f.msgs))
	h := w.Header()
	h.Set("Stream-Next-Offset", strconv.Itoa(to))
	if to == len(f.msgs) {
		h.Set("Stream-Up-To-Date", "true")
		if f.closed {
			h.Set("Stream-Closed", "true")
		}
	}
	if from == to {
		if q.Get("live") != "" && !f.closed {
			f.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			f.mu.Lock()
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	part := f.msgs[from:to]
	if f.json {
		fmt.Fprint(w, "["+strings.Join(part, ",")+"]")
	} else {
		fmt.Fprint(w, strings.Join(part, ""))
	}
}

func newFakeStream(t *testing.T, f *fakeStream) *Stream {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return New(srv.URL, WithRetry(fastRetry)).Stream("s")
}

// fastConsume keeps Consume's backoff short in tests.
func fastConsume(o ConsumeOptions) ConsumeOptions {
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 2*time.Millisecond
	o.Live = LiveLongPoll
	return o
}

func TestConsumeCommitsAndRetries(t *testing.T) {
	t.Parallel()
	f := &fakeStream{chunk: 3, msgs: strings.Split("abcdefgh", ""), closed: true}
	s := newFakeStream(t, f)
	store := &MemoryOffsetStore{}
	var got []string
	var retried []error
	failed := false
	h := func(_ context.Context, b Batch) error {
		got = append(got, string(b.Data)+"@"+b.NextOffset)
		if string(b.Data) == "def" && !failed {
			failed = true
			return errors.New("not now")
		}
		return nil
	}
	opts := fastConsume(ConsumeOptions{Store: store, OnError: func(err error, _ time.Duration) { retried = append(retried, err) }})
	if err := s.Consume(testCtx(t), h, opts); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	// The failed batch comes again; the batch before it does not.
	if want := "abc@3 def@6 def@6 gh@8"; strings.Join(got, " ") != want {
		t.Errorf("batches %q, want %q", got, want)
	}
	if len(retried) != 1 || !strings.Contains(retried[0].Error(), "not now") {
		t.Errorf("OnError saw %v", retried)
	}
	if off, ok, _ := store.Load(t.Context()); !ok || off != "8" {
		t.Errorf("stored offset %q %v, want 8", off, ok)
	}
	// A second consumer with the store resumes at the end: nothing new.
	got = nil
	if err := s.Consume(testCtx(t), h, opts); err != nil || len(got) != 0 {
		t.Errorf("resumed Consume: %v, batches %q", err, got)
	}
}

func TestConsumeStops(t *testing.T) {
	t.Parallel()
	f := &fakeStream{json: true, chunk: 2, msgs: []string{"1", "2", "3", "4", "5"}}
	s := newFakeStream(t, f)

	// StopAtEnd: everything up to the current end of an open stream.
	var n int
	count := func(_ context.Context, b Batch) error {
		msgs, err := b.JSONMessages()
		n += len(msgs)
		return err
	}
	store := &MemoryOffsetStore{}
	if err := s.Consume(testCtx(t), count, fastConsume(ConsumeOptions{Store: store, StopAtEnd: true})); err != nil || n != 5 {
		t.Fatalf("StopAtEnd: %v, %d messages", err, n)
	}

	// ErrStopConsuming commits the batch that returned it.
	store = &MemoryOffsetStore{}
	stop := func(context.Context, Batch) error { return fmt.Errorf("enough: %w", ErrStopConsuming) }
	if err := s.Consume(testCtx(t), stop, fastConsume(ConsumeOptions{Store: store})); err != nil {
		t.Fatalf("ErrStopConsuming: %v", err)
	}
	if off, _, _ := store.Load(t.Context()); off != "2" {
		t.Errorf("offset after ErrStopConsuming %q, want 2", off)
	}

	// Following a live stream ends with the context; offsets of batches
	// without data (OffsetNow resolved) are committed too.
	ctx, cancel := context.WithCancel(testCtx(t))
	store = &MemoryOffsetStore{}
	var seen []string
	go func() {
		// Append once the consumer has resolved "now" (and committed it),
		// so that the message comes after it.
		for off, _, _ := store.Load(ctx); off == "" && ctx.Err() == nil; off, _, _ = store.Load(ctx) {
			time.Sleep(time.Millisecond)
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, "6")
		f.mu.Unlock()
	}()
	follow := func(_ context.Context, b Batch) error {
		seen = append(seen, string(b.Data))
		cancel()
		return nil
	}
	err := s.Consume(ctx, follow, fastConsume(ConsumeOptions{Store: store, Offset: OffsetNow}))
	if !errors.Is(err, context.Canceled) || strings.Join(seen, " ") != "[6]" {
		t.Errorf("live Consume: %v, batches %q", err, seen)
	}
	if off, _, _ := store.Load(t.Context()); off != "6" {
		t.Errorf("offset after the live batch %q, want 6 (committed although ctx ended)", off)
	}
}

func TestConsumeErrors(t *testing.T) {
	t.Parallel()
	never := func(context.Context, Batch) error { t.Error("handler called"); return nil }

	// A 404 is the server's final word: no retries.
	f := &fakeStream{chunk: 1, fail: map[int]int{1: http.StatusNotFound}}
	var retries int
	err := newFakeStream(t, f).Consume(testCtx(t), never, fastConsume(ConsumeOptions{OnError: func(error, time.Duration) { retries++ }}))
	if !errors.Is(err, ErrNotFound) || retries != 0 {
		t.Errorf("404: %v after %d retries", err, retries)
	}

	// 503s outlast the client's retries and then Consume's MaxFailures.
	f = &fakeStream{chunk: 1, fail: map[int]int{}}
	for i := 1; i <= 100; i++ {
		f.fail[i] = http.StatusServiceUnavailable
	}
	retries = 0
	err = newFakeStream(t, f).Consume(testCtx(t), never, fastConsume(ConsumeOptions{MaxFailures: 3, OnError: func(error, time.Duration) { retries++ }}))
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || retries != 2 || !strings.Contains(err.Error(), "3 failures") {
		t.Errorf("503s: %v after %d retries", err, retries)
	}

	// A handler's error is retried even when it looks like a 4xx.
	f = &fakeStream{chunk: 1, msgs: []string{"a"}, closed: true}
	calls := 0
	h := func(context.Context, Batch) error {
		if calls++; calls == 1 {
			return &HTTPError{Status: http.StatusNotFound}
		}
		return nil
	}
	if err := newFakeStream(t, f).Consume(testCtx(t), h, fastConsume(ConsumeOptions{})); err != nil || calls != 2 {
		t.Errorf("handler 404: %v after %d calls", err, calls)
	}
	if err := newFakeStream(t, f).Consume(testCtx(t), nil, ConsumeOptions{}); err == nil {
		t.Error("nil handler accepted")
	}
}

func TestConsumeBackoffDefaults(t *testing.T) {
	t.Parallel()
	// The first wait is about 1s, later ones grow to at most 30s.
	f := &fakeStream{chunk: 1, fail: map[int]int{}}
	for i := 1; i <= 100; i++ {
		f.fail[i] = http.StatusBadGateway
	}
	var waits []time.Duration
	ctx, cancel := context.WithCancel(testCtx(t))
	opts := ConsumeOptions{OnError: func(_ error, d time.Duration) {
		waits = append(waits, d)
		cancel()
	}}
	_ = newFakeStream(t, f).Consume(ctx, func(context.Context, Batch) error { return nil }, opts)
	if len(waits) != 1 || waits[0] < 500*time.Millisecond || waits[0] > time.Second {
		t.Errorf("first wait %v, want within [0.5s, 1s]", waits)
	}
}

func TestFileOffsetStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "consumer.offset")
	st := NewFileOffsetStore(path)
	if off, ok, err := st.Load(ctx); err != nil || ok || off != "" {
		t.Fatalf("Load of no file: %q %v %v", off, ok, err)
	}
	for _, off := range []string{"0000000000000001_0000000000000042", "7"} {
		if err := st.Save(ctx, off); err != nil {
			t.Fatal(err)
		}
	}
	// Another store on the same file (a restarted process) sees it.
	if off, ok, err := NewFileOffsetStore(path).Load(ctx); err != nil || !ok || off != "7" {
		t.Fatalf("Load: %q %v %v", off, ok, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want just the offset file", len(ents))
	}
	for _, bad := range []string{"", "a\nb"} {
		if err := st.Save(ctx, bad); err == nil {
			t.Errorf("Save(%q) accepted", bad)
		}
	}
	os.WriteFile(path, []byte("\n"), 0o600)
	if _, _, err := st.Load(ctx); err == nil {
		t.Error("Load of an empty file: no error")
	}
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	f := &fakeStream{json: true, chunk: 2, msgs: []string{`{"a":1}`, `[2]`, `"x"`, `4`, `5`}}
	s := newFakeStream(t, f)
	b, err := s.ReadAll(testCtx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := b.JSONMessages()
	raw, _ := json.Marshal(msgs)
	if err != nil || string(raw) != `[{"a":1},[2],"x",4,5]` || b.NextOffset != "5" || b.Closed || !b.UpToDate {
		t.Errorf("ReadAll: %s %+v %v", raw, b, err)
	}
	if b, err := s.ReadAll(testCtx(t), "3"); err != nil || string(b.Data) != "[4,5]" {
		t.Errorf("ReadAll from 3: %q %v", b.Data, err)
	}
	if b, err := s.ReadAll(testCtx(t), OffsetNow); err != nil || b.Data != nil || b.NextOffset != "5" {
		t.Errorf("ReadAll from now: %q %q %v", b.Data, b.NextOffset, err)
	}

	f = &fakeStream{chunk: 3, msgs: strings.Split("abcdefgh", ""), closed: true}
	if b, err := newFakeStream(t, f).ReadAll(testCtx(t), OffsetStart); err != nil || string(b.Data) != "abcdefgh" || !b.Closed {
		t.Errorf("ReadAll of text: %q %+v %v", b.Data, b, err)
	}
}

func TestAppendProducerHeaders(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		posts++
		id, ep, seq := r.Header.Get("Producer-Id"), r.Header.Get("Producer-Epoch"), r.Header.Get("Producer-Seq")
		seen = append(seen, id+"/"+ep+"/"+seq)
		h := w.Header()
		h.Set("Stream-Next-Offset", "10")
		switch seq {
		case "0":
			if posts == 1 {
				w.WriteHeader(http.StatusBadGateway) // the answer is lost: retried
				return
			}
			h.Set("Producer-Epoch", ep)
			h.Set("Producer-Seq", seq)
		case "1":
			h.Set("Producer-Epoch", ep)
			h.Set("Producer-Seq", seq)
			w.WriteHeader(http.StatusNoContent)
		case "5":
			h.Set("Producer-Expected-Seq", "2")
			h.Set("Producer-Received-Seq", "5")
			w.WriteHeader(http.StatusConflict)
		case "9":
			h.Set("Producer-Epoch", "4")
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	s := New(srv.URL, WithRetry(fastRetry)).Stream("s")
	ctx := testCtx(t)
	opts := func(epoch, seq int64) AppendOptions {
		return AppendOptions{ContentType: "text/plain", Producer: &ProducerState{ID: "p", Epoch: epoch, Seq: seq}}
	}

	res, err := s.Append(ctx, []byte("a"), opts(2, 0))
	if err != nil || res.Duplicate || res.Producer == nil || *res.Producer != (ProducerState{"p", 2, 0}) || res.NextOffset != "10" {
		t.Errorf("append seq 0: %+v %v", res, err)
	}
	if res, err := s.Append(ctx, []byte("b"), opts(2, 1)); err != nil || !res.Duplicate {
		t.Errorf("append of a stored seq: %+v %v", res, err)
	}
	_, err = s.Append(ctx, []byte("c"), opts(2, 5))
	var ge *SequenceGapError
	if !errors.As(err, &ge) || ge.Expected != 2 || ge.Received != 5 || !errors.Is(err, ErrConflict) {
		t.Errorf("append with a gap: %v", err)
	}
	_, err = s.Append(ctx, []byte("d"), opts(2, 9))
	var se *StaleEpochError
	if !errors.As(err, &se) || se.Epoch != 2 || se.CurrentEpoch != 4 {
		t.Errorf("append with a stale epoch: %v", err)
	}
	if _, err := s.Append(ctx, []byte("e"), AppendOptions{ContentType: "text/plain", Producer: &ProducerState{Epoch: 1}}); err == nil {
		t.Error("append with a producer without ID accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "p/2/0 p/2/0 p/2/1 p/2/5 p/2/9"; strings.Join(seen, " ") != want {
		t.Errorf("requests %q, want %q", seen, want)
	}
}
