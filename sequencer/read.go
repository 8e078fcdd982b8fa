package sequencer

import (
	"context"
	"math"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
)

// ColdReader serves messages of uploaded segments from the cold tier; the
// server hands the sequencer one (package coldstore/segcache implements it),
// so reads go down to the cold tier and never up to the uploader.
type ColdReader interface {
	// ReadSegment returns the messages of the segment object key that
	// overlap [from, limit), starting with the one containing from, whole
	// messages only, within budget bytes (at least one message). checksum
	// is the object's CRC32C as verified at upload.
	ReadSegment(ctx context.Context, key string, checksum uint32, from, limit int64, budget int) ([]segment.Message, error)
}

// Message is one message as reads return it: its position, data and
// whether it ends its append request. It is the hot log's type, named here
// so that the HTTP layer depends on the sequencer alone.
type Message = hotlog.Message

// Chunk is the result of a catch-up read: the bytes of [From, End).
type Chunk struct {
	Messages []hotlog.Message // clipped to [From, End)
	From     int64
	End      int64
	EndToken offset.Token
	// Sealed is true when the chunk lies inside a sealed segment, so the
	// same request will always return the same bytes.
	Sealed bool
}

// Bytes returns the total size of the chunk's messages.
func (c *Chunk) Bytes() int {
	n := 0
	for _, m := range c.Messages {
		n += len(m.Data)
	}
	return n
}

// ReadChunk reads from position from of the stream whose view is snap: at
// most maxBytes of whole messages (at least one) from a single segment.
// It never returns data at or beyond snap.Tail.
func (r *Registry) ReadChunk(ctx context.Context, snap *Snapshot, from int64, maxBytes int) (Chunk, error) {
	if from > snap.Tail {
		return Chunk{}, errf(KindBadRequest, "offset is beyond the end of the stream")
	}
	if from == snap.Tail {
		return Chunk{From: from, End: from, EndToken: r.tokenFor(ctx, snap, from)}, nil
	}
	msgs, sealed, err := r.readView(ctx, snap, from, snap.Tail, maxBytes)
	if err != nil {
		return Chunk{}, err
	}
	if len(msgs) == 0 {
		return Chunk{}, internal("read returned no data below the tail", nil)
	}
	if contentTypeOf(snap.ContentType).IsJSON() && msgs[0].Pos != from {
		return Chunk{}, errf(KindBadRequest, "offset is not at a message boundary")
	}
	msgs = clip(msgs, from, snap.Tail)
	end := msgs[len(msgs)-1].End()
	return Chunk{Messages: msgs, From: from, End: end, EndToken: r.tokenFor(ctx, snap, end), Sealed: sealed}, nil
}

// readView returns whole messages overlapping [from, limit) of one segment
// of the stream viewed through snap, within budget bytes.
func (r *Registry) readView(ctx context.Context, snap *Snapshot, from, limit int64, budget int) ([]hotlog.Message, bool, error) {
	if snap.inherited(from) {
		parent, release, err := r.acquireID(ctx, snap.Fork.ParentID)
		if err != nil {
			return nil, false, err
		}
		defer release()
		// Whole inherited segments are sealed in the parent.
		msgs, _, err := r.readView(ctx, parent.Snapshot(), from, min(limit, snap.ownStart()), budget)
		return msgs, true, err
	}
	sv := snap.ownSegmentAt(from)
	lim := min(limit, sv.End)
	if f := snap.Fork; f != nil && f.Shared && sv.Seg == f.Seg && from < f.Pos && !r.uploaded(snap, sv.Seg) {
		return r.readBoundary(ctx, snap, from, lim, budget, sv.Sealed)
	}
	msgs, err := r.readOwn(ctx, snap, sv, from, lim, budget)
	return msgs, sv.Sealed, err
}

// readBoundary reads the segment a fork shares with its parent: the
// inherited part [SegStart, Fork.Pos) from the parent, then its own data.
func (r *Registry) readBoundary(ctx context.Context, snap *Snapshot, from, lim int64, budget int, sealed bool) ([]hotlog.Message, bool, error) {
	f := snap.Fork
	parent, release, err := r.acquireID(ctx, f.ParentID)
	if err != nil {
		return nil, false, err
	}
	defer release()
	head, _, err := r.readView(ctx, parent.Snapshot(), from, min(lim, f.Pos), budget)
	if err != nil {
		return nil, false, err
	}
	// Only the end is clipped here: ReadChunk checks (for JSON) and clips
	// the start, which must still show where the first message begins.
	head = clip(head, math.MinInt64, f.Pos)
	used := sizeOf(head)
	if len(head) == 0 || head[len(head)-1].End() < f.Pos || lim <= f.Pos || used >= budget {
		return head, sealed, nil
	}
	own := snap.ownSegmentAt(f.Pos)
	tail, err := r.readOwn(ctx, snap, own, f.Pos, lim, budget-used)
	if err != nil {
		return nil, false, err
	}
	if len(tail) > 0 && used+len(tail[0].Data) > budget {
		return head, sealed, nil
	}
	// head may alias the parent's tail cache: build a new slice.
	out := make([]hotlog.Message, 0, len(head)+len(tail))
	return append(append(out, head...), tail...), sealed, nil
}

