package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/sequencer"
)

// HotStats is the size of a stream's hot log.
type HotStats struct {
	FileBytes int64 `json:"file_bytes"` // the SQLite database plus its WAL
	Rows      int64 `json:"rows"`       // messages still in the hot log
	DataBytes int64 `json:"data_bytes"` // their data
}

// ColdStats sums up rows of the admin index.
type ColdStats struct {
	Segments int64                   `json:"segments"` // index rows
	Bytes    int64                   `json:"bytes"`    // object bytes of uploaded segments
	ByState  map[segment.State]int64 `json:"by_state"` // index rows per state
}

// StreamStats describes one stream.
type StreamStats struct {
	StreamID    int64  `json:"stream_id"`
	Path        string `json:"path"`
	ContentType string `json:"content_type"`
	State       string `json:"state"` // StreamLive or StreamSoftDeleted
	Closed      bool   `json:"closed"`
	// Tail is the byte position after the last message and TailOffset its
	// offset token; both are absent without a Registry.
	Tail       *int64    `json:"tail,omitempty"`
	TailOffset string    `json:"tail_offset,omitempty"`
	Hot        *HotStats `json:"hot,omitempty"`
	Cold       ColdStats `json:"cold"`
}

// Totals sums up all streams.
type Totals struct {
	Streams     int64 `json:"streams"`      // catalog rows, live or soft-deleted
	SoftDeleted int64 `json:"soft_deleted"` // of those, soft-deleted
	// DeletedStreams counts streams deleted for real whose index rows the
	// collector has not removed yet.
	DeletedStreams int64     `json:"deleted_streams"`
	PendingGC      int64     `json:"pending_gc"` // entries of the catalog's GC queue
	Cold           ColdStats `json:"cold"`
}

// StreamStats returns the statistics of the stream at path (live or
// soft-deleted), or an error wrapping ErrNotFound.
func (s *Service) StreamStats(ctx context.Context, path string) (StreamStats, error) {
	if path == "" {
		return StreamStats{}, invalid("empty stream path")
	}
	row, err := s.cat.Get(ctx, path)
	if errors.Is(err, catalog.ErrNotFound) {
		return StreamStats{}, fmt.Errorf("%w: %q", ErrNotFound, path)
	}
	if err != nil {
		return StreamStats{}, fmt.Errorf("admin: stats: %w", err)
	}
	st := StreamStats{StreamID: row.ID, Path: row.Path, ContentType: row.ContentType,
		State: streamState(true, !row.DeletedAt.IsZero()), Closed: row.Closed}
	if s.reg != nil {
		if err := s.hotStats(ctx, &st); err != nil {
			return StreamStats{}, err
		}
	}
	st.Cold, err = s.coldStats(ctx, row.ID)
	if err != nil {
		return StreamStats{}, err
	}
	return st, nil
}

func (s *Service) hotStats(ctx context.Context, st *StreamStats) error {
	stream, release, err := s.reg.AcquireID(ctx, st.StreamID)
	if sequencer.KindOf(err) == sequencer.KindNotFound {
		return nil // deleted meanwhile: no hot log any more
	}
	if err != nil {
		return fmt.Errorf("admin: stats: open stream %d: %w", st.StreamID, err)
	}
	defer release()
	snap := stream.Snapshot()
	tail := snap.Tail
	st.Tail = &tail
	st.TailOffset = snap.TailToken(ctx).String()
	st.Closed = st.Closed || snap.Closed
	hs, err := stream.HotStats(ctx)
	if err != nil {
		return fmt.Errorf("admin: stats: stream %d: %w", st.StreamID, err)
	}
	st.Hot = &HotStats{FileBytes: hs.FileBytes, Rows: hs.Rows, DataBytes: hs.DataBytes}
	return nil
}

// coldStats sums the index rows of stream (of all streams if 0).
func (s *Service) coldStats(ctx context.Context, stream int64) (ColdStats, error) {
	counts, err := s.cat.SegmentStats(ctx, stream)
	if err != nil {
		return ColdStats{}, fmt.Errorf("admin: stats: %w", err)
	}
	cs := ColdStats{ByState: map[segment.State]int64{StateSealed: 0, StateUploaded: 0}}
	for state, n := range counts {
		cs.ByState[state] = n.Segments
		cs.Segments += n.Segments
		if state == StateUploaded {
			cs.Bytes += n.Bytes
		}
	}
	return cs, nil
}

// Totals returns the statistics of all streams.
func (s *Service) Totals(ctx context.Context) (Totals, error) {
	ct, err := s.cat.Totals(ctx)
	if err != nil {
		return Totals{}, fmt.Errorf("admin: totals: %w", err)
	}
	t := Totals{Streams: ct.Streams, SoftDeleted: ct.SoftDeleted, DeletedStreams: ct.DeletedStreams, PendingGC: ct.PendingGC}
	t.Cold, err = s.coldStats(ctx, 0)
	if err != nil {
		return Totals{}, err
	}
	return t, nil
}
