package sequencer

import (
	"context"

	"github.com/streamtier/durable-streams/hotlog"
)

// HotStats returns the size of the stream's hot log: its file bytes (the
// database plus its WAL), and the number and data bytes of the messages it
// still holds. The caller must hold the stream (Acquire or AcquireID).
func (s *Stream) HotStats(ctx context.Context) (hotlog.Stats, error) {
	// What the actor has not written yet would be missing.
	if err := s.requestFlush(ctx); err != nil {
		return hotlog.Stats{}, err
	}
	return s.log.Stats(ctx)
}
