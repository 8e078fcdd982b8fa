package sequencer_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/sequencer"
)

// TestEvictionCompactsHotLog checks that the space that trims leave in a
// hot log for later appends goes back to the file system once the stream
// is evicted as idle.
func TestEvictionCompactsHotLog(t *testing.T) {
	e := newEnv(t, func(c *sequencer.Config) {
		c.IdleTimeout = 50 * time.Millisecond
		c.Rotation = sequencer.RotationPolicy{Enabled: true, SealBytes: 1 << 20}
	})
	e.createStream("s", octet)
	big := strings.Repeat("x", 1<<20)
	for range 3 {
		e.appendMsgs("s", octet, big) // seals a segment each
	}
	h, err := e.reg.Acquire(t.Context(), "s", false)
	if err != nil {
		t.Fatal(err)
	}
	id := h.ID()
	segs := h.Snapshot().Segments
	if len(segs) != 3 {
		t.Fatalf("%d sealed segments, want 3", len(segs))
	}
	h.Release()
	st, release, err := e.reg.AcquireID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range segs {
		if err := st.Trim(t.Context(), g.Seg, "k", 0); err != nil {
			t.Fatal(err)
		}
	}
	release()
	size := func() int64 {
		var n int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(e.reg.StreamPath(id) + suffix); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	if n := size(); n < 3<<20 {
		t.Fatalf("hot log is %d bytes before eviction; the test needs the trimmed space still in it", n)
	}
	eventually(t, 5*time.Second, "idle actor eviction", func() bool { return e.reg.OpenCount() == 0 })
	if n := size(); n >= 1<<20 {
		t.Errorf("hot log is %d bytes after eviction, want it compacted below 1 MiB", n)
	}
	if tail := e.acquire("s").Snapshot().Tail; tail != 3<<20 {
		t.Errorf("tail after reopening = %d, want %d", tail, 3<<20)
	}
}
