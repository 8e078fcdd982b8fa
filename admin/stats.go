package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamtier/durable-streams/catalog"
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
	Segments int64            `json:"segments"` // index rows
	Bytes    int64            `json:"bytes"`    // object bytes of uploaded segments
	ByState  map[string]int64 `json:"by_state"` // index rows per state
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
	st.Cold, err = s.coldStats(ctx, "WHERE stream_id = ?", row.ID)
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
	st.TailOffset = s.reg.TailToken(ctx, snap).String()
	st.Closed = st.Closed || snap.Closed
	hs, err := stream.HotStats(ctx)
	if err != nil {
		return fmt.Errorf("admin: stats: stream %d: %w", st.StreamID, err)
	}
	st.Hot = &HotStats{FileBytes: hs.FileBytes, Rows: hs.Rows, DataBytes: hs.DataBytes}
	return nil
}

// coldStats sums the index rows selected by where.
func (s *Service) coldStats(ctx context.Context, where string, args ...any) (ColdStats, error) {
	cs := ColdStats{ByState: map[string]int64{StateSealed: 0, StateUploaded: 0}}
	rows, err := s.cat.DB().QueryContext(ctx, `SELECT state, count(*), coalesce(sum(bytes), 0) FROM segments `+
		where+` GROUP BY state`, args...)
	if err != nil {
		return ColdStats{}, fmt.Errorf("admin: stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n, bytes int64
		if err := rows.Scan(&state, &n, &bytes); err != nil {
			return ColdStats{}, fmt.Errorf("admin: stats: %w", err)
		}
		cs.ByState[state] = n
		cs.Segments += n
		if state == StateUploaded {
			cs.Bytes += bytes
		}
	}
	if err := rows.Err(); err != nil {
		return ColdStats{}, fmt.Errorf("admin: stats: %w", err)
	}
	return cs, nil
}

// Totals returns the statistics of all streams.
func (s *Service) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := s.cat.DB().QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM streams),
		(SELECT count(*) FROM streams WHERE deleted_at IS NOT NULL),
		(SELECT count(DISTINCT stream_id) FROM segments s WHERE NOT EXISTS (SELECT 1 FROM streams WHERE id = s.stream_id)),
		(SELECT count(*) FROM gc_queue)`).Scan(&t.Streams, &t.SoftDeleted, &t.DeletedStreams, &t.PendingGC)
	if err != nil {
		return Totals{}, fmt.Errorf("admin: totals: %w", err)
	}
	t.Cold, err = s.coldStats(ctx, "")
	if err != nil {
		return Totals{}, err
	}
	return t, nil
}
