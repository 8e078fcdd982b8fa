package rotation

import (
	"testing"
	"time"
)

// TestExpedite: jobs of expedited streams are picked first by every
// worker, stream by stream in the order they were expedited, and the
// handoff workers pick nothing else.
func TestExpedite(t *testing.T) {
	r := &Rotator{queued: map[job]bool{}, queuedAt: map[job]time.Time{}, urgent: map[int64]uint64{},
		wake: make(chan struct{}, 1), wakeUrgent: make(chan struct{}, 1), started: true}
	for stream := range int64(50) {
		r.enqueue(job{stream, 1}, time.Time{})
	}
	<-r.wakeUrgent
	r.enqueue(job{9, 2}, time.Time{})
	r.Expedite(9, true)
	r.Expedite(7, true)
	select {
	case <-r.wakeUrgent:
	default:
		t.Fatal("Expedite did not wake the handoff workers")
	}
	// The stream expedited first, its segments in order, then the next.
	for _, want := range []job{{9, 1}, {9, 2}, {7, 1}} {
		if j, ok := r.next(false); !ok || j != want {
			t.Fatalf("next(false) = %v, %v; want %v", j, ok, want)
		}
	}
	if j, ok := r.next(true); ok {
		t.Fatalf("a handoff worker picked %v, no job of an expedited stream is idle", j)
	}
	r.done(job{7, 1}, nil)
	r.Expedite(7, false)
	r.Expedite(9, false)
	if j, ok := r.next(false); !ok || j.stream == 7 || j.stream == 9 {
		t.Fatalf("next(false) = %v, %v; want another stream's job", j, ok)
	}
	if _, ok := r.next(true); ok {
		t.Fatal("a handoff worker picked a job of a stream not expedited")
	}
}
