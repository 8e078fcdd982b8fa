package sequencer

import "testing"

func TestCommitSizeBucket(t *testing.T) {
	tests := []struct{ n, want int }{
		{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {8, 3}, {9, 4}, {1024, 10}, {1025, 11}, {1 << 20, CommitSizeBuckets - 1},
	}
	for _, tc := range tests {
		if got := commitSizeBucket(tc.n); got != tc.want {
			t.Errorf("commitSizeBucket(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestCountBatch(t *testing.T) {
	var c counters
	pending := []appendDone{
		{res: AppendResult{Outcome: Appended}},
		{res: AppendResult{Outcome: Appended}},
		{res: AppendResult{Outcome: Duplicate}},
		{res: AppendResult{Outcome: Appended}, err: errNotFound}, // rejected
	}
	c.countBatch(pending, true, 3, 30)
	c.countBatch(pending[:1], false, 0, 0) // an idempotent close: nothing written
	if got := [...]int64{c.appends.Load(), c.duplicates.Load(), c.messages.Load(), c.bytes.Load(), c.commits.Load(),
		c.commitAppends.Load(), c.commitSizes[1].Load()}; got != [...]int64{3, 1, 3, 30, 1, 2, 1} {
		t.Errorf("appends, duplicates, messages, bytes, commits, commit appends, commits of 2 = %v", got)
	}
}
