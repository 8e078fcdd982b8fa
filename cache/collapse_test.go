package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestCollapser(maxEntries int, maxBytes int64) *Collapser[int, string] {
	return NewCollapser[int](CollapserConfig[string]{MaxEntries: maxEntries, MaxBytes: maxBytes,
		Size: func(s string) int64 { return int64(len(s)) }})
}

// TestCollapserConcurrent: callers that overlap the run share it.
func TestCollapserConcurrent(t *testing.T) {
	c := newTestCollapser(0, 0)
	gen := make(chan struct{})
	const n = 100
	release := make(chan struct{})
	var runs atomic.Int32
	fn := func(context.Context) (string, error) {
		runs.Add(1)
		<-release
		return "v", nil
	}
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := c.Do(context.Background(), 1, gen, 7, fn)
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	// Wait until every caller has joined the run, then let it finish.
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Shared < n-1; {
		if time.Now().After(deadline) {
			t.Fatalf("callers did not join: %+v", c.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "v" {
			t.Fatalf("got %q", v)
		}
	}
	if st := c.Stats(); runs.Load() != 1 || st.Computed != 1 || st.Shared != n-1 || st.Kept != 1 || st.KeptBytes != 1 {
		t.Fatalf("runs %d, stats %+v", runs.Load(), st)
	}
}

// TestCollapserGenerations: a result is served to late arrivals exactly
// while its generation is current.
func TestCollapserGenerations(t *testing.T) {
	c := newTestCollapser(0, 0)
	var runs int
	fn := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { runs++; return v, nil }
	}
	ctx := context.Background()
	gen1 := make(chan struct{})
	mustDo := func(sc int64, gen chan struct{}, key int, v string, want string, wantShared bool) {
		t.Helper()
		got, shared, err := c.Do(ctx, sc, gen, key, fn(v))
		if err != nil || got != want || shared != wantShared {
			t.Fatalf("Do(%d, %d) = %q, %v, %v; want %q, %v", sc, key, got, shared, err, want, wantShared)
		}
	}
	mustDo(1, gen1, 0, "a", "a", false)
	mustDo(1, gen1, 0, "x", "a", true) // late arrival: kept result
	mustDo(1, gen1, 1, "b", "b", false)
	mustDo(2, gen1, 0, "c", "c", false) // other scope
	if runs != 3 || c.Stats().Kept != 3 {
		t.Fatalf("runs %d, stats %+v", runs, c.Stats())
	}
	// The generation is superseded: its results are dropped at the first
	// call of the next one.
	close(gen1)
	gen2 := make(chan struct{})
	mustDo(1, gen2, 0, "d", "d", false)
	if st := c.Stats(); st.Kept != 2 || st.KeptBytes != 2 {
		t.Fatalf("after new generation: %+v", st)
	}
	mustDo(1, gen2, 0, "x", "d", true)
	// A caller of the old generation runs alone and is not kept.
	mustDo(1, gen1, 5, "old", "old", false)
	mustDo(1, gen1, 5, "old2", "old2", false)
	// Another open generation (a new owner of the scope) replaces it.
	gen3 := make(chan struct{})
	mustDo(1, gen3, 0, "e", "e", false)
	mustDo(1, gen3, 0, "x", "e", true)
	if st := c.Stats(); st.Kept != 2 || st.Computed != 7 || st.Shared != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCollapserErrorsAreNotKept(t *testing.T) {
	c := newTestCollapser(0, 0)
	gen := make(chan struct{})
	boom := errors.New("boom")
	_, _, err := c.Do(context.Background(), 1, gen, 1, func(context.Context) (string, error) { return "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	v, shared, err := c.Do(context.Background(), 1, gen, 1, func(context.Context) (string, error) { return "ok", nil })
	if err != nil || v != "ok" || shared {
		t.Fatalf("retry: %q %v %v", v, shared, err)
	}
	if st := c.Stats(); st.Computed != 2 || st.Kept != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCollapserBounds: kept results stay within MaxEntries and MaxBytes,
// least recently used first out; oversized results are not kept.
func TestCollapserBounds(t *testing.T) {
	c := newTestCollapser(3, 10)
	gen := make(chan struct{})
	ctx := context.Background()
	val := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return v, nil }
	}
	for k := range 3 {
		c.Do(ctx, int64(k), gen, k, val("ab"))
	}
	c.Do(ctx, 0, gen, 0, val("zz")) // touch 0: 1 is now the oldest
	c.Do(ctx, 3, gen, 3, val("cd"))
	if st := c.Stats(); st.Kept != 3 || st.KeptBytes != 6 {
		t.Fatalf("entry bound: %+v", st)
	}
	if _, shared, _ := c.Do(ctx, 1, gen, 1, val("new")); shared {
		t.Fatal("least recently used entry was kept")
	}
	if v, shared, _ := c.Do(ctx, 0, gen, 0, val("new")); !shared || v != "ab" {
		t.Fatalf("recently used entry was evicted: %q %v", v, shared)
	}
	// Bytes: 9 bytes push everything else out.
	c.Do(ctx, 9, gen, 9, val("123456789"))
	if st := c.Stats(); st.Kept != 1 || st.KeptBytes != 9 {
		t.Fatalf("byte bound: %+v", st)
	}
	// Larger than MaxBytes: shared with nobody later, not kept.
	c.Do(ctx, 10, gen, 10, val("12345678901"))
	if _, shared, _ := c.Do(ctx, 10, gen, 10, val("x")); shared {
		t.Fatal("oversized result was kept")
	}
	if st := c.Stats(); st.KeptBytes > 10 || st.Kept > 3 {
		t.Fatalf("over bounds: %+v", st)
	}
}

// TestCollapserWaiterCancel: a waiter that leaves does not cancel the run
// the others wait for.
func TestCollapserWaiterCancel(t *testing.T) {
	c := newTestCollapser(0, 0)
	gen := make(chan struct{})
	started, release := make(chan struct{}), make(chan struct{})
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Do(leaderCtx, 1, gen, 1, func(ctx context.Context) (string, error) {
			close(started)
			<-release
			return "v", ctx.Err()
		})
		done <- err
	}()
	<-started
	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	cancelWaiter()
	if _, _, err := c.Do(waiterCtx, 1, gen, 1, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v", err)
	}
	cancelLeader()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the run saw the leader's cancellation: %v", err)
	}
	if v, shared, err := c.Do(context.Background(), 1, gen, 1, nil); v != "v" || !shared || err != nil {
		t.Fatalf("kept: %q %v %v", v, shared, err)
	}
}

func TestCollapserPanic(t *testing.T) {
	c := newTestCollapser(0, 0)
	gen := make(chan struct{})
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		defer func() { _ = recover() }()
		c.Do(context.Background(), 1, gen, 1, func(context.Context) (string, error) {
			close(started)
			<-release
			panic("boom")
		})
	}()
	<-started
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Do(context.Background(), 1, gen, 1, nil)
		errc <- err
	}()
	for c.Stats().Shared == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-errc; !errors.Is(err, errPanicked) {
		t.Fatalf("waiter of a panicked run: %v", err)
	}
	if st := c.Stats(); st.Kept != 0 {
		t.Fatalf("panicked run was kept: %+v", st)
	}
}

// BenchmarkCollapserSingle is the cost a lone reader pays: every call is
// a miss that runs, is kept, and pushes an older result out.
func BenchmarkCollapserSingle(b *testing.B) {
	c := newTestCollapser(1024, 0)
	ctx := context.Background()
	fn := func(context.Context) (string, error) { return "v", nil }
	gen := make(chan struct{})
	for i := range b.N {
		c.Do(ctx, int64(i%64), gen, i, fn)
	}
}

// BenchmarkDirect is the baseline of BenchmarkCollapserSingle: the run
// alone.
func BenchmarkDirect(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) (string, error) { return "v", nil }
	for range b.N {
		fn(context.WithoutCancel(ctx))
	}
}

// BenchmarkCollapserHit is a late arrival served the kept result.
func BenchmarkCollapserHit(b *testing.B) {
	c := newTestCollapser(0, 0)
	ctx := context.Background()
	gen := make(chan struct{})
	fn := func(context.Context) (string, error) { return "v", nil }
	c.Do(ctx, 1, gen, 0, fn)
	b.ResetTimer()
	for range b.N {
		c.Do(ctx, 1, gen, 0, fn)
	}
}
