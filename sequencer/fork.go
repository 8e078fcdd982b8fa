package sequencer

import (
	"context"

	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// forkPoint resolves where a fork of this stream at (tok, sub) begins. It
// runs on the actor goroutine after pending commits, so the published
// snapshot is exactly the committed state. tok nil means the tail.
func (s *Stream) forkPoint(tok *offset.Token, sub int64) (hotlog.ForkBase, []hotlog.Message, error) {
	ctx := context.Background()
	snap := s.Snapshot()
	p0 := snap.Tail
	if tok != nil {
		if tok.Position > snap.Tail {
			return hotlog.ForkBase{}, nil, errf(KindBadRequest, "Stream-Fork-Offset is beyond the end of the source stream")
		}
		p0 = tok.Position
	}
	json := contentTypeOf(snap.ContentType).IsJSON()
	p := p0
	var prefix []hotlog.Message
	if sub > 0 || (json && p0 < snap.Tail) {
		if p0 >= snap.Tail {
			return hotlog.ForkBase{}, nil, errf(KindBadRequest, "Stream-Fork-Sub-Offset needs a message at the fork offset")
		}
		msgs, _, err := s.reg.readView(ctx, snap, p0, snap.Tail, unlimited)
		if err != nil {
			return hotlog.ForkBase{}, nil, err
		}
		if len(msgs) == 0 {
			return hotlog.ForkBase{}, nil, internal("no message at fork offset", nil)
		}
		first := msgs[0]
		switch {
		case json && first.Pos != p0:
			return hotlog.ForkBase{}, nil, errf(KindBadRequest, "Stream-Fork-Offset is not at a message boundary")
		case json && sub > 0:
			if p, prefix, err = jsonSubFork(msgs, sub); err != nil {
				return hotlog.ForkBase{}, nil, err
			}
		case !json:
			avail := first.End() - p0
			switch {
			case sub > avail:
				return hotlog.ForkBase{}, nil, errf(KindBadRequest, "Stream-Fork-Sub-Offset %d exceeds the %d bytes of the message at the fork offset", sub, avail)
			case sub == avail:
				p = first.End()
			default:
				data := append([]byte(nil), first.Data[p0-first.Pos:p0-first.Pos+sub]...)
				prefix = []hotlog.Message{{Pos: p0, Data: data, BatchEnd: true}}
			}
		}
	}
	base, err := s.reg.forkBaseAt(ctx, snap, p)
	if err != nil {
		return hotlog.ForkBase{}, nil, err
	}
	base.ParentID = s.id
	return base, prefix, nil
}

// forkBaseAt computes how a fork inheriting [0, p) of snap's stream shares
// segments with it: the segment holding byte p-1 is either sealed and ends
// exactly at p (the fork starts a new segment) or it is shared (the fork's
// own data continues in it).
func (r *Registry) forkBaseAt(ctx context.Context, snap *Snapshot, p int64) (hotlog.ForkBase, error) {
	if p == 0 {
		return hotlog.ForkBase{Pos: 0, Seg: 0, SegStart: 0, Shared: true}, nil
	}
	sv, err := r.segmentAt(ctx, snap, p-1)
	if err != nil {
		return hotlog.ForkBase{}, err
	}
	return hotlog.ForkBase{Pos: p, Seg: sv.Seg, SegStart: sv.Start, Shared: !(sv.Sealed && sv.End == p)}, nil
}

// ForkPoint asks the stream's actor to resolve a fork point.
func (s *Stream) ForkPoint(ctx context.Context, tok *offset.Token, sub int64) (hotlog.ForkBase, []hotlog.Message, error) {
	reply := make(chan forkPointReply, 1)
	if err := s.send(ctx, forkPointOp{tok: tok, sub: sub, reply: reply}); err != nil {
		return hotlog.ForkBase{}, nil, err
	}
	select {
	case r := <-reply:
		return r.base, r.prefix, r.err
	case <-s.done:
		select {
		case r := <-reply:
			return r.base, r.prefix, r.err
		default:
			return hotlog.ForkBase{}, nil, s.goneErr()
		}
	}
}

// jsonSubFork finds where the first sub messages of the JSON append whose
// records start msgs end. If that is inside a record (see records), the
// fork inherits up to the record and starts with its own copy of the
// record's leading messages, as a byte sub-offset does for other streams.
func jsonSubFork(msgs []hotlog.Message, sub int64) (int64, []hotlog.Message, error) {
	var n int64
	for _, m := range msgs {
		parts := protocol.SplitJSONRecord(m.Data)
		if k := sub - n; k <= int64(len(parts)) {
			if k == int64(len(parts)) {
				return m.End(), nil, nil
			}
			// The leading messages of one record fit in one record.
			data := protocol.JoinJSONRecords(parts[:k], maxRecordBytes)[0]
			return m.Pos, []hotlog.Message{{Pos: m.Pos, Data: data, BatchEnd: true}}, nil
		}
		n += int64(len(parts))
		if m.BatchEnd {
			break
		}
	}
	return 0, nil, errf(KindBadRequest, "Stream-Fork-Sub-Offset %d exceeds the %d messages of the append at the fork offset", sub, n)
}
