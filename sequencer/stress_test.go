package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// TestActorParkingStress runs random operations from many goroutines on a
// few streams whose actors park, wake, seal by age, get evicted (MaxOpen
// and the idle timeout), flush and checkpoint all the time, and checks
// what the parking invariants (actor.go) promise: no op is left in a
// parked actor's mailbox (every call returns), a commit wakes the readers
// of the snapshot before it (Changed), and every acknowledged append is
// stored exactly once, in its writer's order, also after a restart. Run
// it with -race and -tags invariants.
func TestActorParkingStress(t *testing.T) {
	const (
		streams = 12
		workers = 12
		opsEach = 170
		waitFor = 5 * time.Second // a lost wakeup shows as this long a wait
	)
	if testing.Short() {
		t.Skip("stress test")
	}
	dir := t.TempDir()
	mod := func(c *sequencer.Config) {
		c.MaxOpen = 4
		c.IdleTimeout = time.Millisecond
		c.Rotation = sequencer.RotationPolicy{Enabled: true, SealAge: time.Millisecond}
		c.Journal.FlushBatches = 2
		c.Journal.CheckpointAge = 20 * time.Millisecond
	}
	e := openEnv(t, dir, mod)
	ct := mustCT(t, textT)
	paths := make([]string, streams)
	for i := range paths {
		paths[i] = fmt.Sprintf("stress/%d", i)
		e.createStream(paths[i], textT)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var (
		mu    sync.Mutex
		acked = map[string][]string{} // path -> acknowledged messages
	)
	ack := func(path, msg string) {
		mu.Lock()
		acked[path] = append(acked[path], msg)
		mu.Unlock()
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range opsEach {
				if err := stressOp(ctx, e.reg, rng, paths, w, i, ct, ack, waitFor); err != nil {
					errs <- fmt.Errorf("worker %d, op %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	check := func(e *env, when string) {
		t.Helper()
		for _, p := range paths {
			checkStressStream(t, when, p, e.content(p), acked[p])
		}
	}
	check(e, "before restart")
	e.close()
	check(openEnv(t, dir, mod), "after restart")
}

// stressOp runs one random operation of worker w (its i-th).
func stressOp(ctx context.Context, reg *sequencer.Registry, rng *rand.Rand, paths []string, w, i int,
	ct protocol.ContentType, ack func(path, msg string), waitFor time.Duration) error {
	path := paths[rng.IntN(len(paths))]
	msg := fmt.Sprintf("w%02d-%04d;", w, i)
	acquire := func() (*sequencer.Handle, error) {
		h, err := reg.Acquire(ctx, path, true)
		if err != nil {
			return nil, fmt.Errorf("acquire %s: %w", path, err)
		}
		return h, nil
	}
	appendMsg := func() error {
		h, err := acquire()
		if err != nil {
			return err
		}
		defer h.Release()
		if _, err := h.Append(ctx, &sequencer.AppendRequest{ContentType: ct, Messages: [][]byte{[]byte(msg)}}); err != nil {
			return fmt.Errorf("append to %s: %w", path, err)
		}
		ack(path, msg)
		return nil
	}
	switch n := rng.IntN(100); {
	case n < 45: // a plain append
		return appendMsg()
	case n < 65: // a reader of the snapshot before an append must be woken
		// The reader holds its handle while it waits, as a long poll
		// does: the actor cannot be evicted under it.
		h, err := acquire()
		if err != nil {
			return err
		}
		defer h.Release()
		changed := h.Snapshot().Changed()
		if err := appendMsg(); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-time.After(waitFor):
			return fmt.Errorf("%s: a reader of the snapshot before an append was not woken", path)
		}
	case n < 85: // reads from a random position while the stream seals and moves
		h, err := acquire()
		if err != nil {
			return err
		}
		defer h.Release()
		snap := h.Snapshot()
		pos := rng.Int64N(snap.Tail + 1)
		for range 4 {
			if pos >= snap.Tail {
				break
			}
			c, err := reg.ReadChunk(ctx, snap, pos, 1+rng.IntN(256))
			if err != nil {
				return fmt.Errorf("read %s at %d: %w", path, pos, err)
			}
			if c.End <= pos {
				return fmt.Errorf("read %s at %d made no progress", path, pos)
			}
			pos = c.End
		}
	case n < 90: // a checkpoint: every stream with unwritten batches flushes
		if err := sequencer.Checkpoint(reg); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	case n < 95: // a write of one stream's hot log
		h, err := acquire()
		if err != nil {
			return err
		}
		defer h.Release()
		if err := sequencer.FlushHotLog(h); err != nil {
			return fmt.Errorf("flush %s: %w", path, err)
		}
	default: // a stream created, closed (it seals first when it starts again) and deleted
		churn := fmt.Sprintf("churn/%d/%d", w, i)
		res, err := reg.Create(ctx, &sequencer.CreateRequest{Path: churn, ContentType: &ct, Initial: [][]byte{[]byte(msg)}})
		if err != nil {
			return fmt.Errorf("create %s: %w", churn, err)
		}
		_, err = res.Handle.Append(ctx, &sequencer.AppendRequest{Close: true})
		res.Handle.Release()
		if err != nil {
			return fmt.Errorf("close %s: %w", churn, err)
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // let it be evicted, sometimes
		if err := reg.Delete(ctx, churn); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("delete %s: %w", churn, err)
		}
	}
	return nil
}

// checkStressStream checks that content holds every acknowledged message
// of a stream exactly once, each writer's in its order, and nothing else.
func checkStressStream(t *testing.T, when, path, content string, acked []string) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(content, ";"), ";")
	if content == "" {
		got = nil
	}
	if len(got) != len(acked) {
		t.Errorf("%s: %s holds %d messages, %d were acknowledged", when, path, len(got), len(acked))
	}
	seen := map[string]bool{}
	last := map[string]string{} // writer -> its last message
	for _, m := range got {
		if seen[m] {
			t.Errorf("%s: %s holds %q twice", when, path, m)
		}
		seen[m] = true
		writer, _, _ := strings.Cut(m, "-")
		if prev := last[writer]; prev != "" && m <= prev {
			t.Errorf("%s: %s holds %q after %q", when, path, m, prev)
		}
		last[writer] = m
	}
	for _, m := range acked {
		if !seen[strings.TrimSuffix(m, ";")] {
			t.Errorf("%s: %s lacks acknowledged %q", when, path, m)
		}
	}
}
