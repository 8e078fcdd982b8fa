package sequencer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/internal/vfs"
)

// Handoff moves a stream to another node without copying its hot log: the
// node that owns it seals and uploads everything and leaves the rest of
// the stream's state in the catalog; the next owner builds a new hot log
// from that state and continues at the same offset. Nothing is ever in two
// hot logs that could both take appends, so a handoff interrupted by a
// crash at any step leaves the stream either still owned by the old node
// with its hot log or fully handed off.
//
// The steps of Registry.Handoff, in order:
//
//  1. the stream is marked as handing off: no actor starts for it here
//     until the end (requests get 503 with Retry-After);
//  2. its actor stops taking appends (503 with Retry-After) and seals the
//     open segment, unless it is empty;
//  3. it waits until the uploader has stored, verified and indexed every
//     sealed segment (package rotation) and trimmed it from the hot log;
//  4. it takes the actor's final state and stops the actor;
//  5. it checkpoints the commit journal past the stream's last record, so
//     that no record of it is replayed into a hot log that is gone;
//  6. it saves the handoff state in the catalog (catalog.SaveHandoff):
//     tail and open-segment number, producers, Stream-Seq, closure;
//  7. it removes the local hot log, durably;
//  8. it marks the state complete (catalog.CompleteHandoff);
//  9. it releases the lease (Fence.Release with clean set).
//
// A crash before 6 leaves the hot log, which restarts as it was (the
// lease, not released, still names this node). An incomplete state (a
// crash between 6 and 8) is continued only by the node that saved it,
// which still holds the lease: with its hot log still there it drops the
// state and serves the hot log, without it it builds from the state.
// Other nodes answer 503 meanwhile. A complete state is continued by any
// node, and no node has a hot log of the stream then, so a stale hot log
// can never come back to life beside a newer history. Continuing
// (continueHandoff, before an actor starts):
//
//  1. the fence's lease is acquired (by startActor, before this);
//  2. the hot log is built from the state and the segment index (every
//     segment uploaded, tiling the stream up to the open segment), in
//     place of any local file, and synced;
//  3. the handoff state is cleared; only then does the actor serve.
//
// A crash before 3 leaves the state, and the next start builds again.

// Errors of handoffs and of streams served elsewhere; all are
// KindUnavailable, a 503 with Retry-After.
var (
	// ErrNotLocal means the stream has neither a hot log on this node
	// nor a handoff state to continue from: another node owns it (in
	// cluster mode; without a Fence such a stream is not found).
	ErrNotLocal = &Error{Kind: KindUnavailable, Msg: "stream is served by another node"}
	// ErrDraining means this node is draining and takes no stream it does
	// not already hold.
	ErrDraining = &Error{Kind: KindUnavailable, Msg: "node is draining: it takes no new streams"}

	errHandingOff = &Error{Kind: KindUnavailable, Msg: "stream is being handed off to another node"}
)

// handoffs is the registry's state of handoffs in progress.
type handoffs struct {
	draining bool
	active   map[int64]struct{} // streams being handed off
	// fault, set by tests, fails a handoff after the named step as a
	// crash there would stop it.
	fault func(step string) error
}

// handoffFault is the test fault after step, if any.
func (r *Registry) handoffFault(step string) error {
	r.mu.Lock()
	f := r.ho.fault
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(step)
}

// Draining reports whether Drain has started: the node takes no new
// streams, and a Fence should acquire no new leases for it.
func (r *Registry) Draining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ho.draining
}

// beginHandoff marks stream id as handing off; false if it already is.
func (r *Registry) beginHandoff(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ho.active[id]; ok {
		return false
	}
	if r.ho.active == nil {
		r.ho.active = map[int64]struct{}{}
	}
	r.ho.active[id] = struct{}{}
	return true
}

func (r *Registry) endHandoff(id int64) {
	r.mu.Lock()
	delete(r.ho.active, id)
	r.mu.Unlock()
}

// handingOff is checked before an actor is started for stream id; the
// caller holds r.mu.
func (r *Registry) handingOff(id int64) bool {
	_, ok := r.ho.active[id]
	return ok
}

