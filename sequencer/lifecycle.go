package sequencer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// DefaultContentType is used when a PUT names none.
const DefaultContentType = "application/octet-stream"

// CreateRequest is a validated PUT.
type CreateRequest struct {
	Path        string
	ContentType *protocol.ContentType // nil: default, or the fork source's
	TTL         *time.Duration
	ExpiresAt   *time.Time
	Closed      bool
	Initial     [][]byte // initial messages (JSON already split)
	Fork        *ForkRequest
}

// ForkRequest names the source of a fork and where it branches.
type ForkRequest struct {
	Source    string        // stream path of the source
	Offset    *offset.Token // nil: the source's tail
	SubOffset int64
}

// CreateResult reports a successful PUT.
type CreateResult struct {
	Created bool // false: the stream already existed with the same configuration
	Handle  *Handle
	// Start is the stream position of the first byte of the request's
	// initial data (valid when Created).
	Start int64
}

// Create creates the stream or confirms an identical existing one.
func (r *Registry) Create(ctx context.Context, req *CreateRequest) (*CreateResult, error) {
	paths := []string{req.Path}
	if req.Fork != nil {
		// The source's lock too: a deletion of the source and the fork's
		// creation must reach the catalog in the order of their journal
		// records, since they do not commute (see journalcatalog.go).
		paths = append(paths, req.Fork.Source)
	}
	unlock := r.lockPaths(paths...)
	defer unlock()
	row, err := r.cat.Get(ctx, req.Path)
	switch {
	case err == nil && !row.DeletedAt.IsZero():
		return nil, errf(KindConflict, "a deleted stream at this path is still referenced by forks")
	case err == nil && r.expired(row):
		soft, err := r.expire(ctx, row)
		if err != nil {
			return nil, err
		}
		if soft {
			return nil, errf(KindConflict, "a deleted stream at this path is still referenced by forks")
		}
	case err == nil:
		return r.confirmExisting(ctx, req, row)
	case !errors.Is(err, catalog.ErrNotFound):
		return nil, internal("catalog lookup", err)
	}
	return r.createNew(ctx, req)
}

// effective is the configuration a create request asks for.
type effective struct {
	ct        string
	ttl       time.Duration
	expiresAt time.Time
	source    *catalog.Stream
}

func (r *Registry) effectiveConfig(ctx context.Context, req *CreateRequest) (effective, error) {
	var e effective
	if req.Fork != nil {
		src, err := r.liveRow(ctx, req.Fork.Source, true) // Create holds its lock
		switch {
		case KindOf(err) == KindNotFound:
			return e, errf(KindNotFound, "fork source stream not found")
		case KindOf(err) == KindGone:
			return e, errf(KindConflict, "fork source stream was deleted")
		case err != nil:
			return e, err
		}
		e.source = &src
		e.ct = src.ContentType
		e.ttl, e.expiresAt = src.TTL, src.ExpiresAt
	} else {
		e.ct = DefaultContentType
	}
	if req.ContentType != nil {
		if e.source != nil && !contentTypeOf(e.source.ContentType).SameMedia(*req.ContentType) {
			return e, errf(KindConflict, "fork content type %q differs from the source's %q", req.ContentType.Full, e.source.ContentType)
		}
		e.ct = req.ContentType.Full
	}
	if req.TTL != nil || req.ExpiresAt != nil {
		e.ttl, e.expiresAt = 0, time.Time{}
		if req.TTL != nil {
			e.ttl = *req.TTL
		}
		if req.ExpiresAt != nil {
			e.expiresAt = req.ExpiresAt.UTC().Truncate(time.Millisecond)
		}
	}
	return e, nil
}

