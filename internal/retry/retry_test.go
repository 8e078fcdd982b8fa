package retry

import (
	"errors"
	"testing"
	"time"
)

func TestLoop(t *testing.T) {
	stop, wake := make(chan struct{}), make(chan struct{}, 1)
	// Two failures, one success, then no work until woken, then stop.
	results := []error{errors.New("a"), errors.New("b"), nil}
	var steps int
	var backoffs []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop{Stop: stop, Wake: wake, Min: time.Millisecond, Max: 3 * time.Millisecond}.Run(func() (bool, error) {
			steps++
			if steps <= len(results) {
				return true, results[steps-1]
			}
			if steps == len(results)+2 {
				close(stop)
			}
			return false, nil
		}, func(err error, retryIn time.Duration) { backoffs = append(backoffs, retryIn) })
	}()
	wake <- struct{}{}
	<-done
	if steps != len(results)+2 {
		t.Errorf("%d steps, want %d", steps, len(results)+2)
	}
	if len(backoffs) != 2 || backoffs[0] != time.Millisecond || backoffs[1] != 2*time.Millisecond {
		t.Errorf("backoffs %v, want [1ms 2ms]", backoffs)
	}
}
