package sequencer_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/sequencer"
)

// TestIdleActorsPark checks that an actor with nothing queued holds no
// goroutine, and that the next op starts one: appends, reads and the
// final stop work on streams whose actors parked.
func TestIdleActorsPark(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	before := runtime.NumGoroutine()
	for i := range n {
		p := fmt.Sprintf("park/%d", i)
		e.createStream(p, "text/plain")
		e.appendMsgs(p, "text/plain", "a")
	}
	// The actors stay open (the idle timeout is far), but parked.
	eventually(t, 5*time.Second, "parked actors", func() bool {
		return runtime.NumGoroutine()-before < n/4
	})
	for i := range n {
		p := fmt.Sprintf("park/%d", i)
		e.appendMsgs(p, "text/plain", "b")
		if got := e.content(p); got != "ab" {
			t.Fatalf("%s holds %q, want %q", p, got, "ab")
		}
	}
}

// TestSealByAge checks that an open segment is sealed once SealAge old,
// by the actor of an idle stream too (its timer sends the actor an op),
// and that each new segment gets its own deadline.
func TestSealByAge(t *testing.T) {
	const age = 50 * time.Millisecond
	e := newEnv(t, func(c *sequencer.Config) { c.Rotation = sequencer.RotationPolicy{SealAge: age} })
	e.createStream("aged", "text/plain")
	h := e.acquire("aged")
	for i, msg := range []string{"a", "b"} {
		e.appendMsgs("aged", "text/plain", msg)
		eventually(t, 5*time.Second, fmt.Sprintf("seal %d by age", i+1), func() bool {
			return len(h.Snapshot().Segments) == i+1
		})
	}
	if got := e.content("aged"); got != "ab" {
		t.Fatalf("stream holds %q, want %q", got, "ab")
	}
	time.Sleep(3 * age)
	if snap := h.Snapshot(); len(snap.Segments) != 2 || snap.OpenSeg != 2 {
		t.Fatalf("an empty open segment was sealed: %d sealed, open segment %d", len(snap.Segments), snap.OpenSeg)
	}
}
