package sequencer

import (
	"context"
	"fmt"

	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/invariants"
)

// Write-behind hot logs. With the commit journal, an append is answered
// once its record is durable and its batch is applied to the actor's
// state (meta, producers, segments and the tail cache); the actor writes
// the hot log later, many batches in one transaction. Invariants:
//
//  1. Every batch the journal holds for a stream and the hot log lacks is
//     in the actor's writeBehind, in LSN order, and its LSN stays in
//     flight (streamJournal.inflight) until a flush writes it: the
//     checkpoint LSN stays below it, so the journal keeps the record and
//     a restart replays it.
//  2. The tail cache (Stream.recent) holds every unwritten message: it
//     drops only messages below the first unwritten position. A reader
//     served from the hot log therefore only asks for written positions.
//  3. A batch that seals a segment is written before the actor takes its
//     next op, so the hot log has the segment row (and its messages)
//     before the uploader can ask to trim it; at most one seal is ever
//     unwritten.
//  4. A failed write is kept, never reported to clients (they were
//     answered): the stream refuses writes (5xx) until a later flush
//     succeeds; each drained batch, checkpoint request and stop retries.
//     An actor that stops with unwritten batches hands them to the next
//     actor of the stream (streamJournal.pending); a restart replays
//     them from the journal.
//  5. A new stream (also a fork) is a journal record and a writeBehind
//     with fresh set: its file is written from the empty image by its
//     first flush, never in the request path.
//  6. A fresh writeBehind holds everything the stream has: its creation
//     record and every batch since. It is never due with a seal or past
//     FlushBytes/FlushBatches (it is written then), so it is small. Such
//     a stream needs no file to be served or recovered: a graceful stop
//     leaves it in the journal, and recovery rebuilds it in memory
//     (pending, orphan) for the first checkpoint after the start to write.
//
// Memory: a stream writes once its unwritten data passes
// JournalConfig.FlushBytes or FlushBatches, so the tail cache holds at
// most RecentBytes or FlushBytes plus one batch, whichever is more. All
// unwritten data is in journal records past the checkpoint, and every
// checkpoint (by journal size or age) flushes every stream first, so in
// total it stays below about CheckpointBytes and never exceeds MaxBytes.

// writeBehind is the part of a stream's state that its hot log lacks:
// the batches written to the journal since the last flush, merged into
// one hot log batch.
type writeBehind struct {
	batch   hotlog.Batch   // merged: messages in order, latest meta, latest producer states, the seal
	prodIdx map[string]int // producer id -> index in batch.Producers
	lsns    []uint64       // the journal records merged into batch, ascending
	bytes   int            // message bytes in batch
	// fresh: the stream's hot log has no file yet (invariant 5).
	fresh bool
	// orphan: an actor stopped unable to write this; checkpoints start
	// the stream's next actor to retry.
	orphan bool
}

// empty reports whether nothing is waiting to be written.
func (w *writeBehind) empty() bool { return len(w.lsns) == 0 }

// add merges b, durable in the journal as record lsn.
func (w *writeBehind) add(b *hotlog.Batch, lsn uint64) {
	if w.prodIdx == nil {
		w.prodIdx = map[string]int{}
	}
	w.batch.Messages = append(w.batch.Messages, b.Messages...)
	for _, m := range b.Messages {
		w.bytes += len(m.Data)
	}
	for _, p := range b.Producers {
		if i, ok := w.prodIdx[p.ID]; ok {
			w.batch.Producers[i] = p
			continue
		}
		w.prodIdx[p.ID] = len(w.batch.Producers)
		w.batch.Producers = append(w.batch.Producers, p)
	}
	w.batch.Meta = b.Meta
	if b.Seal != nil {
		w.batch.Seal = b.Seal
	}
	w.lsns = append(w.lsns, lsn)
}

// firstPos is the first unwritten position (invariant 2), or -1.
func (w *writeBehind) firstPos() int64 {
	if len(w.batch.Messages) == 0 {
		return -1
	}
	return w.batch.Messages[0].Pos
}

// due reports whether the actor should write now.
func (w *writeBehind) due(c *JournalConfig) bool {
	return !w.empty() && (w.batch.Seal != nil || int64(w.bytes) >= c.FlushBytes || len(w.lsns) >= c.FlushBatches)
}

// overlay puts the unwritten state on top of what a hot log holds.
func (w *writeBehind) overlay(meta *hotlog.Meta, prods map[string]hotlog.Producer, segs []hotlog.Segment) []hotlog.Segment {
	*meta = w.batch.Meta
	for _, p := range w.batch.Producers {
		prods[p.ID] = p
	}
	if w.batch.Seal != nil {
		segs = append(segs, *w.batch.Seal)
	}
	return segs
}

