package sequencer

import (
	"time"

	"github.com/streamtier/durable-streams/catalog"
)

// LifecycleEvent reports a stream created or deleted.
type LifecycleEvent struct {
	// Deleted is false for a create.
	Deleted bool
	// Expired reports a delete caused by the stream's TTL or expiry time.
	Expired bool
	// Stream is the stream's catalog row as of the change.
	Stream catalog.Stream
	// Time is when the change was committed.
	Time time.Time
}

// lifecycle reports ev to Config.OnLifecycle. Deletes cascading to
// soft-deleted ancestors are not reported: those streams were reported
// when they were deleted softly.
func (r *Registry) lifecycle(ev LifecycleEvent) {
	if r.cfg.OnLifecycle != nil {
		r.cfg.OnLifecycle(ev)
	}
}