func (r *Registry) confirmExisting(ctx context.Context, req *CreateRequest, row catalog.Stream) (*CreateResult, error) {
	e, err := r.effectiveConfig(ctx, req)
	if err != nil && KindOf(err) != KindConflict {
		return nil, err
	}
	conflict := err != nil ||
		!contentTypeOf(row.ContentType).SameMedia(contentTypeOf(e.ct)) ||
		row.TTL != e.ttl || !row.ExpiresAt.Equal(e.expiresAt)
	if !conflict {
		st, release, err := r.acquireID(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		if st.Snapshot().Closed != req.Closed {
			release()
			return nil, errf(KindConflict, "stream already exists with a different closed state")
		}
		release()
	}
	if req.Fork == nil && row.ParentID != 0 {
		conflict = true // a plain stream was asked for; this is a fork
	}
	if f := req.Fork; f != nil && !conflict {
		conflict = e.source == nil || row.ParentID != e.source.ID ||
			(f.Offset != nil && row.ForkOffset != f.Offset.String()) || row.ForkSubOffset != f.SubOffset
	}
	if conflict {
		return nil, errf(KindConflict, "stream already exists with a different configuration")
	}
	st, release, err := r.acquireID(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	return &CreateResult{Created: false, Handle: &Handle{st: st, Info: row, release: release}}, nil
}

func (r *Registry) createNew(ctx context.Context, req *CreateRequest) (*CreateResult, error) {
	if r.Draining() {
		return nil, ErrDraining
	}
	e, err := r.effectiveConfig(ctx, req)
	if err != nil {
		return nil, err
	}
	id, err := r.cat.AllocateID(ctx)
	if err != nil {
		return nil, internal("allocate stream id", err)
	}
	// The lease comes before any data: a node that crashes after writing
	// the hot log must be found as the stream's owner.
	if err := r.fenceAcquire(ctx, id); err != nil {
		return nil, err
	}
	now := r.now()
	meta := hotlog.Meta{StreamID: id, ContentType: e.ct, CreatedAt: now, Closed: req.Closed}
	var msgs []hotlog.Message
	row := catalog.Stream{ID: id, Path: req.Path, ContentType: e.ct, TTL: e.ttl, ExpiresAt: e.expiresAt,
		LastAccess: now, Closed: req.Closed, CreatedAt: now}
	if f := req.Fork; f != nil {
		src, release, err := r.acquireID(ctx, e.source.ID)
		if err != nil {
			return nil, err
		}
		base, prefix, err := src.ForkPoint(ctx, f.Offset, f.SubOffset)
		release()
		if err != nil {
			return nil, err
		}
		meta.Fork = &base
		meta.Tail = base.Pos
		meta.OpenSeg, meta.OpenSegStart = base.Seg+1, base.Pos
		if base.Shared {
			meta.OpenSeg, meta.OpenSegStart = base.Seg, base.SegStart
		}
		msgs = append(msgs, prefix...)
		row.ParentID = e.source.ID
		if f.Offset != nil {
			row.ForkOffset = f.Offset.String()
		}
		row.ForkSubOffset = f.SubOffset
	}
	start := meta.Tail
	for _, m := range msgs {
		start += int64(len(m.Data))
	}
	initial := records(contentTypeOf(e.ct), req.Initial)
	for i, data := range initial {
		msgs = append(msgs, hotlog.Message{Data: data, BatchEnd: i == len(initial)-1})
	}
	for i := range msgs {
		msgs[i].Pos, msgs[i].Seg = meta.Tail, meta.OpenSeg
		meta.Tail += int64(len(msgs[i].Data))
		meta.OpenSegMsgs++
		meta.OpenSegBytes += int64(len(msgs[i].Data))
		meta.OpenSegSince = now
	}
	if err := r.createHotLog(ctx, row, meta, msgs); err != nil {
		return nil, internal("create hot log", err)
	}
	err = r.insertRow(ctx, row)
	if err == nil {
		r.rows.inserted(row)
	} else {
		r.rows.forgetPath(req.Path)
	}
	if row.ParentID != 0 {
		r.rows.forgetIDs(row.ParentID) // its reference count went up
	}
	if err != nil {
		r.abandonCreate(id)
		r.fenceRelease(id)
		switch {
		case errors.Is(err, catalog.ErrParentGone):
			return nil, errf(KindConflict, "fork source stream was deleted")
		case errors.Is(err, catalog.ErrExists):
			return nil, errf(KindConflict, "stream already exists")
		}
		return nil, internal("catalog insert", err)
	}
	r.counters.created.Add(1)
	r.lifecycle(LifecycleEvent{Stream: row, Time: now})
	st, release, err := r.acquireID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &CreateResult{Created: true, Handle: &Handle{st: st, Info: row, release: release}, Start: start}, nil
}

// Delete deletes the stream at path: softly (410 from now on) while forks
// still reference it, otherwise for real, cascading to deleted ancestors.
func (r *Registry) Delete(ctx context.Context, path string) error {
	unlock := r.lockPath(path)
	defer unlock()
	row, err := r.liveRow(ctx, path, true)
	if err != nil {
		return err
	}
	return r.deleteRow(ctx, row)
}

func (r *Registry) deleteRow(ctx context.Context, row catalog.Stream) error {
	// Only the owner deletes: the hot files are on its disk.
	if err := r.fenceAcquire(ctx, row.ID); err != nil {
		return err
	}
	res, err := r.deleteStream(ctx, row, false)
	r.forgetDeleted(row, res)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return errNotFound
	case errors.Is(err, catalog.ErrSoftDeleted):
		return errGone
	case err != nil:
		return internal("catalog delete", err)
	}
	r.lifecycle(LifecycleEvent{Deleted: true, Stream: row, Time: r.now()})
	r.applyDelete(ctx, row.ID, res)
	return nil
}

// forgetDeleted drops the cached rows that a catalog Delete of row may
// have changed; it runs whatever Delete returned, since even an error may
// follow a commit.
func (r *Registry) forgetDeleted(row catalog.Stream, res catalog.DeleteResult) {
	if row.ParentID != 0 {
		// Ancestors' reference counts went down, and not all of them are
		// known here.
		r.rows.forgetAll()
		return
	}
	r.rows.forgetPath(row.Path)
	r.rows.forgetIDs(res.HardIDs...)
}

// applyDelete tells open actors about a committed deletion and removes the
// hot files of streams deleted for real.
func (r *Registry) applyDelete(ctx context.Context, id int64, res catalog.DeleteResult) {
	r.counters.deleted.Add(1)
	if res.Soft {
		if st := r.openStream(id); st != nil {
			st.markDeleted(ctx, true)
		}
	}
	for _, hid := range res.HardIDs {
		if st := r.openStream(hid); st != nil {
			st.markDeleted(ctx, false)
			r.retire(st)
		}
	}
	r.dropPending(res.HardIDs)
	r.collect(ctx, res.HardIDs)
}

// collect hands streams deleted for real, their actors stopped, to the
// collector.
func (r *Registry) collect(ctx context.Context, ids []int64) {
	if len(ids) > 0 {
		r.cfg.Collector.Collect(ctx, ids)
	}
}

// collectPending finishes deletions interrupted by a crash.
func (r *Registry) collectPending(ctx context.Context) {
	ids, err := r.cat.PendingGC(ctx, 10000)
	if err != nil {
		r.lg.Warn("list pending gc", "err", err)
		return
	}
	r.collect(ctx, ids)
}

// staleEvery is how often a node of a cluster looks for hot files of
// streams that are not its any more (collectStale): such files are rare,
// and each look costs catalog reads for every local stream this node
// holds no live lease of.
const staleEvery = 10 * time.Minute

// collectStale removes the hot files on this node of streams that are no
// longer its own, and returns how many it removed: streams another node
// deleted for real (a fork's deletion there cascading to an ancestor
// here), and streams whose lease another node holds (their data reached
// it through the cold tier; a copy here is stale, and a drain would trip
// over it). A stream whose lease is free keeps its files: they may be all
// there is of it (a stream never leased, or a handoff cut short before
// its release). Each stream is marked as handing off while it is judged
// and removed, so no actor starts for it meanwhile. Cluster mode only:
// on one node every deletion removes the files itself.
func (r *Registry) collectStale(ctx context.Context) (int, error) {
	if r.cfg.Fence == nil || r.cfg.NodeID == "" {
		return 0, nil
	}
	ids, err := hotlog.StreamIDs(r.cfg.DataDir)
	if err != nil {
		return 0, fmt.Errorf("sequencer: stale hot logs: %w", err)
	}
	removed := 0
	var errs []error
	for _, id := range ids {
		if r.cfg.Fence.Check(id) == nil {
			continue // its lease is held here
		}
		stale, err := r.removeIfStale(ctx, id)
		if err != nil {
			errs = append(errs, err)
		} else if stale {
			removed++
		}
	}
	if removed > 0 {
		r.lg.Info("removed hot logs of streams deleted or served elsewhere", "count", removed)
	}
	return removed, errors.Join(errs...)
}

// removeIfStale removes the hot files of stream id if it is not this
// node's any more (see collectStale).
func (r *Registry) removeIfStale(ctx context.Context, id int64) (bool, error) {
	if r.jnl != nil && r.jnl.created(id) {
		return false, nil
	}
	if !r.beginHandoff(id) {
		return false, nil
	}
	defer r.endHandoff(id)
	r.mu.Lock()
	open := r.slots[id] != nil
	r.mu.Unlock()
	if open {
		return false, nil
	}
	stale, err := r.staleHere(ctx, id)
	if err != nil || !stale {
		return false, err
	}
	if err := r.cfg.Collector.RemoveHot(id); err != nil {
		return false, fmt.Errorf("sequencer: remove stale hot log of %d: %w", id, err)
	}
	return true, nil
}

// staleHere reports whether stream id was deleted for real, or is leased
// by another node and has no handoff of this node in progress.
func (r *Registry) staleHere(ctx context.Context, id int64) (bool, error) {
	if _, err := r.cat.GetByID(ctx, id); errors.Is(err, catalog.ErrNotFound) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	l, err := r.cat.GetLease(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case l.Node == "" || l.Node == r.cfg.NodeID:
		return false, nil
	}
	h, err := r.cat.GetHandoff(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return h.Node != r.cfg.NodeID || h.Complete, nil
}

func (r *Registry) openStream(id int64) *Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sl := r.slots[id]; sl != nil {
		return sl.st
	}
	return nil
}

type deleteOp struct {
	soft  bool
	reply chan struct{}
}

func (o deleteOp) fail(error) { close(o.reply) }

func (o deleteOp) afterCommit(s *Stream) {
	s.deleted, s.softDeleted = true, o.soft
	s.publish()
	close(o.reply)
}

// markDeleted has the actor publish a final snapshot that wakes live
// readers with the deletion.
func (s *Stream) markDeleted(ctx context.Context, soft bool) {
	reply := make(chan struct{}, 1)
	if s.send(ctx, deleteOp{soft: soft, reply: reply}) == nil {
		select {
		case <-reply:
		case <-s.done:
		}
	}
}

// trimOp asks the actor to record an uploaded segment and trim its rows.
type trimOp struct {
	seg      int64
	key      string
	checksum uint32
	reply    chan error
}

func (o trimOp) fail(err error) { o.reply <- err }

func (o trimOp) afterCommit(s *Stream) { o.reply <- s.trim(&o) }

// Trim records that segment seg is uploaded and verified under key and
// drops its rows from the hot log.
func (s *Stream) Trim(ctx context.Context, seg int64, key string, checksum uint32) error {
	reply := make(chan error, 1)
	if err := s.send(ctx, trimOp{seg: seg, key: key, checksum: checksum, reply: reply}); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		select {
		case err := <-reply:
			return err
		default:
			return s.goneErr()
		}
	}
}

