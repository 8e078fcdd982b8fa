package sequencer

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
)

// SealedRead is a catch-up read answered from the cold tier alone, by a
// node that does not own the stream (cluster mode): the stream's catalog
// row, a view of it built from the segment index, and the chunk read.
// Every response header the owner derives from its own view (offsets,
// ETag, caching) comes out the same from this one, because the chunk lies
// inside one uploaded segment and ends before the last segment the index
// knows of, so it is neither at the tail nor in hot data.
type SealedRead struct {
	Info  catalog.Stream
	Snap  *Snapshot
	Chunk Chunk
}

// ErrNotSealed is wrapped by ReadSealed's error when the read cannot be
// answered without the stream's owner; the caller asks the owner.
var ErrNotSealed = errors.New("sequencer: not a read of sealed data")

// sealedRows is how many index rows ReadSealed needs: the segment of the
// byte before the offset, the one holding the offset, and one after it
// (which proves that the chunk ends below the tail).
const sealedRows = 3

// ReadSealed reads at most maxBytes (whole messages, at least one) from
// position from.Position of the stream at path, using only the catalog
// and the cold reader: the stream row, the segment index and the verified
// objects, through the same cold read as the owner's (readCold). It never
// opens the stream's actor or hot log, so it serves streams other nodes
// own.
//
// It answers only when the result is certain to be what the owner would
// send for the same read of the same size: the stream is live, unexpired,
// not a fork (a fork reads what it inherits through its parent) and has no
// sliding TTL (a read must renew it, which only the owner does); from is
// the token the owner would hand out for its position; the chunk lies in
// one uploaded segment whose index rows tile with their neighbours, and a
// later segment exists, so the chunk ends below the stream's tail whatever
// the owner has appended since. Otherwise, and when the catalog or the
// object cannot be read, the error wraps ErrNotSealed (the caller asks the
// owner, which answers 404, 410, 400 or the data as always).
//
// A stream deleted after its row was read is served only while its
// objects are still there, as if the read came just before the delete;
// the objects' keys carry the stream id, so a stream created again at the
// same path never shares them, and every object is checked against the
// CRC32C the index recorded before a byte of it is served.
func (r *Registry) ReadSealed(ctx context.Context, path string, from offset.Token, maxBytes int) (SealedRead, error) {
	if r.cfg.Cold == nil {
		return SealedRead{}, notSealed("no cold tier")
	}
	pos := from.Position
	first := from.Segment // the segment of byte pos-1
	if pos == 0 {
		first = 0
	}
	// One catalog read: the row and the index rows from the same
	// snapshot of the database.
	row, rows, err := r.cat.StreamSegmentsFrom(ctx, path, first, sealedRows)
	if err != nil {
		return SealedRead{}, fmt.Errorf("%w: %w", ErrNotSealed, err)
	}
	switch {
	case !row.DeletedAt.IsZero():
		return SealedRead{}, notSealed("stream deleted")
	case row.ParentID != 0:
		return SealedRead{}, notSealed("fork")
	case row.TTL > 0:
		return SealedRead{}, notSealed("sliding TTL")
	case r.expired(row):
		return SealedRead{}, notSealed("stream expired")
	}
	snap, err := sealedView(row, rows, pos, first)
	if err != nil {
		return SealedRead{}, err
	}
	snap.reg = r
	ch, err := r.ReadChunk(ctx, snap, pos, maxBytes)
	if err != nil {
		return SealedRead{}, fmt.Errorf("%w: %w", ErrNotSealed, err)
	}
	if !ch.Sealed || ch.End >= snap.Tail {
		return SealedRead{}, notSealed("chunk reaches the last indexed segment")
	}
	return SealedRead{Info: row, Snap: snap, Chunk: ch}, nil
}

func notSealed(why string) error { return fmt.Errorf("%w: %s", ErrNotSealed, why) }

// sealedView builds the view of stream row that ReadChunk needs to read
// position pos from rows, the index rows from segment first on: the
// segments as the owner's snapshot lists them and, as the tail, the end
// of the last row, a lower bound of the real one. It checks that the rows
// locate pos the way the owner does (rows start at segment first, which
// holds byte pos-1, or starts the stream at 0; they tile without a gap),
// that the segment holding pos is uploaded, and that a row follows it.
func sealedView(row catalog.Stream, rows []catalog.Segment, pos, first int64) (*Snapshot, error) {
	if len(rows) == 0 || rows[0].Seg != first {
		return nil, notSealed("segment not indexed")
	}
	if pos == 0 && rows[0].FirstPos != 0 {
		return nil, notSealed("first segment not indexed")
	}
	if pos > 0 && (pos <= rows[0].FirstPos || pos > rows[0].EndPos) {
		return nil, notSealed("offset not in its token's segment")
	}
	segs := make([]hotlog.Segment, 0, len(rows))
	at := -1 // the row holding pos
	for i, g := range rows {
		if i > 0 && (g.FirstPos != rows[i-1].EndPos || g.Seg <= rows[i-1].Seg) {
			break // a gap: what follows does not locate anything here
		}
		if g.FirstPos >= g.EndPos {
			return nil, notSealed("empty segment row")
		}
		segs = append(segs, hotlog.Segment{Seg: g.Seg, Start: g.FirstPos, End: g.EndPos, Messages: g.Messages,
			Bytes: g.Bytes, State: g.State, ObjectKey: g.ObjectKey, Checksum: g.Checksum})
		if g.FirstPos <= pos && pos < g.EndPos {
			at = i
		}
	}
	if at < 0 || at == len(segs)-1 {
		return nil, notSealed("offset at or past the last indexed segment")
	}
	if segs[at].State != segment.Uploaded {
		return nil, notSealed("segment not uploaded")
	}
	last := segs[len(segs)-1]
	return &Snapshot{ID: row.ID, ContentType: row.ContentType, Tail: last.End, OpenSeg: last.Seg + 1,
		OpenSegStart: last.End, Segments: segs}, nil
}
