package sequencer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/journal"
)

// The catalog on the commit journal. Every acknowledged catalog change is
// carried by a journal record: a creation (also a fork, with its parent)
// by the stream-create record, a deletion (by a request or by expiry) by
// a stream-delete record, access times that move sliding deadlines by a
// stream-touch record, and a close by the stream-batch that closed the
// stream. On SQLite the catalog then commits these changes without a
// sync of its own (catalog.Journaled), together with its applied journal
// position.
//
// Crash safety of a catalog change, in order:
//  1. its record is durable in the journal (held in flight, so that no
//     checkpoint passes it);
//  2. the catalog commits the change unsynced, with the applied position
//     (catalogPos): every record up to it has its catalog change
//     committed at or before this transaction;
//  3. the record leaves flight, or, if the catalog refused the change,
//     a stream-abort record voids it first;
//  4. the client is answered.
//
// A checkpoint's synced catalog commit makes every change before it
// durable; recovery (replayCatalog) redoes the catalog records after the
// catalog's applied position, in log order and idempotently, before the
// hot logs are replayed and anything serves.
//
// Order matters where changes do not commute: a fork takes its parent's
// path lock (Create) so that its creation and a deletion of the parent
// commit to the catalog in the order of their records.

// catalogPos returns the catalog position of a change carried by record
// lsn: the highest position up to which every record other than lsn is
// out of flight, and so has its catalog change committed already, capped
// at lsn itself.
func (sj *streamJournal) catalogPos(lsn uint64) catalog.Journaled {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	applied := lsn
	if l, ok := sj.inflight.minExcept(lsn); ok && l <= applied {
		applied = l - 1
	}
	return catalog.Journaled{LSN: lsn, Applied: applied}
}

// abort writes a stream-abort record that voids record lsn of stream id,
// whose change the catalog refused, and takes both out of flight.
func (sj *streamJournal) abort(lsn uint64, id int64) error {
	e := &encoder{}
	e.uint(recordVersion)
	e.int(id)
	e.uint(lsn)
	alsn, err := sj.write(journal.KindStreamAbort, e.b)
	if err != nil {
		return err
	}
	sj.mu.Lock()
	sj.done(lsn)
	sj.done(alsn)
	sj.mu.Unlock()
	return nil
}

// catalogDone takes record lsn of stream id out of flight once the
// catalog has its change; if the catalog refused it (err), a stream-abort
// record voids it first, so that no recovery applies what the client was
// refused. Should that record fail too, the record stays in flight and
// holds checkpoints back until a restart.
func (sj *streamJournal) catalogDone(lsn uint64, id int64, err error) {
	if err == nil {
		sj.mu.Lock()
		sj.done(lsn)
		sj.mu.Unlock()
		return
	}
	if aerr := sj.abort(lsn, id); aerr != nil {
		sj.reg.lg.Error("journal: void a record the catalog refused", "stream", id, "lsn", lsn, "err", err, "abort_err", aerr)
	}
}

// insertRow enters a new stream in the catalog. With the journal, its
// stream-create record (createHotLog) carries the row.
func (r *Registry) insertRow(ctx context.Context, row catalog.Stream) error {
	sj := r.jnl
	if sj == nil {
		return r.cat.Insert(ctx, row)
	}
	sj.mu.Lock()
	p := sj.pending[row.ID]
	var lsn uint64
	if p != nil && p.fresh && len(p.lsns) > 0 {
		lsn = p.lsns[0]      // the stream-create record
		sj.inflight.add(lsn) // the catalog's hold, beside the hot log's
	}
	sj.mu.Unlock()
	if lsn == 0 {
		return r.cat.Insert(ctx, row) // no record carries it: synced
	}
	err := r.cat.InsertJournaled(ctx, row, sj.catalogPos(lsn))
	sj.catalogDone(lsn, row.ID, err)
	return err
}

// deleteStream deletes stream row in the catalog, recording the deletion
// in the journal first.
func (r *Registry) deleteStream(ctx context.Context, row catalog.Stream, expired bool) (catalog.DeleteResult, error) {
	sj := r.jnl
	if sj == nil {
		return r.cat.Delete(ctx, row.ID)
	}
	rec := streamDelete{id: row.ID, path: row.Path, at: r.now(), expired: expired}
	lsn, err := sj.write(journal.KindStreamDelete, rec.encode())
	if err != nil {
		return catalog.DeleteResult{}, fmt.Errorf("journal stream delete: %w", err)
	}
	res, err := r.cat.DeleteJournaled(ctx, row.ID, rec.at, sj.catalogPos(lsn))
	sj.catalogDone(lsn, row.ID, err)
	return res, err
}

// touchStreams records last access times in the catalog, through the
// journal. They are not acknowledged to anyone: a record whose catalog
// write failed stays valid (the accesses happened) and is not voided.
func (r *Registry) touchStreams(ctx context.Context, access map[int64]time.Time) error {
	sj := r.jnl
	if sj == nil {
		return r.cat.TouchMany(ctx, access)
	}
	rec := streamTouch{access: access}
	lsn, err := sj.write(journal.KindStreamTouch, rec.encode())
	if err != nil {
		return fmt.Errorf("journal stream touch: %w", err)
	}
	err = r.cat.TouchManyJournaled(ctx, access, sj.catalogPos(lsn))
	sj.mu.Lock()
	sj.done(lsn)
	sj.mu.Unlock()
	return err
}

