package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segcache"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
)

// cluster is a catalog and a cold store shared by nodes, each a registry
// with its own data directory and uploader: two processes of a cluster,
// as far as the sequencer can tell.
type cluster struct {
	t     *testing.T
	cat   *catalog.Catalog
	store coldstore.Store
}

func newCluster(t *testing.T, store coldstore.Store) *cluster {
	t.Helper()
	cat, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	if store == nil {
		store = coldstore.NewMemory()
	}
	return &cluster{t: t, cat: cat, store: store}
}

// node is one registry of a cluster.
type node struct {
	*env
	id    string
	rot   *rotation.Rotator
	fence *fakeFence
}

// start runs node id on dir (a new one if empty).
func (c *cluster) start(id, dir string) *node {
	t := c.t
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cold, err := segcache.New(segcache.Config{Store: c.store})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotation.New(rotation.Config{Store: c.store, Catalog: c.cat, Logger: quietLogger(),
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fence := &fakeFence{}
	reg, err := sequencer.NewRegistry(sequencer.Config{DataDir: dir, Catalog: c.cat, Logger: quietLogger(),
		Rotation: sequencer.RotationPolicy{Enabled: true, SealBytes: 64}, Cold: cold, OnSeal: rot.OnSeal,
		Fence: fence, NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := rot.Start(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	n := &node{env: &env{t: t, dir: dir, cat: c.cat, reg: reg}, id: id, rot: rot, fence: fence}
	var once sync.Once
	n.close = func() {
		once.Do(func() {
			rot.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := reg.Close(ctx); err != nil {
				t.Errorf("Registry.Close: %v", err)
			}
		})
	}
	t.Cleanup(n.close)
	return n
}

// crash stops n the way a crash would (see sequencer.Abandon) and returns
// its data directory.
func (n *node) crash() string {
	n.rot.Close()
	sequencer.Abandon(n.reg)
	return n.dir
}

// fakeFence grants every lease and records the releases.
type fakeFence struct {
	mu       sync.Mutex
	acquired []int64
	released map[int64]bool // id -> clean
}

func (f *fakeFence) Acquire(_ context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquired = append(f.acquired, id)
	return nil
}

func (f *fakeFence) Check(int64) error { return nil }

func (f *fakeFence) Release(_ context.Context, id int64, clean bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released == nil {
		f.released = map[int64]bool{}
	}
	f.released[id] = clean
	return nil
}

func (f *fakeFence) releasedClean(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released[id]
}

// history is what a test wrote to a stream and expects to read back.
type history struct {
	path    string
	id      int64
	content string
	tail    int64
	// last is the last producer append, to retry after the handoff.
	last *sequencer.AppendRequest
	// tokens are the offset tokens of every position, which readers
	// resume from and must stay valid across the handoff.
	tokens []offset.Token
}

func producerAppend(t *testing.T, ct string, seq int64, streamSeq string, msgs ...string) *sequencer.AppendRequest {
	return &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(msgs...),
		Producer: &protocol.Producer{ID: "writer", Epoch: 1, Seq: seq}, StreamSeq: streamSeq}
}

// write fills path on n: plain appends, producer appends with Stream-Seq,
// enough to seal a few segments and leave some data in the open one.
func (n *node) write(path, ct string, closeIt bool) history {
	t := n.t
	t.Helper()
	n.createStream(path, ct)
	h := history{path: path}
	for i := range 5 {
		msg := fmt.Sprintf(`"plain-%02d-%s"`, i, path)
		n.appendMsgs(path, ct, msg)
		h.content += msg
	}
	for seq := range int64(4) {
		msg := fmt.Sprintf(`"prod-%02d-%s"`, seq, path)
		req := producerAppend(t, ct, seq, fmt.Sprintf("s%03d", seq), msg)
		req.Close = closeIt && seq == 3
		res, err := n.tryAppend(path, req)
		if err != nil || res.Outcome != sequencer.Appended {
			t.Fatalf("producer append %d to %s: %+v, %v", seq, path, res, err)
		}
		h.content += msg
		h.last = req
	}
	hd := n.acquire(path)
	h.id, h.tail = hd.ID(), hd.Snapshot().Tail
	h.tokens = n.tokens(path, h.tail)
	return h
}

// tokens returns the offset tokens of positions 0 to tail of path.
func (n *node) tokens(path string, tail int64) []offset.Token {
	out := make([]offset.Token, tail+1)
	for p := range out {
		out[p] = n.tokenAt(path, int64(p))
	}
	return out
}

// check verifies on n that the stream continues h unchanged: the same
// bytes at the same positions, the producer's last append a duplicate,
// an old Stream-Seq refused, closure kept; then, unless closed, that the
// next append starts at the old tail.
func (n *node) check(h history, closed bool) {
	t := n.t
	t.Helper()
	if got := n.content(h.path); got != h.content {
		t.Fatalf("%s on %s: content %q, want %q", h.path, n.id, got, h.content)
	}
	if got := n.tokens(h.path, h.tail); h.tokens != nil && !slices.Equal(got, h.tokens) {
		t.Fatalf("%s on %s: offset tokens %v, want %v", h.path, n.id, got, h.tokens)
	}
	hd := n.acquire(h.path)
	if snap := hd.Snapshot(); snap.Tail != h.tail || snap.Closed != closed {
		t.Fatalf("%s on %s: tail %d closed %v, want %d %v", h.path, n.id, snap.Tail, snap.Closed, h.tail, closed)
	}
	res, err := n.tryAppend(h.path, h.last)
	if err != nil || res.Outcome != sequencer.Duplicate || res.Seq != h.last.Producer.Seq {
		t.Fatalf("%s on %s: retry of the last producer append = %+v, %v, want a duplicate", h.path, n.id, res, err)
	}
	ct := hd.Snapshot().ContentType
	if closed {
		_, err := n.tryAppend(h.path, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(`"late"`)})
		wantKind(t, err, sequencer.KindClosed)
		return
	}
	_, err = n.tryAppend(h.path, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(`"old-seq"`), StreamSeq: "s003"})
	wantKind(t, err, sequencer.KindConflict)
	res, err = n.tryAppend(h.path, producerAppend(t, ct, h.last.Producer.Seq+1, "s100", `"next"`))
	if err != nil || res.Outcome != sequencer.Appended || res.Start != h.tail {
		t.Fatalf("%s on %s: next append = %+v, %v, want appended at %d", h.path, n.id, res, err, h.tail)
	}
}

func TestHandoffContinuesOnAnotherNode(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start("a", ""), c.start("b", "")
	plain := a.write("plain", octet, false)
	js := a.write("json", jsonT, false)
	closed := a.write("closed", textT, true)
	a.createStream("empty", octet)
	empty := history{path: "empty", id: a.acquire("empty").ID()}

	// b holds none of them, and nothing says they are handed off.
	_, err := b.reg.Acquire(t.Context(), "plain", false)
	if !errors.Is(err, sequencer.ErrNotLocal) {
		t.Fatalf("Acquire on a node without the hot log = %v, want ErrNotLocal", err)
	}

	var reports []sequencer.DrainProgress
	p, err := a.reg.Drain(t.Context(), 2, func(p sequencer.DrainProgress) { reports = append(reports, p) })
	if err != nil || p.Total != 4 || p.HandedOff != 4 || p.Failed != 0 {
		t.Fatalf("Drain = %+v, %v, want 4 handed off", p, err)
	}
	if len(reports) != 4 || reports[3].HandedOff != 4 {
		t.Errorf("drain progress reports = %+v, want 4 ending at 4 handed off", reports)
	}
	for _, h := range []history{plain, js, closed, empty} {
		if files, err := hotlog.Existing(a.reg.StreamPath(h.id)); err != nil || len(files) != 0 {
			t.Errorf("%s: hot log files left on the old node: %v, %v", h.path, files, err)
		}
		if !a.fence.releasedClean(h.id) {
			t.Errorf("%s: lease not released clean", h.path)
		}
		if ho, err := c.cat.GetHandoff(t.Context(), h.id); err != nil || !ho.Complete {
			t.Errorf("%s: handoff state %+v, %v, want complete", h.path, ho, err)
		}
	}
	// A draining node takes nothing new, handed-off streams included.
	_, err = a.reg.Acquire(t.Context(), "plain", false)
	if !errors.Is(err, sequencer.ErrDraining) {
		t.Errorf("Acquire of a handed-off stream on the draining node = %v, want ErrDraining", err)
	}
	_, err = a.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "new"})
	if !errors.Is(err, sequencer.ErrDraining) {
		t.Errorf("Create on the draining node = %v, want ErrDraining", err)
	}

	b.check(plain, false)
	b.check(js, false)
	b.check(closed, true)
	if got := b.content("empty"); got != "" {
		t.Errorf("empty stream on b: %q", got)
	}
	b.appendMsgs("empty", octet, "first")
	for _, h := range []history{plain, js, closed, empty} {
		if _, err := c.cat.GetHandoff(t.Context(), h.id); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("%s: handoff state after continuing = %v, want cleared", h.path, err)
		}
	}
	// And back again: b hands them off, a third node continues.
	b.appendMsgs("plain", octet, "more")
	plain.content += `"next"more`
	plain.tail += int64(len(`"next"more`))
	plain.last = producerAppend(t, octet, plain.last.Producer.Seq+1, "s100", `"next"`)
	if _, err := b.reg.Drain(t.Context(), 4, nil); err != nil {
		t.Fatal(err)
	}
	d := c.start("d", "")
	if got := d.content("plain"); got != plain.content {
		t.Fatalf("plain after two handoffs: %q, want %q", got, plain.content)
	}
	if res, err := d.tryAppend("plain", plain.last); err != nil || res.Outcome != sequencer.Duplicate {
		t.Fatalf("retry after two handoffs = %+v, %v, want a duplicate", res, err)
	}
}

