package sequencer

import (
	"math/bits"
	"sync/atomic"
)

// CommitSizeBuckets is the number of buckets of Stats.CommitSizes.
const CommitSizeBuckets = 12

// Stats are the registry's counters since it started. They are plain
// numbers so that exporters (Prometheus, expvar, tests) need not be known
// here.
type Stats struct {
	OpenStreams int // actors running now

	Appends          int64 // append requests written to a hot log (duplicates excluded)
	AppendedMessages int64 // messages they held
	AppendedBytes    int64 // and their data bytes
	Duplicates       int64 // producer retries answered as duplicates without writing

	// Commits counts group commits that wrote at least one append;
	// CommitSizes histograms them by the number of appends they held:
	// bucket i counts commits of at most 1<<i appends (and more than
	// 1<<(i-1)); the last bucket takes everything larger. CommitAppends
	// sums their appends.
	Commits       int64
	CommitSizes   [CommitSizeBuckets]int64
	CommitAppends int64

	StreamsCreated int64 // streams created (forks included)
	StreamsDeleted int64 // streams deleted, by DELETE or by expiry
	StreamsExpired int64 // of those, deleted by expiry
}

// counters are updated by actors once per group commit, not per append, so
// that they cost nothing measurable on the write path.
type counters struct {
	appends, messages, bytes, duplicates atomic.Int64
	commits, commitAppends               atomic.Int64
	commitSizes                          [CommitSizeBuckets]atomic.Int64
	created, deleted, expired            atomic.Int64
}

// commitSizeBucket returns the bucket of a commit holding n ≥ 1 appends.
func commitSizeBucket(n int) int {
	return min(bits.Len(uint(n-1)), CommitSizeBuckets-1)
}

// countBatch records what one processed mailbox batch did: committed
// tells whether it wrote a transaction, with messages and bytes in it.
func (c *counters) countBatch(appended []appendDone, committed bool, messages int, bytes int64) {
	appends, dups := 0, 0
	for i := range appended {
		p := &appended[i]
		if p.err != nil {
			continue
		}
		switch p.res.Outcome {
		case Appended:
			appends++
		case Duplicate:
			dups++
		}
	}
	if dups > 0 {
		c.duplicates.Add(int64(dups))
	}
	if appends == 0 {
		return
	}
	c.appends.Add(int64(appends))
	if !committed {
		return // idempotent closes of closed streams: nothing written
	}
	c.messages.Add(int64(messages))
	c.bytes.Add(bytes)
	c.commits.Add(1)
	c.commitAppends.Add(int64(appends))
	c.commitSizes[commitSizeBucket(appends)].Add(1)
}

// Stats returns the registry's counters.
func (r *Registry) Stats() Stats {
	c := &r.counters
	s := Stats{
		OpenStreams:      r.OpenCount(),
		Appends:          c.appends.Load(),
		AppendedMessages: c.messages.Load(),
		AppendedBytes:    c.bytes.Load(),
		Duplicates:       c.duplicates.Load(),
		Commits:          c.commits.Load(),
		CommitAppends:    c.commitAppends.Load(),
		StreamsCreated:   c.created.Load(),
		StreamsDeleted:   c.deleted.Load(),
		StreamsExpired:   c.expired.Load(),
	}
	for i := range s.CommitSizes {
		s.CommitSizes[i] = c.commitSizes[i].Load()
	}
	return s
}
