package sequencer

import "context"

// Fence is how the registry learns whether this node may write a stream
// (cluster mode, docs/cluster.md). Nil: single node, always.
type Fence interface {
	// Acquire takes (or confirms) this node's lease on stream id before its
	// actor serves anything.
	Acquire(ctx context.Context, id int64) error
	// Check is nil while this node may still acknowledge writes of stream
	// id (its lease renewed within the safety margin).
	Check(id int64) error
	// Release gives the lease up; clean means every byte of the stream is
	// in the cold tier and its handoff state is saved, so any node may
	// continue it.
	Release(ctx context.Context, id int64, clean bool) error
}
