package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Handoff state: what a node that hands a stream off (drain, rolling
// restart) leaves for the next owner, which has no copy of the stream's hot
// log. It is saved once every byte of the stream is in the cold tier and
// the segment index, marked complete once the node has removed its hot
// log, and cleared by the next owner once the hot log it built from it is
// durable, so it exists only in between (migration 0007).
// The streams row keeps what it already holds (content type, TTL, expiry,
// closure for listings); the segment index keeps the sealed ranges.

// Handoff is the saved state of a handed-off stream.
type Handoff struct {
	StreamID int64
	Node     string // the node that handed the stream off
	// Tail is the stream's next position: its next append starts here,
	// in segment OpenSeg, which starts at OpenSegStart (Tail, except in a
	// fork that shares its parent's segment and has no data of its own
	// yet). Every segment below OpenSeg is uploaded.
	Tail         int64
	OpenSeg      int64
	OpenSegStart int64
	StreamSeq    string // last accepted Stream-Seq ("" if none)
	Closed       bool
	// ClosedBy is the producer request that closed the stream, if any.
	ClosedBy *ProducerTuple
	// Fork is the fork base of a fork, nil for a root stream.
	Fork      *ForkBase
	Producers []HandoffProducer // in producer id order
	// Complete is set by [Catalog.CompleteHandoff] once Node has removed
	// its hot log: only then may another node continue the stream.
	Complete  bool
	CreatedAt time.Time // the stream's creation, as its hot log had it
	SavedAt   time.Time
}

// ProducerTuple names one request of an idempotent producer.
type ProducerTuple struct {
	ID         string
	Epoch, Seq int64
}

// HandoffProducer is one idempotent producer's state at the handoff.
type HandoffProducer struct {
	ID      string
	Epoch   int64
	LastSeq int64
	Updated time.Time
}

// ForkBase is where a fork's own data starts in its parent (the hot log's
// fork base, opaque to the catalog).
type ForkBase struct {
	ParentID, Pos, Seg, SegStart int64
	Shared                       bool
}

// SaveHandoff records h as the handoff state of stream h.StreamID,
// replacing any earlier one, in one transaction. It fails with
// [ErrNotFound] if the stream has no row. A zero h.SavedAt means now;
// h.Complete is ignored: a saved state is incomplete.
func (c *Catalog) SaveHandoff(ctx context.Context, h Handoff) error {
	if h.SavedAt.IsZero() {
		h.SavedAt = c.now()
	}
	var cb struct {
		id         sql.NullString
		epoch, seq sql.NullInt64
	}
	if p := h.ClosedBy; p != nil {
		cb.id = sql.NullString{String: p.ID, Valid: true}
		cb.epoch, cb.seq = sql.NullInt64{Int64: p.Epoch, Valid: true}, sql.NullInt64{Int64: p.Seq, Valid: true}
	}
	var fk struct {
		parent, pos, seg, start sql.NullInt64
		shared                  sql.NullBool
	}
	if f := h.Fork; f != nil {
		fk.parent, fk.pos = sql.NullInt64{Int64: f.ParentID, Valid: true}, sql.NullInt64{Int64: f.Pos, Valid: true}
		fk.seg, fk.start = sql.NullInt64{Int64: f.Seg, Valid: true}, sql.NullInt64{Int64: f.SegStart, Valid: true}
		fk.shared = sql.NullBool{Bool: f.Shared, Valid: true}
	}
	err := c.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM streams WHERE id = ?"+c.forUpdate(), h.StreamID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		// The producers go with their row (ON DELETE CASCADE).
		if _, err := tx.ExecContext(ctx, "DELETE FROM stream_handoffs WHERE stream_id = ?", h.StreamID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO stream_handoffs (stream_id, node, tail, open_seg, open_seg_start, stream_seq, closed,
			closed_by_id, closed_by_epoch, closed_by_seq, fork_parent, fork_pos, fork_seg, fork_seg_start, fork_shared,
			created_at, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			h.StreamID, h.Node, h.Tail, h.OpenSeg, h.OpenSegStart, h.StreamSeq, h.Closed, cb.id, cb.epoch, cb.seq,
			fk.parent, fk.pos, fk.seg, fk.start, fk.shared, h.CreatedAt.UnixMilli(), h.SavedAt.UnixMilli()); err != nil {
			return err
		}
		if len(h.Producers) == 0 {
			return nil
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO stream_handoff_producers (stream_id, producer, epoch, last_seq, updated_at)
			VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, p := range h.Producers {
			if _, err := ins.ExecContext(ctx, h.StreamID, p.ID, p.Epoch, p.LastSeq, p.Updated.UnixMilli()); err != nil {
				return fmt.Errorf("producer %q: %w", p.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: save handoff of %d: %w", h.StreamID, err)
	}
	return nil
}

// GetHandoff returns the handoff state of stream, or [ErrNotFound] if it
// has none.
func (c *Catalog) GetHandoff(ctx context.Context, stream int64) (Handoff, error) {
	h, err := c.getHandoff(ctx, stream)
	if err != nil {
		return Handoff{}, fmt.Errorf("catalog: handoff of %d: %w", stream, err)
	}
	return h, nil
}

func (c *Catalog) getHandoff(ctx context.Context, stream int64) (Handoff, error) {
	var (
		h                           Handoff
		cbID                        sql.NullString
		cbEpoch, cbSeq              sql.NullInt64
		fParent, fPos, fSeg, fStart sql.NullInt64
		fShared                     sql.NullBool
		createdAt, savedAt          int64
	)
	err := c.db.QueryRowContext(ctx, `SELECT stream_id, node, tail, open_seg, open_seg_start, stream_seq, closed,
		closed_by_id, closed_by_epoch, closed_by_seq, fork_parent, fork_pos, fork_seg, fork_seg_start, fork_shared,
		complete, created_at, saved_at FROM stream_handoffs WHERE stream_id = ?`, stream).Scan(
		&h.StreamID, &h.Node, &h.Tail, &h.OpenSeg, &h.OpenSegStart, &h.StreamSeq, &h.Closed, &cbID, &cbEpoch, &cbSeq,
		&fParent, &fPos, &fSeg, &fStart, &fShared, &h.Complete, &createdAt, &savedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Handoff{}, ErrNotFound
	}
	if err != nil {
		return Handoff{}, err
	}
	if cbID.Valid {
		h.ClosedBy = &ProducerTuple{ID: cbID.String, Epoch: cbEpoch.Int64, Seq: cbSeq.Int64}
	}
	if fParent.Valid {
		h.Fork = &ForkBase{ParentID: fParent.Int64, Pos: fPos.Int64, Seg: fSeg.Int64, SegStart: fStart.Int64, Shared: fShared.Bool}
	}
	h.CreatedAt, h.SavedAt = time.UnixMilli(createdAt), time.UnixMilli(savedAt)
	h.Producers, err = queryAll(ctx, c.db, func(r scanner) (HandoffProducer, error) {
		var p HandoffProducer
		var updated int64
		err := r.Scan(&p.ID, &p.Epoch, &p.LastSeq, &updated)
		p.Updated = time.UnixMilli(updated)
		return p, err
	}, `SELECT producer, epoch, last_seq, updated_at FROM stream_handoff_producers
		WHERE stream_id = ? ORDER BY producer`, stream)
	if err != nil {
		return Handoff{}, err
	}
	return h, nil
}

// CompleteHandoff marks the handoff state of stream complete: the node
// that saved it has removed its hot log. It fails with [ErrNotFound] if
// the stream has no handoff state.
func (c *Catalog) CompleteHandoff(ctx context.Context, stream int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, ErrNotFound, "UPDATE stream_handoffs SET complete = TRUE WHERE stream_id = ?", stream)
	})
	if err != nil {
		return fmt.Errorf("catalog: complete handoff of %d: %w", stream, err)
	}
	return nil
}

// IncompleteHandoffs returns the streams whose handoff node saved but has
// not completed, in id order: handoffs a crash cut short.
func (c *Catalog) IncompleteHandoffs(ctx context.Context, node string) ([]int64, error) {
	ids, err := c.queryIDs(ctx, "SELECT stream_id FROM stream_handoffs WHERE node = ? AND NOT complete ORDER BY stream_id", node)
	if err != nil {
		return nil, fmt.Errorf("catalog: incomplete handoffs of %q: %w", node, err)
	}
	return ids, nil
}

// ClearHandoff removes the handoff state of stream once the next owner's
// hot log holds it durably. Clearing a state that does not exist
// succeeds, so a node that crashed after clearing can simply repeat.
func (c *Catalog) ClearHandoff(ctx context.Context, stream int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM stream_handoffs WHERE stream_id = ?", stream)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: clear handoff of %d: %w", stream, err)
	}
	return nil
}

// StreamSegments returns the segment index rows of stream in segment
// order: after a handoff, where the next owner finds the stream's sealed
// ranges and their objects.
func (c *Catalog) StreamSegments(ctx context.Context, stream int64) ([]Segment, error) {
	out, err := queryAll(ctx, c.db, scanPlainSegment,
		"SELECT "+segmentColumns+" FROM segments s WHERE s.stream_id = ? ORDER BY s.seg", stream)
	if err != nil {
		return nil, fmt.Errorf("catalog: segments of %d: %w", stream, err)
	}
	return out, nil
}
