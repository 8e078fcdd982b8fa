package api

import (
	"context"
	"net/http"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/sequencer"
)

// readKey identifies a storage read within one snapshot of a stream (the
// collapser's scope and generation are the stream and its snapshot).
type readKey struct {
	pos  int64
	max  int
	file bool // a chunk that may name a file (ReadChunkFile)
}

// Bounds of the read results kept for late arrivals. A result is only
// kept while its snapshot is current, so these bound quiet streams.
const (
	keptReads     = 4096
	keptReadBytes = 64 << 20
)

func newReadCollapser() *cache.Collapser[readKey, sequencer.Chunk] {
	return cache.NewCollapser[readKey](cache.CollapserConfig[sequencer.Chunk]{
		MaxEntries: keptReads,
		MaxBytes:   keptReadBytes,
		Size:       func(c sequencer.Chunk) int64 { return int64(c.Bytes()) },
	})
}

// ReadStats counts the read path's storage reads; see (*API).ReadStats.
type ReadStats struct {
	// StorageReads is the number of chunk reads performed against the
	// stream's storage (tail cache, hot log or cold tier).
	StorageReads uint64
	// CollapsedReads is the number of reads answered by another request's
	// storage read of the same stream, offset and snapshot.
	CollapsedReads uint64
	// LiveWaiters is the number of long-poll and SSE requests waiting for
	// data now.
	LiveWaiters int64
	// KeptReads and KeptReadBytes are the read results kept now for
	// requests still to come.
	KeptReads     int
	KeptReadBytes int64
	// ZeroCopyBytes counts the response bytes sent from cached cold
	// segment files without passing through memory (sendfile).
	ZeroCopyBytes int64
}

// ReadStats returns the read path's counters (for metrics).
func (a *API) ReadStats() ReadStats {
	st := a.reads.Stats()
	return ReadStats{StorageReads: st.Computed, CollapsedReads: st.Shared, LiveWaiters: a.waiters.Load(),
		KeptReads: st.Kept, KeptReadBytes: st.KeptBytes, ZeroCopyBytes: a.zeroCopied.Load()}
}

// readChunk reads from pos in snap, sharing one storage read among all
// requests for the same stream, offset and snapshot: concurrent catch-up
// reads, and the long-poll and SSE readers one append wakes at once.
func (a *API) readChunk(ctx context.Context, snap *sequencer.Snapshot, pos int64) (sequencer.Chunk, error) {
	return a.readChunkMax(ctx, snap, pos, a.opt.MaxReadChunk)
}

// readChunkFile is readChunk for a reader that can send bytes from a file
// (sequencer.Registry.ReadChunkFile).
func (a *API) readChunkFile(ctx context.Context, snap *sequencer.Snapshot, pos int64) (sequencer.Chunk, error) {
	max := a.opt.MaxReadChunk
	ch, _, err := a.reads.Do(ctx, snap.ID, snap.Changed(), readKey{pos: pos, max: max, file: true}, func(ctx context.Context) (sequencer.Chunk, error) {
		return a.reg.ReadChunkFile(ctx, snap, pos, max)
	})
	return ch, err
}

// readChunkMax is readChunk with a budget of max bytes.
func (a *API) readChunkMax(ctx context.Context, snap *sequencer.Snapshot, pos int64, max int) (sequencer.Chunk, error) {
	ch, _, err := a.reads.Do(ctx, snap.ID, snap.Changed(), readKey{pos: pos, max: max}, func(ctx context.Context) (sequencer.Chunk, error) {
		return a.reg.ReadChunk(ctx, snap, pos, max)
	})
	return ch, err
}

// cacheRequest is the part of a read's caching decision that depends on
// the request rather than on the data: its mode and its credentials.
func (a *API) cacheRequest(r *http.Request, name string) (cache.Request, error) {
	mode, err := a.cache.ModeFor(r.Header)
	if err != nil {
		return cache.Request{}, badRequest(err.Error())
	}
	cr := cache.Request{Mode: mode, PublicReadable: true, EdgeSelectable: a.cache.EdgeSelectable()}
	if a.opt.Auth.Enabled() {
		p, ok := auth.FromContext(r.Context())
		cr.Authenticated = ok && !p.Anonymous
		cr.PublicReadable = a.opt.Auth.AnonymousRead(name)
	}
	return cr, nil
}