// commitLater takes b, durable in the journal as record lsn, for a later
// flush (invariant 1). The caller has checked flushErr.
func (s *Stream) commitLater(b *hotlog.Batch, lsn uint64) {
	if b.Seal != nil && s.wb.batch.Seal != nil {
		// Invariant 3: a seal is written before the next op.
		invariants.Failf(s.lg, "sequencer: stream %d: a second unwritten seal (segments %d and %d)", s.id, s.wb.batch.Seal.Seg, b.Seal.Seg)
	}
	first := s.wb.empty()
	s.wb.add(b, lsn)
	if first {
		s.reg.jnl.track(s)
	}
}

// flush writes the unwritten batches to the hot log in one transaction.
// On failure they stay unwritten and the stream refuses writes until a
// flush succeeds (invariant 4).
func (s *Stream) flush() error {
	if s.wb.empty() {
		s.flushErr = nil
		return nil
	}
	if err := s.log.Commit(context.Background(), &s.wb.batch); err != nil {
		if s.flushErr == nil {
			s.lg.Error("hot log write failed; the stream refuses writes until it succeeds",
				"stream", s.path, "id", s.id, "records", len(s.wb.lsns), "err", err)
		}
		s.flushErr = fmt.Errorf("hot log cannot take data: %w", err)
		return s.flushErr
	}
	if s.flushErr != nil {
		s.lg.Info("hot log writable again", "stream", s.path, "id", s.id)
	}
	s.flushErr = nil
	s.reg.jnl.flushed(s, s.wb.lsns)
	s.wb = writeBehind{}
	return nil
}

// maybeFlush writes when the unwritten data is due (see writeBehind.due).
func (s *Stream) maybeFlush() {
	if sj := s.reg.jnl; sj != nil && s.wb.due(&sj.cfg) {
		_ = s.flush() // logged; the stream refuses writes until a retry succeeds
	}
}

// flushAtStop writes what is unwritten as the actor stops. What cannot
// be written is handed to the stream's next actor; a stream deleted for
// real drops it, since its records will never be replayed (the catalog
// no longer has it).
//
// At a graceful stop of the server (the registry is closing) a stream
// whose file was never written is not written either (invariant 6): its
// records stay in the journal, which the final checkpoint keeps, and the
// next start rebuilds its state in memory from them (replayer.fresh)
// without writing a file. A stop after a burst of new streams therefore
// costs no SQLite file per stream.
func (s *Stream) flushAtStop() {
	sj := s.reg.jnl
	if sj == nil || s.wb.empty() || sj.abandoned.Load() {
		return
	}
	if s.deleted && !s.softDeleted {
		sj.flushed(s, s.wb.lsns) // nothing to apply them to
		return
	}
	if s.wb.fresh && !s.log.Written() && s.reg.isClosing() {
		wb := s.wb
		wb.orphan = true
		sj.handOver(s.id, &wb)
		return
	}
	if s.flush() != nil {
		wb := s.wb
		wb.fresh = wb.fresh && !s.log.Written()
		wb.orphan = true
		sj.handOver(s.id, &wb)
	}
}

// flushOp asks the actor to write what is unwritten (a checkpoint, or a
// caller about to look at the hot log).
type flushOp struct{ reply chan error }

func (o flushOp) fail(err error) { o.reply <- err }

func (o flushOp) afterCommit(s *Stream) { o.reply <- s.flush() }

// requestFlush asks the actor to flush; it returns once it has, or at
// once if the actor is gone (which flushed as it stopped).
func (s *Stream) requestFlush(ctx context.Context) error {
	reply := make(chan error, 1)
	if err := s.send(ctx, flushOp{reply: reply}); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushAll asks every stream with unwritten batches to write them, all
// at once, and waits for them. Streams whose last actor stopped unable to
// write, or that recovery rebuilt in memory, get a new actor first, which
// writes them; otherwise a stream nobody uses again would hold back every
// checkpoint until the journal is full.
func (sj *streamJournal) flushAll(ctx context.Context) {
	sj.mu.Lock()
	var orphans []int64
	for id, wb := range sj.pending {
		if wb.orphan {
			orphans = append(orphans, id)
		}
	}
	sj.mu.Unlock()
	if sj.reg.isClosing() {
		// No actor starts any more: the journal keeps their records for
		// the next start (invariant 6).
		orphans = nil
	}
	for _, id := range orphans {
		if _, release, err := sj.reg.acquireID(ctx, id); err == nil {
			release()
		}
	}
	sj.mu.Lock()
	streams := make([]*Stream, 0, len(sj.unflushed))
	for _, s := range sj.unflushed {
		streams = append(streams, s)
	}
	sj.mu.Unlock()
	type waiting struct {
		s     *Stream
		reply chan error
	}
	var ws []waiting
	for _, s := range streams {
		reply := make(chan error, 1)
		if s.send(ctx, flushOp{reply: reply}) == nil {
			ws = append(ws, waiting{s, reply})
		}
	}
	for _, w := range ws {
		select {
		case <-w.reply:
		case <-w.s.done:
		case <-ctx.Done():
			return
		}
	}
}
