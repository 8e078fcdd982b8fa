package sequencer

import (
	"sync"
	"testing"
)

// TestSnapshotChanged checks the lazily made Changed channel: a waiter
// that asked before the snapshot was superseded is woken, one that asks
// after gets a closed channel, and the two racing never lose a wakeup.
func TestSnapshotChanged(t *testing.T) {
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	t.Run("asked before", func(t *testing.T) {
		s := &Snapshot{}
		c := s.Changed()
		if closed(c) || s.Changed() != c {
			t.Fatal("a current snapshot's Changed must be open and the same for every caller")
		}
		s.supersede()
		if !closed(c) {
			t.Fatal("supersede did not close the channel a waiter holds")
		}
		s.supersede() // a second call is harmless
	})
	t.Run("asked after", func(t *testing.T) {
		s := &Snapshot{}
		s.supersede()
		if !closed(s.Changed()) {
			t.Fatal("a superseded snapshot's Changed must be closed")
		}
	})
	t.Run("racing", func(t *testing.T) {
		for range 1000 {
			s := &Snapshot{}
			var wg sync.WaitGroup
			chans := make([]<-chan struct{}, 4)
			for i := range chans {
				wg.Go(func() { chans[i] = s.Changed() })
			}
			wg.Go(s.supersede)
			wg.Wait()
			for _, c := range chans {
				if !closed(c) {
					t.Fatal("a waiter racing supersede was not woken")
				}
			}
		}
	})
}