// TestHandoffRefusesWritesWhileUploading holds the uploads back so that
// the handoff waits for them: appends meanwhile get 503.
func TestHandoffRefusesWritesWhileUploading(t *testing.T) {
	gate := &gatedStore{Store: coldstore.NewMemory(), open: make(chan struct{})}
	c := newCluster(t, gate)
	a := c.start("a", "")
	h := a.write("s", octet, false)
	done := make(chan error, 1)
	go func() { done <- a.reg.Handoff(context.Background(), h.id) }()
	eventually(t, 5*time.Second, "appends refused", func() bool {
		res, err := a.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x")})
		if err == nil { // before the handoff froze the stream
			h.content += "x"
			h.tail = res.Tail.Position
			h.tokens = nil // checked by the other tests
		}
		return kindOf(err) == sequencer.KindUnavailable
	})
	close(gate.open)
	if err := <-done; err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	c.start("b", "").check(h, false)
}

// gatedStore holds every Put until open is closed.
type gatedStore struct {
	coldstore.Store
	open chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Put(ctx, key, r, size)
}

// TestHandoffCrashAtEachStep stops a handoff after each of its steps as a
// crash would, restarts the node on its directory and checks that the
// stream is served by exactly one node with its whole history, and that
// a drain of the restarted node then hands it off.
func TestHandoffCrashAtEachStep(t *testing.T) {
	steps := []struct {
		step string
		// handedOff: the other node may continue right after the crash.
		handedOff bool
	}{
		{"quiesced", false},
		{"stopped", false},
		{"saved", false},
		{"removed", false},
		{"completed", true},
	}
	for _, tc := range steps {
		t.Run(tc.step, func(t *testing.T) {
			c := newCluster(t, nil)
			a := c.start("a", "")
			h := a.write("s", octet, false)
			crash := errors.New("crash")
			sequencer.SetHandoffFault(a.reg, func(step string) error {
				if step == tc.step {
					return crash
				}
				return nil
			})
			if err := a.reg.Handoff(t.Context(), h.id); !errors.Is(err, crash) {
				t.Fatalf("Handoff = %v, want the crash", err)
			}
			a = c.start("a", a.crash())
			b := c.start("b", "")
			if !tc.handedOff {
				_, err := b.reg.Acquire(t.Context(), "s", false)
				if !errors.Is(err, sequencer.ErrNotLocal) {
					t.Fatalf("Acquire on the other node after a crash at %s = %v, want ErrNotLocal", tc.step, err)
				}
				// The old node still serves it, unchanged.
				if got := a.content("s"); got != h.content {
					t.Fatalf("content on the restarted node: %q, want %q", got, h.content)
				}
				if _, err := a.reg.Drain(t.Context(), 1, nil); err != nil {
					t.Fatalf("Drain after the restart: %v", err)
				}
			}
			b.check(h, false)
			if files, err := hotlog.Existing(a.reg.StreamPath(h.id)); err != nil || len(files) != 0 {
				t.Errorf("hot log left on the old node: %v, %v", files, err)
			}
		})
	}
}

// TestHandoffOfFork hands off a fork and its source; the fork continues
// with its inherited prefix.
func TestHandoffOfFork(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	src := a.write("src", octet, false)
	a.fork("fork", "src", nil, 0)
	a.appendMsgs("fork", octet, "own")
	want := src.content + "own"
	if _, err := a.reg.Drain(t.Context(), 2, nil); err != nil {
		t.Fatal(err)
	}
	b := c.start("b", "")
	if got := b.content("fork"); got != want {
		t.Fatalf("fork after handoff: %q, want %q", got, want)
	}
	res := b.appendMsgs("fork", octet, "more")
	if res.Start != int64(len(want)) {
		t.Errorf("next append to the fork starts at %d, want %d", res.Start, len(want))
	}
	if got := b.content("src"); got != src.content {
		t.Errorf("source after handoff: %q, want %q", got, src.content)
	}
	if !slices.Contains(b.fence.acquired, src.id) {
		t.Errorf("b continued the source without acquiring its lease")
	}
}