// Handoff hands stream id off (see the steps above): when it returns nil,
// every byte of the stream is in the cold tier, its state is in the
// catalog, its hot log is gone from this node and its lease is released.
// A stream without a hot log here is left alone (nil). On an error before
// the state is saved, the stream stays here and takes appends again.
func (r *Registry) Handoff(ctx context.Context, id int64) error {
	if !r.cfg.Rotation.Enabled {
		return errors.New("sequencer: handoff needs a cold store")
	}
	if r.openStream(id) == nil {
		files, err := hotlog.Existing(r.StreamPath(id))
		if err != nil {
			return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
		}
		if len(files) == 0 {
			return r.finishHandoff(ctx, id)
		}
	}
	st, release, err := r.acquireID(ctx, id)
	if err != nil {
		return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
	}
	if !r.beginHandoff(id) {
		release()
		return fmt.Errorf("sequencer: handoff of %d: %w", id, errHandingOff)
	}
	defer r.endHandoff(id)
	if f := r.cfg.OnHandoff; f != nil {
		f(id, true)
		defer f(id, false)
	}
	state, err := r.quiesce(ctx, st)
	if err == nil {
		err = r.handoffFault("quiesced")
	}
	if err != nil {
		release()
		st.thaw()
		return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
	}
	r.mu.Lock()
	st.closing = true
	r.mu.Unlock()
	release()
	st.stop()
	r.mu.Lock()
	if sl := r.slots[id]; sl != nil && sl.st == st {
		delete(r.slots, id)
	}
	r.mu.Unlock()
	if err := r.handoffFault("stopped"); err != nil {
		return err
	}
	if err := r.saveHandoff(ctx, state); err != nil {
		return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
	}
	if err := r.handoffFault("saved"); err != nil {
		return err
	}
	path := r.StreamPath(id)
	if err := hotlog.Remove(path); err != nil {
		return fmt.Errorf("sequencer: handoff of %d: remove hot log: %w", id, err)
	}
	if !memdb.Is(path) {
		if err := vfs.OS.SyncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("sequencer: handoff of %d: remove hot log: %w", id, err)
		}
	}
	if err := r.handoffFault("removed"); err != nil {
		return err
	}
	return r.completeHandoff(ctx, id)
}

// completeHandoff takes the last steps, 8 and 9.
func (r *Registry) completeHandoff(ctx context.Context, id int64) error {
	if err := r.cat.CompleteHandoff(ctx, id); err != nil {
		return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
	}
	if err := r.handoffFault("completed"); err != nil {
		return err
	}
	if f := r.cfg.Fence; f != nil {
		if err := f.Release(ctx, id, true); err != nil {
			return fmt.Errorf("sequencer: handoff of %d: release lease: %w", id, err)
		}
	}
	return nil
}

// finishHandoff completes this node's handoff of stream id that stopped
// after its hot log was removed; other streams without a hot log here
// are not this node's to hand off.
func (r *Registry) finishHandoff(ctx context.Context, id int64) error {
	h, err := r.cat.GetHandoff(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("sequencer: handoff of %d: %w", id, err)
	case h.Complete || h.Node != r.cfg.NodeID:
		return nil
	}
	return r.completeHandoff(ctx, id)
}

// handoffState is an actor's final state.
type handoffState struct {
	meta      hotlog.Meta
	producers []hotlog.Producer
}

// quiesce stops st taking appends, seals its open segment and waits until
// every sealed segment is uploaded; it returns the final state.
func (r *Registry) quiesce(ctx context.Context, st *Stream) (handoffState, error) {
	reply := make(chan error, 1)
	if err := st.send(ctx, freezeOp{reply: reply}); err != nil {
		return handoffState{}, err
	}
	select {
	case err := <-reply:
		if err != nil {
			return handoffState{}, err
		}
	case <-st.done:
		return handoffState{}, st.goneErr()
	}
	for {
		snap := st.Snapshot()
		if snap.Deleted && !snap.Soft {
			return handoffState{}, st.goneErr()
		}
		if allUploaded(snap.Segments) {
			break
		}
		select {
		case <-snap.Changed():
		case <-st.done:
			return handoffState{}, st.goneErr()
		case <-ctx.Done():
			return handoffState{}, fmt.Errorf("wait for uploads: %w", ctx.Err())
		}
	}
	sreply := make(chan handoffState, 1)
	if err := st.send(ctx, stateOp{reply: sreply}); err != nil {
		return handoffState{}, err
	}
	select {
	case s := <-sreply:
		return s, nil
	case <-st.done:
		return handoffState{}, st.goneErr()
	}
}