// readOwn reads this stream's own messages of segment sv from the tail
// cache, the hot log or the cold tier.
func (r *Registry) readOwn(ctx context.Context, snap *Snapshot, sv segView, from, lim int64, budget int) ([]hotlog.Message, error) {
	if msgs, ok := snap.recentFrom(from); ok {
		return takeBudget(msgs, lim, budget), nil
	}
	if sv.Sealed && r.uploaded(snap, sv.Seg) {
		return r.readCold(ctx, snap, sv, from, lim, budget)
	}
	st, release, err := r.acquireID(ctx, snap.ID)
	if err != nil {
		return nil, err
	}
	defer release()
	msgs, err := st.log.Read(ctx, from, lim, budget)
	if err != nil {
		return nil, internal("read hot log", err)
	}
	if len(msgs) == 0 || msgs[0].Pos > from {
		// Trimmed after we loaded snap: the segment is in the cold tier now.
		fresh := st.Snapshot()
		if r.uploaded(fresh, sv.Seg) {
			return r.readCold(ctx, fresh, sv, from, lim, budget)
		}
		return nil, internal("hot log is missing data below the tail", nil)
	}
	return msgs, nil
}

func (r *Registry) readCold(ctx context.Context, snap *Snapshot, sv segView, from, lim int64, budget int) ([]hotlog.Message, error) {
	if r.cfg.Cold == nil {
		return nil, internal("segment is in the cold tier but no cold store is configured", nil)
	}
	seg, ok := findSegment(snap.Segments, sv.Seg)
	if !ok {
		return nil, internal("segment metadata missing", nil)
	}
	cold, err := r.cfg.Cold.ReadSegment(ctx, seg.ObjectKey, seg.Checksum, from, lim, budget)
	if err != nil {
		return nil, internal("read cold segment", err)
	}
	msgs := make([]hotlog.Message, len(cold))
	for i, m := range cold {
		msgs[i] = hotlog.Message{Pos: m.Pos, Seg: seg.Seg, Data: m.Data, BatchEnd: m.BatchEnd}
	}
	return msgs, nil
}

func (r *Registry) uploaded(snap *Snapshot, seg int64) bool {
	g, ok := findSegment(snap.Segments, seg)
	return ok && g.State == segment.Uploaded
}

func findSegment(segs []hotlog.Segment, seg int64) (hotlog.Segment, bool) {
	lo, hi := 0, len(segs)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case segs[m].Seg == seg:
			return segs[m], true
		case segs[m].Seg < seg:
			lo = m + 1
		default:
			hi = m
		}
	}
	return hotlog.Segment{}, false
}

// tokenFor returns the token of position p in the stream viewed by snap.
func (r *Registry) tokenFor(ctx context.Context, snap *Snapshot, p int64) offset.Token {
	if p > 0 && snap.Fork != nil && p <= snap.ownStart() {
		if parent, release, err := r.acquireID(ctx, snap.Fork.ParentID); err == nil {
			defer release()
			return r.tokenFor(ctx, parent.Snapshot(), p)
		}
	}
	return snap.ownToken(p)
}

// takeBudget returns the prefix of msgs below lim within budget bytes,
// always at least the first message.
func takeBudget(msgs []hotlog.Message, lim int64, budget int) []hotlog.Message {
	used := 0
	for i, m := range msgs {
		if m.Pos >= lim || (i > 0 && used+len(m.Data) > budget) {
			return msgs[:i:i]
		}
		used += len(m.Data)
	}
	return msgs
}

// clip trims the first and last messages to [from, lim) without copying.
func clip(msgs []hotlog.Message, from, lim int64) []hotlog.Message {
	if len(msgs) == 0 {
		return msgs
	}
	out := msgs
	if first := out[0]; first.Pos < from {
		out = append([]hotlog.Message{{Pos: from, Seg: first.Seg, Data: first.Data[from-first.Pos:], BatchEnd: first.BatchEnd}}, out[1:]...)
	}
	if last := out[len(out)-1]; last.End() > lim {
		if &out[0] == &msgs[0] {
			out = append([]hotlog.Message(nil), out...)
		}
		out[len(out)-1] = hotlog.Message{Pos: last.Pos, Seg: last.Seg, Data: last.Data[:lim-last.Pos], BatchEnd: last.BatchEnd}
	}
	return out
}

func sizeOf(msgs []hotlog.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Data)
	}
	return n
}

// segmentAt returns the segment that holds byte p in the stream viewed by snap.
func (r *Registry) segmentAt(ctx context.Context, snap *Snapshot, p int64) (segView, error) {
	if snap.inherited(p) {
		parent, release, err := r.acquireID(ctx, snap.Fork.ParentID)
		if err != nil {
			return segView{}, err
		}
		defer release()
		return r.segmentAt(ctx, parent.Snapshot(), p)
	}
	return snap.ownSegmentAt(p), nil
}

const unlimited = math.MaxInt32

// SegmentMessages returns every message of sealed segment seg as the stream
// viewed by snap sees it, including a fork's inherited part of a segment it
// shares with its parent. The rotation uploader builds objects from it.
func (r *Registry) SegmentMessages(ctx context.Context, snap *Snapshot, seg hotlog.Segment) ([]hotlog.Message, error) {
	var out []hotlog.Message
	for pos := seg.Start; pos < seg.End; {
		msgs, _, err := r.readView(ctx, snap, pos, seg.End, unlimited)
		if err != nil {
			return nil, err
		}
		msgs = clip(msgs, pos, seg.End)
		if len(msgs) == 0 {
			return nil, internal("segment has a hole", nil)
		}
		out = append(out, msgs...)
		pos = msgs[len(msgs)-1].End()
	}
	return out, nil
}

// AcquireID pins stream id (live or soft-deleted) for internal work such
// as uploads; release it when done.
func (r *Registry) AcquireID(ctx context.Context, id int64) (*Stream, func(), error) {
	return r.acquireID(ctx, id)
}
