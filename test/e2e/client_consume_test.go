package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/client"
)

// TestClientAppendProducer sends producer headers on plain appends: the
// server's echo, duplicates, gaps and fencing reach the caller typed.
func TestClientAppendProducer(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	st := c.Stream("client/producer-headers")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	app := func(data string, epoch, seq int64) (client.AppendResult, error) {
		return st.Append(ctx, []byte(data), client.AppendOptions{Producer: &client.ProducerState{ID: "p1", Epoch: epoch, Seq: seq}})
	}
	res, err := app("a", 0, 0)
	if err != nil || res.Duplicate || res.Producer == nil || res.Producer.Epoch != 0 || res.Producer.Seq != 0 {
		t.Fatalf("first append: %+v %v", res, err)
	}
	if res, err := app("a", 0, 0); err != nil || !res.Duplicate {
		t.Fatalf("repeated append: %+v %v, want a duplicate", res, err)
	}
	_, err = app("c", 0, 2)
	var ge *client.SequenceGapError
	if !errors.As(err, &ge) || ge.Expected != 1 || ge.Received != 2 {
		t.Fatalf("append with a gap: %v", err)
	}
	if res, err = app("b", 1, 0); err != nil || res.Producer.Epoch != 1 {
		t.Fatalf("append of a new epoch: %+v %v", res, err)
	}
	_, err = app("z", 0, 1)
	var se *client.StaleEpochError
	if !errors.As(err, &se) || se.Epoch != 0 || se.CurrentEpoch != 1 {
		t.Fatalf("append of a fenced epoch: %v", err)
	}
	b, err := st.ReadAll(ctx, client.OffsetStart)
	if err != nil || string(b.Data) != "ab" || b.NextOffset != res.NextOffset {
		t.Fatalf("stream holds %q up to %s (%v), want %q up to %s", b.Data, b.NextOffset, err, "ab", res.NextOffset)
	}
}

// TestClientReadAll reads a stream the server answers in many chunks,
// some of them from sealed segments.
func TestClientReadAll(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t, WithArgs("--max-read-chunk", "2048", "--seal-messages", "7", "--seal-age", "50ms"))
	st := c.Stream("client/readall")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	const n = 150
	for i := range n {
		if _, err := st.AppendJSON(ctx, map[string]any{"i": i, "pad": fmt.Sprintf("%0100d", i)}, client.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := st.ReadAll(ctx, client.OffsetStart)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := b.JSONMessages()
	if err != nil || len(msgs) != n {
		t.Fatalf("ReadAll: %d messages (%v), want %d", len(msgs), err, n)
	}
	for i, m := range msgs {
		var v struct{ I int }
		if json.Unmarshal(m, &v) != nil || v.I != i {
			t.Fatalf("message %d = %s", i, m)
		}
	}
	md, err := st.Head(ctx)
	if err != nil || b.NextOffset != md.NextOffset {
		t.Fatalf("ReadAll ends at %s, the tail is %s (%v)", b.NextOffset, md.NextOffset, err)
	}
	if rest, err := st.ReadAll(ctx, b.NextOffset); err != nil || rest.Data != nil {
		t.Fatalf("ReadAll from the tail: %q %v", rest.Data, err)
	}
}

// TestClientConsume runs a consumer, stops it, and resumes it from its
// offset file while the server restarts under it: every message is
// handled exactly once when nothing fails.
func TestClientConsume(t *testing.T) {
	t.Parallel()
	srv, c, ctx := startClientServer(t, WithLongPollTimeout(500*time.Millisecond))
	st := c.Stream("client/consume")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	appendN := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := st.AppendJSON(ctx, i, client.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(0, 10)
	store := client.NewFileOffsetStore(filepath.Join(t.TempDir(), "consume.offset"))
	var mu sync.Mutex
	var seen []int
	handle := func(_ context.Context, b client.Batch) error {
		msgs, err := b.JSONMessages()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			var v int
			if err := json.Unmarshal(m, &v); err != nil {
				return err
			}
			seen = append(seen, v)
		}
		return nil
	}
	opts := client.ConsumeOptions{Store: store, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnError: func(err error, wait time.Duration) { t.Logf("consume: %v (retry in %v)", err, wait) }}

	// First run: up to the current end.
	stopAtEnd := opts
	stopAtEnd.StopAtEnd = true
	if err := st.Consume(ctx, handle, stopAtEnd); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := store.Load(ctx); err != nil || !ok {
		t.Fatalf("no offset stored: %v", err)
	} else if md, _ := st.Head(ctx); off != md.NextOffset {
		t.Fatalf("stored offset %s, want the tail %s", off, md.NextOffset)
	}

	// Second run: follows live, across a server restart, until the
	// stream is closed.
	appendN(10, 15)
	done := make(chan error, 1)
	go func() { done <- st.Consume(ctx, handle, opts) }()
	waitFor(t, ctx, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 15 })
	srv.Restart(t)
	appendN(15, 20)
	if _, err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 20 {
		t.Fatalf("handled %v, want 0..19 once each", seen)
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("handled %v, want 0..19 in order", seen)
		}
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in time")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
