package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/sequencer"
)

// testFence is a Fence whose answers the test sets.
type testFence struct {
	mu       sync.Mutex
	acquire  error
	check    error
	acquired []int64
}

func (f *testFence) set(acquire, check error) {
	f.mu.Lock()
	f.acquire, f.check = acquire, check
	f.mu.Unlock()
}

func (f *testFence) Acquire(_ context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquired = append(f.acquired, id)
	return f.acquire
}

func (f *testFence) Check(int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.check
}

func (f *testFence) Release(context.Context, int64, bool) error { return nil }

// TestFence: a stream is created, its actor started and the stream
// deleted only once its lease is acquired; a fenced node acknowledges no
// append and writes nothing, and resumes when the fence lifts; a lost
// lease closes the actor, and the next actor must acquire again.
func TestFence(t *testing.T) {
	f := &testFence{}
	e := newEnv(t, func(c *sequencer.Config) { c.Fence = f })
	const path, ct = "fenced", "text/plain"
	e.createStream(path, ct)
	e.appendMsgs(path, ct, "a")
	if len(f.acquired) != 2 {
		t.Fatalf("Acquire called for %v, want twice: before the new stream's hot log, and as its actor starts", f.acquired)
	}

	f.set(nil, errors.New("lease not renewed in time"))
	_, err := e.tryAppend(path, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs("b")})
	wantKind(t, err, sequencer.KindUnavailable)
	if got := e.content(path); got != "a" {
		t.Fatalf("content while fenced = %q, want %q", got, "a")
	}
	f.set(nil, nil)
	e.appendMsgs(path, ct, "c")
	if got := e.content(path); got != "ac" {
		t.Fatalf("content after the fence lifted = %q, want %q", got, "ac")
	}

	f.set(nil, fmt.Errorf("lease passed to epoch 7: %w", sequencer.ErrNotOwner))
	_, err = e.tryAppend(path, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs("d")})
	wantKind(t, err, sequencer.KindUnavailable)
	eventually(t, 5*time.Second, "the actor of a lost stream to close", func() bool { return e.reg.OpenCount() == 0 })

	f.set(errors.New("held by n2"), nil)
	_, err = e.reg.Acquire(t.Context(), path, false)
	wantKind(t, err, sequencer.KindUnavailable)
	if err := e.reg.Delete(t.Context(), path); sequencer.KindOf(err) != sequencer.KindUnavailable {
		t.Errorf("Delete of a stream held elsewhere = %v, want KindUnavailable", err)
	}
	f.set(nil, nil)
	e.appendMsgs(path, ct, "e")
	if got := e.content(path); got != "ace" {
		t.Fatalf("content after the lease came back = %q, want %q", got, "ace")
	}
	if len(f.acquired) != 5 {
		t.Errorf("Acquire called %d times, want 5 (new stream twice, refused read and delete, again)", len(f.acquired))
	}
}

// TestFenceSweeper: in cluster mode the sweeper expires only streams this
// node owns; another node's stays for its owner to expire.
func TestFenceSweeper(t *testing.T) {
	clk := newClock()
	f := &testFence{}
	e := newEnv(t, func(c *sequencer.Config) { c.Now, c.Fence = clk.Now, f })
	e.create(&sequencer.CreateRequest{Path: "elsewhere", TTL: dur(time.Second), Initial: byteMsgs("x")})
	// From now on the stream is another node's.
	f.set(errors.New("held by n2"), errors.New("no lease here"))
	clk.Advance(2 * time.Second)
	time.Sleep(time.Second) // five sweeps
	if _, err := e.cat.Get(t.Context(), "elsewhere"); err != nil {
		t.Fatalf("stream of another node after sweeps: %v, want it kept", err)
	}
	f.set(nil, nil)
	eventually(t, 3*time.Second, "the owner's sweeper to delete the expired stream", func() bool {
		_, err := e.cat.Get(t.Context(), "elsewhere")
		return errors.Is(err, catalog.ErrNotFound)
	})
}

