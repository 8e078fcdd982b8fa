package rotation

import (
	"testing"
	"time"
)

// TestExpedite: jobs of expedited streams are picked first by every
// worker, and the handoff workers pick nothing else.
func TestExpedite(t *testing.T) {
	r := &Rotator{queued: map[job]bool{}, queuedAt: map[job]time.Time{}, urgent: map[int64]bool{},
		wake: make(chan struct{}, 1), wakeUrgent: make(chan struct{}, 1), started: true}
	for stream := range int64(50) {
		r.enqueue(job{stream, 1}, time.Time{})
	}
	<-r.wakeUrgent
	r.Expedite(7, true)
	r.Expedite(9, true)
	select {
	case <-r.wakeUrgent:
	default:
		t.Fatal("Expedite did not wake the handoff workers")
	}
	got := map[int64]bool{}
	for range 2 {
		j, ok := r.next(false)
		if !ok || (j.stream != 7 && j.stream != 9) {
			t.Fatalf("next(false) = %v, %v; want a job of the expedited streams 7 or 9", j, ok)
		}
		got[j.stream] = true
	}
	if len(got) != 2 {
		t.Fatalf("picked %v twice", got)
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
