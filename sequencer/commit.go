package sequencer

import (
	"context"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/invariants"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// process applies a drained mailbox batch: every append is validated in
// arrival order against the state as updated by the appends before it, and
// all accepted ones are written in one transaction (group commit). Replies
// are sent only after that transaction is durable.
func (s *Stream) process(ops []op) {
	var batch hotlog.Batch
	undo := s.checkpoint()
	appended, later := s.applyOps(ops, undo, &batch)
	dirty := len(batch.Messages) > 0 || len(s.prodUpd) > 0 || s.meta != undo.meta
	committed := false
	if dirty {
		s.maybeSeal(&batch)
		for _, p := range s.prodUpd {
			batch.Producers = append(batch.Producers, p)
		}
		batch.Meta = s.meta
		if err := s.commitFenced(&batch); err != nil {
			s.restore(undo)
			for i := range appended {
				if appended[i].err == nil {
					appended[i].err = err
				}
			}
		} else {
			s.committed(&batch, undo.meta.Closed)
			committed = true
		}
	}
	s.reg.counters.countBatch(appended, committed, len(batch.Messages), s.meta.Tail-undo.meta.Tail)
	for _, a := range appended {
		a.reply <- appendReply{res: a.res, err: a.err}
	}
	// After the replies: the hot log write is off their path. Before the
	// ops queued after the appends: a trim must find its segment written
	// (writebehind.go, invariant 3).
	s.maybeFlush()
	for _, o := range later {
		o.afterCommit(s)
	}
}

// applyOps applies the appends of ops to the state and batch (see apply)
// and returns their outcomes and the ops to run after the commit. It is
// process's first half, apart so that its locals do not sit in process's
// frame below the commit: a new actor's goroutine then gets through its
// first batch without growing its stack a second time.
func (s *Stream) applyOps(ops []op, undo *undoState, batch *hotlog.Batch) (appended []appendDone, later []afterCommitOp) {
	clear(s.prodUpd)
	for _, o := range ops {
		switch o := o.(type) {
		case appendOp:
			if p := o.req.Producer; p != nil {
				undo.saveProducer(s.producers, p.ID)
			}
			res, err := s.apply(o.req, batch)
			appended = append(appended, appendDone{reply: o.reply, res: res, err: err})
		case afterCommitOp:
			// Fork points read committed state only; answer after the
			// commit so a fork never references uncommitted data. Trims
			// and deletions keep their order after the appends.
			later = append(later, o)
		default:
			invariants.Failf(s.lg, "sequencer: unexpected mailbox op %T", o)
		}
	}
	return appended, later
}

// appendDone is the outcome of an append of the batch, sent once the
// batch's commit is durable (or failed).
type appendDone struct {
	reply chan appendReply
	res   AppendResult
	err   error
}

type undoState struct {
	meta      hotlog.Meta
	producers map[string]*hotlog.Producer // previous values of touched producers (nil = absent)
	recent    []hotlog.Message
	recentSz  int
	segments  []hotlog.Segment
}

// checkpoint saves what a failed commit restores, in s.undo: kept in the
// Stream and reused (its producer map too), it costs neither an
// allocation per batch nor room in process's frame (see Stream.prodUpd).
// Only one batch is ever being committed. Not inlined, like restore: the
// copies of the state would take room in process's frame.
//
//go:noinline
func (s *Stream) checkpoint() *undoState {
	prods := s.undo.producers
	clear(prods)
	s.undo = undoState{meta: s.meta, producers: prods, recent: s.recent, recentSz: s.recentSz, segments: s.segments}
	return &s.undo
}

// saveProducer remembers the value of producer id before the batch first
// touches it.
func (u *undoState) saveProducer(cur map[string]hotlog.Producer, id string) {
	if _, saved := u.producers[id]; saved {
		return
	}
	if u.producers == nil {
		u.producers = map[string]*hotlog.Producer{}
	}
	if p, ok := cur[id]; ok {
		u.producers[id] = &p
	} else {
		u.producers[id] = nil
	}
}

//go:noinline
func (s *Stream) restore(u *undoState) {
	s.meta, s.recent, s.recentSz, s.segments = u.meta, u.recent, u.recentSz, u.segments
	// From memory, not by reloading them from storage: a failing disk may
	// fail that read too, and a producer left advanced would turn its
	// retry of the failed append into a false duplicate.
	for id, p := range u.producers {
		if p == nil {
			delete(s.producers, id)
		} else {
			s.producers[id] = *p
		}
	}
}

// apply validates one append against the current state and, if accepted,
// adds its effects to batch, s.prodUpd and the state.
func (s *Stream) apply(req *AppendRequest, batch *hotlog.Batch) (AppendResult, error) {
	if s.frozen != nil {
		return AppendResult{}, s.frozen
	}
	m := &s.meta
	tail := func() offset.Token { return s.tokenForTail() }
	closeOnly := len(req.Messages) == 0
	if !closeOnly {
		ct := contentTypeOf(m.ContentType)
		if !ct.SameMedia(req.ContentType) {
			return AppendResult{}, errf(KindConflict, "content type %q does not match the stream's %q", req.ContentType.Full, m.ContentType)
		}
	}
	var prod hotlog.Producer
	if p := req.Producer; p != nil {
		st, known := s.producers[p.ID]
		switch {
		case known && p.Epoch < st.Epoch:
			return AppendResult{}, &Error{Kind: KindStaleEpoch, Epoch: st.Epoch,
				Msg: "producer epoch is stale; a newer epoch has claimed this producer id"}
		case known && p.Epoch == st.Epoch && p.Seq <= st.LastSeq:
			return AppendResult{Outcome: Duplicate, Tail: tail(), Closed: m.Closed, Epoch: st.Epoch, Seq: st.LastSeq}, nil
		}
		if m.Closed && !closeOnly {
			return AppendResult{}, s.closedErr()
		}
		switch {
		case !known && p.Seq != 0:
			return AppendResult{}, &Error{Kind: KindSeqGap, ExpectedSeq: 0, ReceivedSeq: p.Seq,
				Msg: "Sequence conflict: unknown producer: the first request must use Producer-Seq 0"}
		case known && p.Epoch > st.Epoch && p.Seq != 0:
			return AppendResult{}, errf(KindBadRequest, "a new producer epoch must start at Producer-Seq 0")
		case known && p.Epoch == st.Epoch && p.Seq != st.LastSeq+1:
			return AppendResult{}, &Error{Kind: KindSeqGap, ExpectedSeq: st.LastSeq + 1, ReceivedSeq: p.Seq,
				Msg: "Sequence conflict: producer sequence gap"}
		}
		prod = hotlog.Producer{ID: p.ID, Epoch: p.Epoch, LastSeq: p.Seq, Updated: s.reg.now()}
	}
	if m.Closed {
		if closeOnly && req.Producer == nil {
			// Closing a closed stream is idempotent; a producer tuple other
			// than the one that closed it (its retries are duplicates above)
			// is not.
			return AppendResult{Outcome: Appended, Tail: tail(), Closed: true, Epoch: prod.Epoch, Seq: prod.LastSeq}, nil
		}
		return AppendResult{}, s.closedErr()
	}
	if req.StreamSeq != "" {
		if m.StreamSeq != "" && req.StreamSeq <= m.StreamSeq {
			return AppendResult{}, errf(KindConflict, "Sequence conflict: Stream-Seq %q is not greater than the last accepted %q", req.StreamSeq, m.StreamSeq)
		}
		m.StreamSeq = req.StreamSeq
	}
	now := s.reg.now()
	start := m.Tail
	recs := records(contentTypeOf(m.ContentType), req.Messages)
	for i, data := range recs {
		msg := hotlog.Message{Pos: m.Tail, Seg: m.OpenSeg, Data: data, BatchEnd: i == len(recs)-1}
		batch.Messages = append(batch.Messages, msg)
		if m.OpenSegMsgs == 0 {
			m.OpenSegSince = now
		}
		m.Tail += int64(len(data))
		m.OpenSegMsgs++
		m.OpenSegBytes += int64(len(data))
	}
	if req.Producer != nil {
		s.producers[prod.ID] = prod
		if s.prodUpd == nil {
			s.prodUpd = map[string]hotlog.Producer{}
		}
		s.prodUpd[prod.ID] = prod
	}
	if req.Close {
		m.Closed = true
		if req.Producer != nil {
			m.ClosedBy = &hotlog.ProducerKey{ID: prod.ID, Epoch: prod.Epoch, Seq: prod.LastSeq}
		}
	}
	return AppendResult{Outcome: Appended, Tail: tail(), Start: start, Closed: m.Closed, Epoch: prod.Epoch, Seq: prod.LastSeq}, nil
}

// maxRecordBytes bounds the records that records groups JSON messages
// into: reads return whole records, so a record is also the smallest
// unit a read can return.
const maxRecordBytes = 64 << 10

// records turns an append's messages into hot-log records. Consecutive
// JSON messages are joined by commas into records of up to
// maxRecordBytes: readers render what they serve as a JSON array by
// joining records with commas, so clients see the same messages, while a
// batch of a thousand small messages costs a row or two instead of a
// thousand (rows cost far more than bytes, in the commit, in the rotation
// that reads them back, and in the trim). Offsets then fall between
// records only. Records written by older versions hold one message each;
// everything that reads records accepts both.
func records(ct protocol.ContentType, msgs [][]byte) [][]byte {
	if !ct.IsJSON() || len(msgs) < 2 {
		return msgs
	}
	return protocol.JoinJSONRecords(msgs, maxRecordBytes)
}

func (s *Stream) closedErr() *Error {
	return &Error{Kind: KindClosed, Msg: "stream is closed", Tail: s.tokenForTail().String()}
}

// tokenForTail computes the tail token from actor state.
func (s *Stream) tokenForTail() offset.Token {
	return s.stateSnapshot().ownToken(s.meta.Tail)
}

// stateSnapshot is a throwaway Snapshot over the actor's current state,
// used for token arithmetic before publication.
func (s *Stream) stateSnapshot() *Snapshot {
	return &Snapshot{Tail: s.meta.Tail, OpenSeg: s.meta.OpenSeg, OpenSegStart: s.meta.OpenSegStart,
		Segments: s.segments, Fork: s.meta.Fork}
}

// committed updates memory after a durable commit and publishes.
func (s *Stream) committed(b *hotlog.Batch, wasClosed bool) {
	if b.Seal != nil {
		s.segments = append(s.segments[:len(s.segments):len(s.segments)], *b.Seal)
	}
	s.addRecent(b.Messages)
	s.resetSealTimer()
	s.publish()
	if b.Seal != nil {
		// After publishing: the uploader reads the sealed segment from the
		// snapshot and must find it there.
		s.reg.rotationNotify(s, *b.Seal)
	}
	if s.meta.Closed && !wasClosed {
		s.reg.closedNotify(s.id)
	}
}

// addRecent appends committed messages to the in-memory tail cache,
// dropping the oldest beyond the configured budget, but never one the hot
// log lacks (writebehind.go, invariant 2).
//
// It appends in place although published snapshots share the array: a
// snapshot only sees its own length, and only this actor appends, always
// past the longest view it ever published (restore never rewinds past a
// published view: it runs before committed). Copying the cache instead
// cost O(cache) per commit, 125 KB for 256 KiB of 100-byte messages. The
// array's dropped prefix keeps its messages until append reallocates,
// which bounds the memory held to about twice the budget.
func (s *Stream) addRecent(msgs []hotlog.Message) {
	if len(msgs) == 0 {
		return
	}
	limit := s.reg.cfg.RecentBytes
	n := append(s.recent, msgs...)
	sz := s.recentSz
	for _, m := range msgs {
		sz += len(m.Data)
	}
	keepFrom := s.wb.firstPos()
	if keepFrom < 0 {
		keepFrom = s.meta.Tail
	}
	drop := 0
	for drop < len(n)-1 && sz > limit && n[drop].Pos < keepFrom {
		sz -= len(n[drop].Data)
		drop++
	}
	if sz > limit && n[drop].Pos < keepFrom { // a single message above the budget is not cached
		n, sz, drop = nil, 0, 0
	}
	s.recent, s.recentSz = n[drop:], sz
}

// maybeSeal seals the open segment when the policy says so, recording the
// sealed range in the same transaction.
func (s *Stream) maybeSeal(b *hotlog.Batch) {
	m := &s.meta
	pol := s.reg.cfg.Rotation
	if m.OpenSegMsgs == 0 {
		return
	}
	full := (pol.SealBytes > 0 && m.OpenSegBytes >= pol.SealBytes) ||
		(pol.SealMessages > 0 && m.OpenSegMsgs >= pol.SealMessages) ||
		(pol.Enabled && m.Closed)
	if !full {
		return
	}
	s.sealOpen(b)
}

func (s *Stream) sealOpen(b *hotlog.Batch) {
	m := &s.meta
	seg := hotlog.Segment{Seg: m.OpenSeg, Start: m.OpenSegStart, End: m.Tail, Messages: m.OpenSegMsgs,
		Bytes: m.Tail - m.OpenSegStart, State: segment.Sealed, SealedAt: s.reg.now()}
	b.Seal = &seg
	m.OpenSeg++
	m.OpenSegStart = m.Tail
	m.OpenSegMsgs, m.OpenSegBytes, m.OpenSegSince = 0, 0, time.Time{}
}

// resetSealTimer arms the seal by age for the open segment's deadline,
// or disarms it when there is none; a commit that leaves the deadline
// where it was leaves the timer alone.
func (s *Stream) resetSealTimer() {
	age := s.reg.cfg.Rotation.SealAge
	if age <= 0 || s.meta.OpenSegMsgs == 0 {
		s.stopSealTimer()
		return
	}
	at := s.meta.OpenSegSince.Add(age)
	if s.sealTimer != nil && at.Equal(s.sealAt) {
		return
	}
	s.stopSealTimer()
	s.sealGen++
	gen := s.sealGen
	s.sealAt = at
	s.sealTimer = time.AfterFunc(time.Until(at), func() {
		// On the timer's goroutine; an actor that stopped refuses it.
		_ = s.send(context.Background(), sealAgeOp{gen: gen})
	})
}

func (s *Stream) stopSealTimer() {
	if s.sealTimer != nil {
		s.sealTimer.Stop()
		s.sealTimer = nil
	}
}

// sealAgeOp is the seal timer's: seal the open segment, now SealAge old,
// unless the timer it came from was stopped or replaced meanwhile.
type sealAgeOp struct{ gen uint64 }

func (sealAgeOp) fail(error) {}

func (o sealAgeOp) afterCommit(s *Stream) {
	if s.sealTimer != nil && o.gen == s.sealGen {
		s.sealByAge()
	}
}

// sealByAge seals an open segment that has been open for SealAge (or
// that a handoff must seal now).
func (s *Stream) sealByAge() {
	s.stopSealTimer()
	if s.meta.OpenSegMsgs == 0 {
		return
	}
	undo := s.checkpoint()
	var b hotlog.Batch
	s.sealOpen(&b)
	b.Meta = s.meta
	if err := s.commitBatch(&b); err != nil {
		s.lg.Error("age seal failed", "stream", s.path, "err", err)
		s.restore(undo)
		return
	}
	s.committed(&b, s.meta.Closed)
	s.maybeFlush()
}
