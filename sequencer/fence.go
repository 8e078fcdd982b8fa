package sequencer

import (
	"context"
	"errors"

	"github.com/streamtier/durable-streams/hotlog"
)

// Fence is how the registry learns whether this node may write a stream
// (cluster mode, docs/cluster.md). Nil: a single node, which always may.
//
// The registry calls Acquire before an actor starts serving a stream and
// Check before every commit that would acknowledge appends; Release is
// the drain's (Registry.Handoff). Between them the invariant is: an append
// is acknowledged only if, when its batch was written, this node still held
// the stream's lease with a margin to spare, so no other node can have
// held it at the same time.
type Fence interface {
	// Acquire takes (or confirms) this node's lease on stream id before
	// its actor serves anything.
	Acquire(ctx context.Context, id int64) error
	// Check is nil while this node may still acknowledge writes of stream
	// id (its lease renewed within the safety margin). It is on every
	// commit's path, so it must not block or do I/O. An error wrapping
	// [ErrNotOwner] means the lease has passed on for good.
	Check(id int64) error
	// Release gives the lease up; clean means every byte of the stream is
	// in the cold tier and its handoff state is saved, so any node may
	// continue it.
	Release(ctx context.Context, id int64, clean bool) error
}

// ErrNotOwner is wrapped by a [Fence]'s errors when the stream's lease
// belongs to another node, or passed on to a new epoch since this node's
// actor started: the actor closes and never writes the stream again; a
// later request starts a new one, which must Acquire first.
var ErrNotOwner = errors.New("sequencer: this node does not own the stream")

// fenceAcquire takes this node's lease on stream id, if there is a fence.
func (r *Registry) fenceAcquire(ctx context.Context, id int64) error {
	if r.cfg.Fence == nil {
		return nil
	}
	if err := r.cfg.Fence.Acquire(ctx, id); err != nil {
		return &Error{Kind: KindUnavailable, Msg: "this node cannot serve the stream now", Err: err}
	}
	return nil
}

// mayExpire reports whether the sweeper of this node may expire stream
// id: always on a single node; in cluster mode only as the stream's owner,
// which alone holds its latest access times (a sliding TTL) and its hot
// files. A stream no node holds is claimed first, unless this node is
// draining (it would hold a lease it no longer serves).
func (r *Registry) mayExpire(ctx context.Context, id int64) bool {
	f := r.cfg.Fence
	if f == nil || f.Check(id) == nil {
		return true
	}
	return !r.Draining() && f.Acquire(ctx, id) == nil
}

// fenceRelease frees the lease of id, a stream whose creation was
// abandoned: nothing of it exists, so the release is clean.
func (r *Registry) fenceRelease(id int64) {
	if r.cfg.Fence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeRecordTimeout)
	defer cancel()
	if err := r.cfg.Fence.Release(ctx, id, true); err != nil {
		r.lg.Warn("release the lease of an abandoned stream", "id", id, "err", err)
	}
}

// commitFenced commits batch if this node may still write the stream. On
// failure nothing of batch was acknowledged, and the error says what to
// answer: 503 while fenced (a retry may reach the owner), 5xx otherwise.
func (s *Stream) commitFenced(batch *hotlog.Batch) error {
	if f := s.reg.cfg.Fence; f != nil {
		if err := f.Check(s.id); err != nil {
			if errors.Is(err, ErrNotOwner) {
				s.lg.Warn("lease lost: closing the stream's actor", "stream", s.path, "id", s.id, "err", err)
				go s.reg.retire(s)
			}
			return &Error{Kind: KindUnavailable, Msg: "this node may not write the stream now", Err: err}
		}
	}
	if err := s.commitBatch(batch); err != nil {
		s.lg.Error("commit failed", "stream", s.path, "err", err)
		return internal("commit failed", err)
	}
	return nil
}

// retire stops st's actor after its queued operations and forgets it, as
// once its stream was deleted or its lease lost.
func (r *Registry) retire(st *Stream) {
	r.mu.Lock()
	st.closing = true
	r.mu.Unlock()
	st.stop()
	r.mu.Lock()
	if sl := r.slots[st.id]; sl != nil && sl.st == st {
		delete(r.slots, st.id)
	}
	r.mu.Unlock()
}

// Leaver is implemented by a [Fence] whose node can leave its cluster's
// members: Drain calls Leave first, so that no new stream is placed on a
// node that is handing its streams off.
type Leaver interface {
	Leave(ctx context.Context) error
}