func (s *Stream) trim(op *trimOp) error {
	// The segment's row must be in the hot log (writebehind.go, invariant
	// 3); this only writes if an earlier write failed.
	if err := s.flush(); err != nil {
		return err
	}
	// Publish "uploaded" before deleting the rows: a reader that misses the
	// rows must then find the segment marked cold. The object is verified
	// already, so cold reads of it are valid from this moment.
	prev := s.segments
	segs := make([]hotlog.Segment, len(prev))
	copy(segs, prev)
	for i := range segs {
		if segs[i].Seg == op.seg {
			segs[i].State, segs[i].ObjectKey, segs[i].Checksum = segment.Uploaded, op.key, op.checksum
		}
	}
	s.segments = segs
	s.publish()
	if err := s.log.MarkUploaded(context.Background(), op.seg, op.key, op.checksum); err != nil {
		s.segments = prev
		s.publish()
		return err
	}
	return nil
}

// ---- expiry ----

func (r *Registry) touch(id int64) {
	r.accessMu.Lock()
	r.access[id] = r.now()
	r.dirty[id] = struct{}{}
	r.accessMu.Unlock()
}

// lastAccess is the newer of the catalog's and the in-memory access time.
// In-memory times stay for a while after being flushed, so a catalog row
// read just before a flush committed is never judged by a stale time.
func (r *Registry) lastAccess(row catalog.Stream) time.Time {
	r.accessMu.Lock()
	t, ok := r.access[row.ID]
	r.accessMu.Unlock()
	if ok && t.After(row.LastAccess) {
		return t
	}
	return row.LastAccess
}