func allUploaded(segs []hotlog.Segment) bool {
	for _, g := range segs {
		if g.State != segment.Uploaded {
			return false
		}
	}
	return true
}

// freezeOp has the actor refuse appends from now on and seal the open
// segment.
type freezeOp struct{ reply chan error }

func (o freezeOp) fail(err error) { o.reply <- err }

func (o freezeOp) afterCommit(s *Stream) {
	if s.deleted && !s.softDeleted {
		o.reply <- s.goneErr()
		return
	}
	s.frozen = errHandingOff
	s.sealByAge()
	if s.meta.OpenSegMsgs > 0 {
		o.reply <- errors.New("seal of the open segment failed")
		return
	}
	o.reply <- nil
}

// thawOp lets the actor take appends again after a handoff failed.
type thawOp struct{}

func (thawOp) fail(error) {}

func (thawOp) afterCommit(s *Stream) { s.frozen = nil }

// thaw undoes freezeOp (if the actor still runs).
func (s *Stream) thaw() { _ = s.send(context.Background(), thawOp{}) }

// stateOp reads the actor's state.
type stateOp struct{ reply chan handoffState }

func (o stateOp) fail(error) {}

func (o stateOp) afterCommit(s *Stream) {
	ps := make([]hotlog.Producer, 0, len(s.producers))
	for _, p := range s.producers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b hotlog.Producer) int { return cmp.Compare(a.ID, b.ID) })
	o.reply <- handoffState{meta: s.meta, producers: ps}
}

// saveHandoff makes sure the journal replays nothing of the stream (step
// 5), then saves its state in the catalog (step 6).
func (r *Registry) saveHandoff(ctx context.Context, s handoffState) error {
	m := s.meta
	if r.jnl != nil {
		if err := r.jnl.settle(ctx, m.AppliedLSN); err != nil {
			return err
		}
	}
	// The next owner judges a sliding TTL by the catalog's access time.
	r.flushAccess(ctx)
	h := catalog.Handoff{StreamID: m.StreamID, Node: r.cfg.NodeID, Tail: m.Tail, OpenSeg: m.OpenSeg, OpenSegStart: m.OpenSegStart,
		StreamSeq: m.StreamSeq, Closed: m.Closed, CreatedAt: m.CreatedAt}
	if c := m.ClosedBy; c != nil {
		h.ClosedBy = &catalog.ProducerTuple{ID: c.ID, Epoch: c.Epoch, Seq: c.Seq}
	}
	if f := m.Fork; f != nil {
		h.Fork = &catalog.ForkBase{ParentID: f.ParentID, Pos: f.Pos, Seg: f.Seg, SegStart: f.SegStart, Shared: f.Shared}
	}
	for _, p := range s.producers {
		h.Producers = append(h.Producers, catalog.HandoffProducer{ID: p.ID, Epoch: p.Epoch, LastSeq: p.LastSeq, Updated: p.Updated})
	}
	return r.cat.SaveHandoff(ctx, h)
}

