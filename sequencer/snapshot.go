package sequencer

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"

	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/invariants"
	"github.com/streamtier/durable-streams/internal/offset"
)

// Snapshot is an immutable view of a stream published by its actor after
// every commit. Readers load it without locks; Changed is closed when a
// newer snapshot replaces it, which is how live readers wait without a
// lost wakeup: they pick the snapshot, check it, then wait on its channel.
type Snapshot struct {
	ID          int64
	ContentType string
	Tail        int64
	Closed      bool
	// Deleted is set on the final snapshot of a deleted stream; Soft tells
	// whether forks still reference it (410) or it is gone (404).
	Deleted, Soft bool

	OpenSeg      int64
	OpenSegStart int64
	Segments     []hotlog.Segment // own sealed segments, ascending
	Fork         *hotlog.ForkBase

	// recent holds the newest own messages, contiguous and ending at Tail,
	// so readers at the tail are served from memory.
	recent []hotlog.Message

	// reg resolves positions a fork inherits to its parent's tokens.
	reg *Registry

	// changed is made by the first Changed call, so that the snapshots
	// nobody waits on (most: every commit publishes one) cost no channel;
	// supersede sets it to closedChan, or closes the one made.
	changed atomic.Pointer[chan struct{}]
}

// closedChan is the Changed channel of snapshots superseded before
// anyone asked for it.
var closedChan = func() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}()

// Changed returns a channel closed when a newer snapshot is published.
func (s *Snapshot) Changed() <-chan struct{} {
	if c := s.changed.Load(); c != nil {
		return *c
	}
	c := make(chan struct{})
	if s.changed.CompareAndSwap(nil, &c) {
		return c
	}
	return *s.changed.Load() // superseded, or another caller's
}

// supersede wakes the waiters on s: a newer snapshot replaces it.
func (s *Snapshot) supersede() {
	if c := s.changed.Swap(closedChan); c != nil && c != closedChan {
		close(*c)
	}
}

// TokenFor returns the offset token of position p (0 <= p <= Tail) in the
// stream this snapshot views. A token names the segment of the byte before
// p, so positions a fork inherits get its parent's tokens, which is why
// this may open the parent.
func (s *Snapshot) TokenFor(ctx context.Context, p int64) offset.Token {
	return s.reg.tokenFor(ctx, s, p)
}

// TailToken returns the offset token of the snapshot's tail: the
// Stream-Next-Offset of a reader that has read everything.
func (s *Snapshot) TailToken(ctx context.Context) offset.Token { return s.TokenFor(ctx, s.Tail) }

// segView is one segment as seen by a stream: [Start, End) when Sealed,
// [Start, tail) otherwise.
type segView struct {
	Seg    int64
	Start  int64
	End    int64
	Sealed bool
}

// ownStart is the first position whose segment this stream defines itself.
func (s *Snapshot) ownStart() int64 {
	if s.Fork == nil {
		return 0
	}
	if s.Fork.Shared {
		return s.Fork.SegStart
	}
	return s.Fork.Pos
}

// firstOwnSeg is the number of this stream's first own segment.
func (s *Snapshot) firstOwnSeg() int64 {
	switch {
	case s.Fork == nil:
		return 0
	case s.Fork.Shared:
		return s.Fork.Seg
	default:
		return s.Fork.Seg + 1
	}
}

// inherited reports whether position p (a byte) lies in a segment that this
// stream takes whole from its parent.
func (s *Snapshot) inherited(p int64) bool {
	return s.Fork != nil && p < s.ownStart()
}

// ownSegmentAt returns the own segment that holds byte p (p >= ownStart).
func (s *Snapshot) ownSegmentAt(p int64) segView {
	if p >= s.OpenSegStart {
		return segView{Seg: s.OpenSeg, Start: s.OpenSegStart, End: s.Tail}
	}
	i := sort.Search(len(s.Segments), func(i int) bool { return s.Segments[i].End > p })
	if i < len(s.Segments) {
		g := s.Segments[i]
		return segView{Seg: g.Seg, Start: g.Start, End: g.End, Sealed: true}
	}
	// Sealed segments tile [ownStart, OpenSegStart), so p below
	// OpenSegStart lies in one. Should that ever not hold, the open segment
	// is the safe answer: it makes the read come from the hot log.
	invariants.Failf(s.logger(), "sequencer: stream %d: position %d below the open segment (start %d) is in no sealed segment (%d segments)",
		s.ID, p, s.OpenSegStart, len(s.Segments))
	return segView{Seg: s.OpenSeg, Start: s.OpenSegStart, End: s.Tail}
}

// ownToken returns the token for position p in this stream's own region.
func (s *Snapshot) ownToken(p int64) offset.Token {
	if p == 0 {
		return offset.Zero
	}
	if p == s.ownStart() {
		// Byte p-1 belongs to the parent (or p is 0): the boundary token
		// names the segment the stream starts in.
		if s.Fork != nil {
			return offset.Token{Segment: s.Fork.Seg, Position: p}
		}
		return offset.Token{Segment: 0, Position: p}
	}
	return offset.Token{Segment: s.ownSegmentAt(p - 1).Seg, Position: p}
}

// recentFrom returns the cached messages that start at or after from, and
// whether the cache covers from.
func (s *Snapshot) recentFrom(from int64) ([]hotlog.Message, bool) {
	if len(s.recent) == 0 || from < s.recent[0].Pos {
		return nil, false
	}
	i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].End() > from })
	// Capacity is capped so no caller can append into the shared cache.
	return s.recent[i:len(s.recent):len(s.recent)], true
}

func (s *Snapshot) logger() *slog.Logger {
	if s.reg == nil {
		return nil
	}
	return s.reg.lg
}
