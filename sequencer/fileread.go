package sequencer

import (
	"context"

	"github.com/streamtier/durable-streams/hotlog"
)

// FileRange is a run of a chunk's bytes in a local file: Len bytes at
// offset Off hold the stream's bytes [Pos, Pos+Len).
type FileRange struct {
	Pos, Off, Len int64
}

// ColdFile is where the bytes of a cold read lie in a local file.
type ColdFile struct {
	Path   string
	Ranges []FileRange // in position order, contiguous
}

// ColdFileReader is a ColdReader that can also say where a read's bytes
// lie in a local copy of the segment, so that they can be sent to a socket
// without passing through memory.
type ColdFileReader interface {
	ColdReader
	// SegmentFile is ReadSegment naming file ranges instead of returning
	// messages. ok is false (and the caller uses ReadSegment) when the
	// segment has no local copy verified whole, or when the read cannot
	// be named without reading it (small messages share blocks).
	SegmentFile(ctx context.Context, stream int64, seg hotlog.Segment, from, limit int64, budget int) (f ColdFile, ok bool, err error)
}

// ReadChunkFile is ReadChunk for bytes that may be sent from a file: when
// from lies in an uploaded segment of the stream's own, in a local copy
// verified whole, the chunk names the file (Path and Ranges) instead of
// carrying Messages. Otherwise, or for JSON streams (whose messages the
// reader must see), it is ReadChunk.
func (r *Registry) ReadChunkFile(ctx context.Context, snap *Snapshot, from int64, maxBytes int) (Chunk, error) {
	cf, ok := r.cfg.Cold.(ColdFileReader)
	if !ok || from >= snap.Tail || snap.inherited(from) || contentTypeOf(snap.ContentType).IsJSON() {
		return r.ReadChunk(ctx, snap, from, maxBytes)
	}
	sv := snap.ownSegmentAt(from)
	if f := snap.Fork; !sv.Sealed || !r.uploaded(snap, sv.Seg) || (f != nil && f.Shared && sv.Seg == f.Seg) {
		return r.ReadChunk(ctx, snap, from, maxBytes)
	}
	seg, found := findSegment(snap.Segments, sv.Seg)
	if !found {
		return r.ReadChunk(ctx, snap, from, maxBytes)
	}
	lim := min(snap.Tail, sv.End)
	file, ok, err := cf.SegmentFile(ctx, snap.ID, seg, from, lim, maxBytes)
	if err != nil {
		return Chunk{}, internal("locate cold segment", err)
	}
	if !ok || len(file.Ranges) == 0 {
		return r.ReadChunk(ctx, snap, from, maxBytes)
	}
	// Clip to [from, lim) as clip does for messages.
	rs := file.Ranges
	if d := from - rs[0].Pos; d > 0 {
		rs[0] = FileRange{Pos: from, Off: rs[0].Off + d, Len: rs[0].Len - d}
	}
	if last := &rs[len(rs)-1]; last.Pos+last.Len > lim {
		last.Len = lim - last.Pos
	}
	end := rs[len(rs)-1].Pos + rs[len(rs)-1].Len
	return Chunk{From: from, End: end, EndToken: r.tokenFor(ctx, snap, end), Sealed: true, Path: file.Path, Ranges: rs}, nil
}
