package sequencer

import (
	"context"

	"github.com/streamtier/durable-streams/coldstore/segment"
)

// FileRange is a run of a chunk's bytes in a local file: Len bytes at
// offset Off hold the stream's bytes [Pos, Pos+Len).
type FileRange struct {
	Pos, Off, Len int64
}

// ColdFileReader is a ColdReader that can also say where a read's bytes
// lie in a local copy of the segment, so that they can be sent to a socket
// without passing through memory.
type ColdFileReader interface {
	ColdReader
	// SegmentFile is ReadSegment naming byte ranges of the local file at
	// path instead of returning messages. ok is false (and the caller
	// uses ReadSegment) when the segment has no local copy verified
	// whole, or when the read cannot be named without reading it (small
	// messages share blocks).
	SegmentFile(ctx context.Context, key string, checksum uint32, from, limit int64, budget int) (path string, ext []segment.Extent, ok bool, err error)
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
	path, ext, ok, err := cf.SegmentFile(ctx, seg.ObjectKey, seg.Checksum, from, lim, maxBytes)
	if err != nil {
		return Chunk{}, internal("locate cold segment", err)
	}
	if !ok || len(ext) == 0 {
		return r.ReadChunk(ctx, snap, from, maxBytes)
	}
	rs := make([]FileRange, len(ext))
	for i, e := range ext {
		rs[i] = FileRange{Pos: e.Pos, Off: e.Off, Len: e.Len}
	}
	// Clip to [from, lim) as clip does for messages.
	if d := from - rs[0].Pos; d > 0 {
		rs[0] = FileRange{Pos: from, Off: rs[0].Off + d, Len: rs[0].Len - d}
	}
	if last := &rs[len(rs)-1]; last.Pos+last.Len > lim {
		last.Len = lim - last.Pos
	}
	end := rs[len(rs)-1].Pos + rs[len(rs)-1].Len
	return Chunk{From: from, End: end, EndToken: r.tokenFor(ctx, snap, end), Sealed: true, Path: path, Ranges: rs}, nil
}