// setClosed records in the catalog that stream id was closed. With the
// journal, the closing batch's record carries it: the actor, which calls
// this, has just applied that record (its meta's AppliedLSN). The record
// is out of flight already, so the write does not advance the catalog's
// applied position; recovery redoes closes from the checkpoint on
// instead (replayCatalog).
func (r *Registry) setClosed(ctx context.Context, id int64) error {
	var lsn uint64
	if r.jnl != nil {
		if st := r.openStream(id); st != nil {
			lsn = st.meta.AppliedLSN // on st's actor goroutine
		}
	}
	return r.cat.SetClosedJournaled(ctx, id, catalog.Journaled{LSN: lsn})
}

// replayCatalog redoes the catalog changes of the records after the
// catalog's applied position (or the checkpoint, if later), and the
// closes of the batches after the checkpoint (see setClosed), in log
// order, before the hot logs are replayed: that replay asks the catalog
// which streams exist. Every change is applied only if the catalog does
// not have it yet, so repeating the replay changes nothing. Records
// voided by a stream-abort record (aborted) are skipped.
//
// A catalog whose commits are durable by themselves (PostgreSQL, shared
// by the nodes) already has every change and is left alone.
func (sj *streamJournal) replayCatalog(ctx context.Context, aborted map[uint64]bool) (int, error) {
	cat := sj.cat
	if !cat.DefersSync() {
		return 0, nil
	}
	pos, err := cat.JournalPositions(ctx, sj.reg.cfg.Journal.Node)
	if err != nil {
		return 0, err
	}
	n := 0
	applied := max(pos.Checkpoint, pos.Catalog)
	err = sj.j.Replay(pos.Checkpoint, func(rec journal.Record) error {
		if aborted[rec.LSN] || (rec.LSN <= applied && rec.Kind != journal.KindStreamBatch) {
			return nil
		}
		changed, err := replayCatalogRecord(ctx, cat, rec)
		if err != nil {
			return fmt.Errorf("catalog replay, lsn %d (%v): %w", rec.LSN, rec.Kind, err)
		}
		if changed {
			n++
		}
		return nil
	})
	return n, err
}

// replayCatalogRecord redoes the catalog change of rec, if it has one and
// the catalog lacks it; it reports whether the catalog changed. A change
// the catalog refuses now was refused when it was made (the record was
// durable before the catalog looked), so the refusal is the outcome.
func replayCatalogRecord(ctx context.Context, cat *catalog.Catalog, rec journal.Record) (bool, error) {
	jr := catalog.Journaled{LSN: rec.LSN, Applied: rec.LSN}
	var err error
	switch rec.Kind {
	case journal.KindStreamCreate:
		var c streamCreate
		if c, err = decodeStreamCreate(rec.Payload); err != nil {
			return false, err
		}
		if _, err = cat.GetByID(ctx, c.row.ID); !errors.Is(err, catalog.ErrNotFound) {
			return false, err
		}
		err = cat.InsertJournaled(ctx, c.row, jr)
		if errors.Is(err, catalog.ErrExists) || errors.Is(err, catalog.ErrParentGone) {
			return false, nil
		}
	case journal.KindStreamDelete:
		var d streamDelete
		if d, err = decodeStreamDelete(rec.Payload); err != nil {
			return false, err
		}
		_, err = cat.DeleteJournaled(ctx, d.id, d.at, jr)
	case journal.KindStreamTouch:
		var t streamTouch
		if t, err = decodeStreamTouch(rec.Payload); err != nil {
			return false, err
		}
		err = cat.TouchManyJournaled(ctx, t.access, jr)
	case journal.KindStreamBatch:
		// Only the head of the record: the catalog keeps the closure.
		d := &decoder{b: rec.Payload}
		d.version()
		id := d.int()
		m := d.meta()
		if d.err != nil {
			return false, fmt.Errorf("decode stream batch record: %w", d.err)
		}
		if !m.Closed {
			return false, nil
		}
		err = cat.SetClosedJournaled(ctx, id, jr)
	default:
		return false, nil
	}
	if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrSoftDeleted) {
		return false, nil // deleted already (later in the log, or before it)
	}
	return err == nil, err
}

// streamDelete is a journal record of kind KindStreamDelete.
type streamDelete struct {
	id      int64
	path    string // for a reader of the feed; the id decides
	at      time.Time
	expired bool // deleted by expiry, not by a request
}

func (r *streamDelete) encode() []byte {
	e := &encoder{b: make([]byte, 0, 32+len(r.path))}
	e.uint(recordVersion)
	e.int(r.id)
	e.string(r.path)
	e.time(r.at)
	e.bool(r.expired)
	return e.b
}

func decodeStreamDelete(p []byte) (streamDelete, error) {
	d := &decoder{b: p}
	d.version()
	r := streamDelete{id: d.int(), path: d.string(), at: d.time(), expired: d.bool()}
	return r, d.done("stream delete")
}

// streamTouch is a journal record of kind KindStreamTouch: last access
// times by stream id.
type streamTouch struct {
	access map[int64]time.Time
}

func (r *streamTouch) encode() []byte {
	e := &encoder{b: make([]byte, 0, 8+12*len(r.access))}
	e.uint(recordVersion)
	e.uint(uint64(len(r.access)))
	for _, id := range slices.Sorted(maps.Keys(r.access)) {
		e.int(id)
		e.time(r.access[id])
	}
	return e.b
}

func decodeStreamTouch(p []byte) (streamTouch, error) {
	d := &decoder{b: p}
	d.version()
	n := d.count(2)
	r := streamTouch{access: make(map[int64]time.Time, n)}
	for range n {
		id := d.int()
		r.access[id] = d.time()
	}
	return r, d.done("stream touch")
}