// TestFenceSweeperPages: in cluster mode a node's sweeper never starves
// behind other nodes' expired streams, however many come first (it read
// the first 256 expired rows cluster-wide, all another node's), and it
// leaves them alone.
func TestFenceSweeperPages(t *testing.T) {
	clk := newClock()
	f := &testFence{}
	e := newEnv(t, func(c *sequencer.Config) { c.Now, c.Fence, c.NodeID = clk.Now, f, "a" })
	ctx := t.Context()
	insert := func(path string, expires time.Time, holder string) int64 {
		t.Helper()
		id, err := e.cat.AllocateID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = e.cat.Insert(ctx, catalog.Stream{ID: id, Path: path, ContentType: "text/plain", ExpiresAt: expires, CreatedAt: clk.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.cat.AcquireLease(ctx, id, holder, time.Hour); err != nil {
			t.Fatal(err)
		}
		return id
	}
	start := clk.Now()
	const others = 300 // more than a page
	for i := range others {
		insert(fmt.Sprintf("b/%d", i), start.Add(time.Second), "b")
	}
	insert("a/mine", start.Add(2*time.Second), "a")
	clk.Advance(time.Minute)
	eventually(t, 10*time.Second, "the sweeper to expire this node's stream behind 300 of another node's", func() bool {
		_, err := e.cat.Get(ctx, "a/mine")
		return errors.Is(err, catalog.ErrNotFound)
	})
	rows, err := e.cat.ListLive(ctx, "b/", "", 0)
	if err != nil || len(rows) != others {
		t.Errorf("another node's expired streams after the sweeps: %d, %v; want all %d kept for their owner", len(rows), err, others)
	}
}

// TestCollectStale: a node of a cluster removes the hot files of streams
// another node deleted for real or leases now, and keeps those of its own
// streams, of streams no node holds, and of streams with actors here.
func TestCollectStale(t *testing.T) {
	f := &testFence{}
	mod := func(c *sequencer.Config) { c.Fence, c.NodeID = f, "a" }
	dir := t.TempDir()
	e := openEnv(t, dir, mod)
	ctx := t.Context()
	paths := []string{"gone", "moved", "free", "mine", "open"}
	for _, p := range paths {
		e.createStream(p, textT)
		e.appendMsgs(p, textT, p)
	}
	// A stop leaves streams that never wrote a file in the journal; the
	// first checkpoint after the start writes their files (through
	// actors, which the second stop closes).
	e.close()
	e = openEnv(t, dir, mod)
	if err := sequencer.Checkpoint(e.reg); err != nil {
		t.Fatal(err)
	}
	e.close()
	e = openEnv(t, dir, mod)
	ids := map[string]int64{}
	for _, p := range paths {
		row, err := e.cat.Get(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = row.ID
	}
	lease := func(path, node string) {
		t.Helper()
		if _, err := e.cat.AcquireLease(ctx, ids[path], node, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Another node deleted "gone" and took "moved"; "mine" is this
	// node's; "free" was never leased; "open" has an actor here.
	if _, err := e.cat.Delete(ctx, ids["gone"]); err != nil {
		t.Fatal(err)
	}
	lease("moved", "b")
	lease("mine", "a")
	h := e.acquire("open")
	defer h.Release()
	lease("open", "b")
	// Streams whose leases the fence holds are skipped without a look;
	// these are all judged.
	f.set(nil, errors.New("no lease held here"))

	hot := func(path string) bool {
		t.Helper()
		files, err := hotlog.Existing(e.reg.StreamPath(ids[path]))
		if err != nil {
			t.Fatal(err)
		}
		return len(files) > 0
	}
	for _, p := range paths {
		if !hot(p) {
			t.Fatalf("no hot log of %q before CollectStale", p)
		}
	}
	n, err := sequencer.CollectStale(ctx, e.reg)
	if err != nil || n != 2 {
		t.Fatalf("CollectStale = %d, %v; want 2 removed", n, err)
	}
	for _, p := range paths {
		if want := p != "gone" && p != "moved"; hot(p) != want {
			t.Errorf("hot log of %q after CollectStale: kept=%v, want %v", p, !want, want)
		}
	}
	if n, err := sequencer.CollectStale(ctx, e.reg); err != nil || n != 0 {
		t.Errorf("second CollectStale = %d, %v; want nothing left to remove", n, err)
	}
}