func (r *Registry) expired(row catalog.Stream) bool {
	if !row.ExpiresAt.IsZero() && !r.now().Before(row.ExpiresAt) {
		return true
	}
	if row.TTL > 0 {
		return !r.now().Before(r.lastAccess(row).Add(row.TTL))
	}
	return false
}

// expire deletes an expired stream; it reports whether the delete was soft.
func (r *Registry) expire(ctx context.Context, row catalog.Stream) (bool, error) {
	if err := r.fenceAcquire(ctx, row.ID); err != nil {
		return false, err
	}
	res, err := r.deleteStream(ctx, row, true)
	r.forgetDeleted(row, res)
	switch {
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, catalog.ErrSoftDeleted):
		return errors.Is(err, catalog.ErrSoftDeleted), nil
	case err != nil:
		return false, internal("expire stream", err)
	}
	r.counters.expired.Add(1)
	r.lifecycle(LifecycleEvent{Deleted: true, Expired: true, Stream: row, Time: r.now()})
	r.applyDelete(ctx, row.ID, res)
	return res.Soft, nil
}

// flusher persists access times every second so sliding TTLs survive a
// restart (at most about a second early).
func (r *Registry) flusher() {
	defer r.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
			r.flushAccess(context.Background())
		}
	}
}

func (r *Registry) flushAccess(ctx context.Context) {
	const keep = 10 * time.Second
	r.accessMu.Lock()
	batch := make(map[int64]time.Time, len(r.dirty))
	for id := range r.dirty {
		batch[id] = r.access[id]
	}
	clear(r.dirty)
	r.accessMu.Unlock()
	if len(batch) > 0 {
		if err := r.touchStreams(ctx, batch); err != nil {
			r.lg.Warn("persist access times", "err", err)
			r.accessMu.Lock()
			for id := range batch {
				r.dirty[id] = struct{}{}
			}
			r.accessMu.Unlock()
			return
		}
		r.rows.touched(batch)
	}
	cutoff := r.now().Add(-keep)
	r.accessMu.Lock()
	for id, t := range r.access {
		if _, d := r.dirty[id]; !d && t.Before(cutoff) {
			delete(r.access, id)
		}
	}
	r.accessMu.Unlock()
}