// settle waits until no record up to lsn is still being applied, then
// checkpoints, which puts the catalog's checkpoint at or past lsn.
func (sj *streamJournal) settle(ctx context.Context, lsn uint64) error {
	for !sj.settled(lsn) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("journal: wait for record %d: %w", lsn, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return sj.checkpointPast(ctx, lsn)
}

func (sj *streamJournal) settled(lsn uint64) bool {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	if sj.j.DurableLSN() < lsn {
		return false
	}
	l, ok := sj.inflight.min()
	return !ok || l > lsn
}

// created reports whether stream id was created here and its actor has
// not started yet: it has no handoff state.
func (sj *streamJournal) created(id int64) bool {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	return sj.pending[id] != nil
}

// pendingIDs returns the ids of the streams whose unwritten state is held
// here without a running actor: new streams, and streams rebuilt in
// memory at recovery, which may have no hot-log file yet.
func (sj *streamJournal) pendingIDs() []int64 {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	ids := make([]int64, 0, len(sj.pending))
	for id := range sj.pending {
		ids = append(ids, id)
	}
	return ids
}

// LocalStreams returns, sorted, the ids of the streams whose data is on
// this node: those with hot-log files in the data directory, and those
// held so far only in the journal and memory, whose files are written
// later (invariant 6 of writebehind.go). A node's streams are these, not
// its files alone: after a restart, a stream whose records were all in the
// journal has no file until its first write.
func (r *Registry) LocalStreams() ([]int64, error) {
	ids, err := hotlog.StreamIDs(r.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("sequencer: list hot logs: %w", err)
	}
	if r.jnl != nil {
		ids = append(ids, r.jnl.pendingIDs()...)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// refuseWhileDraining keeps a draining node from taking the lease of a
// stream it does not hold (it would only hold it up): only streams with a
// hot log here, or created here, start actors.
func (r *Registry) refuseWhileDraining(id int64) error {
	if !r.Draining() || (r.jnl != nil && r.jnl.created(id)) {
		return nil
	}
	files, err := hotlog.Existing(r.StreamPath(id))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return ErrDraining
	}
	return nil
}

// continueHandoff runs before an actor starts for stream id: if the
// stream has a handoff state, it builds the hot log from it (see the
// steps above). Without one, a stream with no local hot log is served
// elsewhere (ErrNotLocal) when a Fence says this is a cluster.
func (r *Registry) continueHandoff(ctx context.Context, id int64) error {
	if r.jnl != nil && r.jnl.created(id) {
		return nil
	}
	h, err := r.cat.GetHandoff(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		if r.cfg.Fence == nil {
			return nil
		}
		files, err := hotlog.Existing(r.StreamPath(id))
		if err != nil || len(files) > 0 {
			return err
		}
		if _, err := r.cat.GetByID(ctx, id); errors.Is(err, catalog.ErrNotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		return ErrNotLocal
	}
	if err != nil {
		return err
	}
	if !h.Complete {
		// Without a node id, a node of a cluster cannot tell its own
		// states from others'.
		if h.Node != r.cfg.NodeID || (r.cfg.NodeID == "" && r.cfg.Fence != nil) {
			return ErrNotLocal // its owner is still handing it off
		}
		files, err := hotlog.Existing(r.StreamPath(id))
		if err != nil {
			return err
		}
		if len(files) > 0 {
			// This node's handoff stopped before the hot log went: it
			// still holds everything, and serves it again.
			return r.cat.ClearHandoff(ctx, id)
		}
	}
	if r.Draining() {
		return ErrDraining
	}
	if err := r.buildFromHandoff(ctx, h); err != nil {
		return fmt.Errorf("continue handed-off stream %d: %w", id, err)
	}
	if err := r.cat.ClearHandoff(ctx, id); err != nil {
		return err
	}
	r.lg.Info("continuing handed-off stream", "id", id, "from_node", h.Node, "tail", h.Tail)
	return nil
}

// buildFromHandoff writes a new hot log for the handed-off stream h, in
// place of any local one, and syncs it.
func (r *Registry) buildFromHandoff(ctx context.Context, h catalog.Handoff) error {
	row, err := r.cat.GetByID(ctx, h.StreamID)
	if err != nil {
		return err
	}
	index, err := r.cat.StreamSegments(ctx, h.StreamID)
	if err != nil {
		return err
	}
	meta := hotlog.Meta{StreamID: h.StreamID, ContentType: row.ContentType, CreatedAt: h.CreatedAt, Tail: h.Tail,
		OpenSeg: h.OpenSeg, OpenSegStart: h.OpenSegStart, Closed: h.Closed, StreamSeq: h.StreamSeq}
	if c := h.ClosedBy; c != nil {
		meta.ClosedBy = &hotlog.ProducerKey{ID: c.ID, Epoch: c.Epoch, Seq: c.Seq}
	}
	if f := h.Fork; f != nil {
		meta.Fork = &hotlog.ForkBase{ParentID: f.ParentID, Pos: f.Pos, Seg: f.Seg, SegStart: f.SegStart, Shared: f.Shared}
	}
	segs, err := handedOffSegments(meta, index)
	if err != nil {
		return err
	}
	if r.jnl != nil {
		// Records of this stream from an earlier time it was here are
		// below the checkpoint, and any still in the journal must never
		// be replayed into the new file.
		meta.AppliedLSN = r.jnl.j.DurableLSN()
	}
	path := r.StreamPath(h.StreamID)
	if err := hotlog.Create(ctx, path, meta, nil); err != nil {
		return err
	}
	l, err := hotlog.Open(ctx, path, hotlog.Options{NoSync: true, ReadConns: 1})
	if err != nil {
		return err
	}
	prods := make([]hotlog.Producer, len(h.Producers))
	for i, p := range h.Producers {
		prods[i] = hotlog.Producer{ID: p.ID, Epoch: p.Epoch, LastSeq: p.LastSeq, Updated: p.Updated}
	}
	err = writeHandedOff(ctx, l, meta, prods, segs)
	err = errors.Join(err, l.Close())
	if err != nil {
		return err
	}
	return hotlog.SyncFiles(path)
}

// handedOffSegments turns the segment index rows of a handed-off stream
// into its hot log's segments, checking that they are all uploaded and
// tile the stream's own positions up to the tail: a stream is never
// continued with a hole in its history.
func handedOffSegments(meta hotlog.Meta, index []catalog.Segment) ([]hotlog.Segment, error) {
	snap := Snapshot{Fork: meta.Fork}
	pos, next := snap.ownStart(), snap.firstOwnSeg()
	segs := make([]hotlog.Segment, 0, len(index))
	for _, g := range index {
		switch {
		case g.State != segment.Uploaded:
			return nil, fmt.Errorf("segment %d is not uploaded (%s)", g.Seg, g.State)
		case g.Seg < next || g.Seg >= meta.OpenSeg || g.FirstPos != pos || g.EndPos < g.FirstPos:
			return nil, fmt.Errorf("segment %d [%d, %d) does not follow position %d (segment %d) below open segment %d",
				g.Seg, g.FirstPos, g.EndPos, pos, next, meta.OpenSeg)
		}
		segs = append(segs, hotlog.Segment{Seg: g.Seg, Start: g.FirstPos, End: g.EndPos, Messages: g.Messages,
			Bytes: g.EndPos - g.FirstPos, State: segment.Sealed, ObjectKey: g.ObjectKey, Checksum: g.Checksum, SealedAt: g.CreatedAt})
		pos, next = g.EndPos, g.Seg+1
	}
	if pos != meta.OpenSegStart {
		return nil, fmt.Errorf("the segment index ends at position %d, the handed-off open segment starts at %d", pos, meta.OpenSegStart)
	}
	return segs, nil
}

// writeHandedOff writes the producers and the uploaded segments into the
// new hot log l.
func writeHandedOff(ctx context.Context, l *hotlog.Log, meta hotlog.Meta, prods []hotlog.Producer, segs []hotlog.Segment) error {
	if len(prods) > 0 {
		if err := l.Commit(ctx, &hotlog.Batch{Meta: meta, Producers: prods}); err != nil {
			return err
		}
	}
	for i := range segs {
		g := segs[i]
		if err := l.Commit(ctx, &hotlog.Batch{Meta: meta, Seal: &g}); err != nil {
			return err
		}
		if err := l.MarkUploaded(ctx, g.Seg, g.ObjectKey, g.Checksum); err != nil {
			return err
		}
	}
	return nil
}

// DrainProgress reports a drain.
type DrainProgress struct {
	Total     int // streams with a hot log here when the drain started
	HandedOff int
	Failed    int
	// Failures names the streams not handed off and why.
	Failures []DrainFailure
}

// DrainFailure is a stream a drain could not hand off.
type DrainFailure struct {
	ID  int64
	Err error
}

// Drain hands off every stream that has a hot log on this node (and
// finishes the handoffs of this node that a crash cut short), at most
// concurrency at a time, after marking the node as draining so that it
// takes no new streams (Draining). progress, if set, is called after each
// stream, one call at a time. The node stays draining when Drain returns;
// a drain that failed for some streams can be run again.
//
// Forks go before their sources: uploading a fork's segment that it
// shares with its source reads the source, which must still be here.
func (r *Registry) Drain(ctx context.Context, concurrency int, progress func(DrainProgress)) (DrainProgress, error) {
	if l, ok := r.cfg.Fence.(Leaver); ok {
		// Out of the members first, so that no new stream is placed here
		// while the drain runs.
		if err := l.Leave(ctx); err != nil {
			r.lg.Warn("drain: leave the cluster's members", "err", err)
		}
	}
	// Hot logs of streams deleted or served elsewhere are not this node's
	// to hand off.
	if _, err := r.collectStale(ctx); err != nil {
		r.lg.Warn("drain: remove stale hot logs", "err", err)
	}
	r.mu.Lock()
	r.ho.draining = true
	open := make([]int64, 0, len(r.slots))
	for id := range r.slots {
		open = append(open, id)
	}
	r.mu.Unlock()
	ids, err := r.LocalStreams()
	if err != nil {
		return DrainProgress{}, fmt.Errorf("sequencer: drain: %w", err)
	}
	cut, err := r.cat.IncompleteHandoffs(ctx, r.cfg.NodeID)
	if err != nil {
		return DrainProgress{}, fmt.Errorf("sequencer: drain: %w", err)
	}
	ids = append(append(ids, open...), cut...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	waves, err := r.forkWaves(ctx, ids)
	if err != nil {
		return DrainProgress{}, fmt.Errorf("sequencer: drain: %w", err)
	}

	var (
		mu sync.Mutex
		p  = DrainProgress{Total: len(ids)}
	)
	done := func(id int64, err error) {
		if KindOf(err) == KindNotFound {
			err = nil // deleted meanwhile: nothing to hand off
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			p.Failed++
			p.Failures = append(p.Failures, DrainFailure{ID: id, Err: err})
		} else {
			p.HandedOff++
		}
		if progress != nil {
			snap := p
			snap.Failures = slices.Clone(p.Failures)
			progress(snap)
		}
	}
	for _, wave := range waves {
		r.handoffAll(ctx, wave, max(concurrency, 1), done)
	}
	slices.SortFunc(p.Failures, func(a, b DrainFailure) int { return cmp.Compare(a.ID, b.ID) })
	if err := ctx.Err(); err != nil {
		return p, fmt.Errorf("sequencer: drain: %w", err)
	}
	if p.Failed > 0 {
		return p, fmt.Errorf("sequencer: drain: %d of %d streams not handed off", p.Failed, p.Total)
	}
	return p, nil
}

// forkWaves groups ids by how many ancestors each stream has, deepest
// first: every fork comes in an earlier wave than its source.
func (r *Registry) forkWaves(ctx context.Context, ids []int64) ([][]int64, error) {
	depths := map[int64]int{}
	var depth func(id int64, seen int) (int, error)
	depth = func(id int64, seen int) (int, error) {
		if d, ok := depths[id]; ok {
			return d, nil
		}
		row, err := r.cat.GetByID(ctx, id)
		d := 0
		switch {
		case errors.Is(err, catalog.ErrNotFound):
		case err != nil:
			return 0, err
		case row.ParentID != 0 && seen < 1<<16:
			pd, err := depth(row.ParentID, seen+1)
			if err != nil {
				return 0, err
			}
			d = pd + 1
		}
		depths[id] = d
		return d, nil
	}
	var waves [][]int64
	for _, id := range ids {
		d, err := depth(id, 0)
		if err != nil {
			return nil, err
		}
		for len(waves) <= d {
			waves = append(waves, nil)
		}
		waves[d] = append(waves[d], id)
	}
	slices.Reverse(waves)
	return waves, nil
}

// handoffAll hands off ids, at most concurrency at a time, and reports
// each outcome to done; it stops feeding new ones when ctx ends.
func (r *Registry) handoffAll(ctx context.Context, ids []int64, concurrency int, done func(int64, error)) {
	var wg sync.WaitGroup
	work := make(chan int64)
	for range min(concurrency, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				done(id, r.Handoff(ctx, id))
			}
		}()
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
}
