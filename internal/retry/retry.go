// Package retry runs the background work loops of the cold tier (uploads,
// collection of deleted streams): take a job, run it, and back off after a
// failure so that an unreachable store is not hammered.
package retry

import "time"

// Loop is a worker loop. A zero Min or Max means no backoff.
type Loop struct {
	Stop <-chan struct{} // closed to end Run
	Wake <-chan struct{} // signalled when new work may be there
	Min  time.Duration   // first backoff after a failure
	Max  time.Duration   // largest backoff; it doubles per failure up to this
}

// Run calls step until Stop is closed. step runs one job and reports
// whether there was one and its error; without a job, Run waits for Wake.
// After a failed job it calls failed with the error and the backoff, waits
// that long and then steps again; a job that succeeds resets the backoff.
func (l Loop) Run(step func() (ran bool, err error), failed func(err error, retryIn time.Duration)) {
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-l.Stop:
				return
			case <-time.After(backoff):
			}
		}
		ran, err := step()
		switch {
		case !ran:
			select {
			case <-l.Stop:
				return
			case <-l.Wake:
			}
		case err != nil:
			backoff = min(max(backoff*2, l.Min), l.Max)
			failed(err, backoff)
		default:
			backoff = 0
		}
	}
}