// Sweeps read expired streams in pages of sweepPage rows, at most
// sweepPages of them per sweep; the next sweep goes on from there.
const (
	sweepPage  = 256
	sweepPages = 4
)

// sweeper deletes expired streams within about 200ms of their deadline
// and, in cluster mode, removes stale hot logs every staleEvery.
func (r *Registry) sweeper() {
	defer r.bg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var (
		after     catalog.ExpiryCursor
		lastStale time.Time
	)
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
			after = r.sweep(context.Background(), after)
		}
		if time.Since(lastStale) >= staleEvery {
			lastStale = time.Now()
			if _, err := r.collectStale(context.Background()); err != nil {
				r.lg.Warn("remove stale hot logs", "err", err)
			}
		}
	}
}

// sweep expires the expired streams this node may expire, from the cursor
// after on, and returns where the next sweep starts: at the beginning
// again once a page came back short. In cluster mode the catalog lists
// only this node's streams and those no node holds
// (catalog.ExpiredFor), and streams left for later (a sliding TTL renewed
// since the last flush, a lease another node claimed first) are passed
// by the cursor, so neither other nodes' streams nor such ones can fill
// every page and starve the rest.
func (r *Registry) sweep(ctx context.Context, after catalog.ExpiryCursor) catalog.ExpiryCursor {
	node := ""
	if r.cfg.Fence != nil {
		node = r.cfg.NodeID
	}
	for range sweepPages {
		rows, next, err := r.cat.ExpiredFor(ctx, node, r.now(), after, sweepPage)
		if err != nil {
			r.lg.Warn("list expired streams", "err", err)
			return after
		}
		r.expireAll(ctx, rows)
		if len(rows) < sweepPage {
			return catalog.ExpiryCursor{}
		}
		after = next
	}
	return after
}

// expireAll expires those of rows that are still expired, and whose lease
// this node holds or can take.
func (r *Registry) expireAll(ctx context.Context, rows []catalog.Stream) {
	for _, row := range rows {
		if !r.expired(row) {
			continue // renewed since the last flush
		}
		if !r.mayExpire(ctx, row.ID) {
			continue // its owner expires it
		}
		unlock := r.lockPath(row.Path)
		cur, err := r.cat.GetByID(ctx, row.ID)
		if err == nil && cur.DeletedAt.IsZero() && r.expired(cur) {
			if _, err := r.expire(ctx, cur); err != nil {
				r.lg.Warn("expire stream", "path", cur.Path, "err", err)
			}
		}
		unlock()
	}
}
