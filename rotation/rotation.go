// Package rotation moves sealed segments of streams from their hot logs to
// the cold object store. It only uploads: reads of uploaded segments go
// through package coldstore/segcache, and the objects of deleted streams are
// removed by package reclaim.
//
// The order of an upload is what makes it crash-safe:
//
//  1. encode the segment (coldstore/segment) and Put it under its key;
//     a re-upload after a crash overwrites the same bytes;
//  2. verify the stored object (size, and its CRC32C by reading it back);
//  3. record it in the admin index (catalog segments table, state uploaded);
//  4. ask the stream's actor to mark it uploaded and trim its rows.
//
// So an admin index row never points at a missing object, and trimmed rows
// always exist in a verified object. A crash anywhere is repaired at start:
// segments that are sealed but not uploaded are found in the admin index
// (recorded there as "sealed" when the seal is first seen) or when their
// stream is next opened, and uploaded again.
package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/retry"
	"github.com/streamtier/durable-streams/sequencer"
)

// VerifyMode selects how an uploaded object is checked before trimming.
type VerifyMode int

const (
	// VerifyFull reads the object back and compares its CRC32C.
	VerifyFull VerifyMode = iota
	// VerifySize only compares the stored size.
	VerifySize
)

// Config configures a Rotator.
type Config struct {
	Store   coldstore.Store
	Catalog *catalog.Catalog
	Logger  *slog.Logger
	Workers int // concurrent uploads (default 2)
	// HandoffWorkers are more concurrent uploads, of expedited streams
	// only (default 32): a stream being handed off (Expedite) waits for
	// its uploads, and a drain hands off many at once, so their uploads
	// are not queued behind the steady trickle of sealed segments.
	HandoffWorkers int
	Verify         VerifyMode
	RetryMin       time.Duration
	RetryMax       time.Duration
}

// Stats are the rotator's counters.
type Stats struct {
	Queued, Uploaded, Failures int64
	LastError                  string
	// UploadedBytes sums the object bytes of verified uploads.
	UploadedBytes int64
	// OldestQueued is when the oldest segment still waiting for its
	// upload was sealed (zero when none waits): the cold tier's lag.
	OldestQueued time.Time
}

// Rotator uploads sealed segments.
type Rotator struct {
	cfg   Config
	store coldstore.Store
	cat   *catalog.Catalog
	lg    *slog.Logger
	reg   *sequencer.Registry

	mu       sync.Mutex
	queued   map[job]bool
	queuedAt map[job]time.Time // when each queued segment was sealed
	// urgent orders the expedited streams: by when Expedite was called.
	urgent     map[int64]uint64
	urgentNext uint64
	wake       chan struct{}
	// wakeUrgent wakes the handoff workers, which take only jobs of
	// urgent streams.
	wakeUrgent chan struct{}
	started    bool

	stats struct {
		queued, uploaded, failures atomic.Int64
		uploadedBytes              atomic.Int64
	}
	lastErr atomic.Value

	stop chan struct{}
	wg   sync.WaitGroup
	// runCtx ends at Close, cutting short store calls in progress so that
	// a hanging store cannot hold up shutdown; the interrupted uploads are
	// still sealed, not uploaded, and resume at the next start.
	runCtx context.Context
	halt   context.CancelFunc
}

type job struct{ stream, seg int64 }

// New creates a rotator; Start it once the registry exists.
func New(cfg Config) (*Rotator, error) {
	if cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("rotation: Store and Catalog are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.HandoffWorkers <= 0 {
		cfg.HandoffWorkers = 32
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	runCtx, halt := context.WithCancel(context.Background())
	return &Rotator{cfg: cfg, store: cfg.Store, cat: cfg.Catalog, lg: cfg.Logger,
		queued: map[job]bool{}, queuedAt: map[job]time.Time{}, urgent: map[int64]uint64{},
		wake: make(chan struct{}, 1), wakeUrgent: make(chan struct{}, 1), stop: make(chan struct{}),
		runCtx: runCtx, halt: halt}, nil
}

// OnSeal queues an upload; it never blocks (it runs on actor goroutines).
func (r *Rotator) OnSeal(stream int64, seg hotlog.Segment) {
	r.enqueue(job{stream, seg.Seg}, seg.SealedAt)
}

func (r *Rotator) enqueue(j job, sealed time.Time) {
	if sealed.IsZero() {
		sealed = time.Now()
	}
	r.mu.Lock()
	if !r.queued[j] {
		r.queued[j] = true
		r.stats.queued.Add(1)
	}
	if at, ok := r.queuedAt[j]; !ok || sealed.Before(at) {
		r.queuedAt[j] = sealed
	}
	r.mu.Unlock()
	r.signal()
}

func (r *Rotator) signal() {
	for _, w := range []chan struct{}{r.wake, r.wakeUrgent} {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Expedite puts the uploads of stream before all others while on is
// set: a handoff of the stream waits for them (sequencer.Config.OnHandoff).
// Besides the Workers, HandoffWorkers upload only such streams' segments.
func (r *Rotator) Expedite(stream int64, on bool) {
	r.mu.Lock()
	if _, ok := r.urgent[stream]; on && !ok {
		r.urgentNext++
		r.urgent[stream] = r.urgentNext
	} else if !on {
		delete(r.urgent, stream)
	}
	r.mu.Unlock()
	if on {
		r.signal()
	}
}

// Start begins uploading with reg, after re-queuing uploads that a crash
// or shutdown interrupted.
func (r *Rotator) Start(ctx context.Context, reg *sequencer.Registry) error {
	r.reg = reg
	pending, err := r.cat.SealedSegments(ctx)
	if err != nil {
		return fmt.Errorf("rotation: list pending uploads: %w", err)
	}
	for _, g := range pending {
		r.enqueue(job{g.StreamID, g.Seg}, g.CreatedAt)
	}
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	for i := range r.cfg.Workers + r.cfg.HandoffWorkers {
		r.wg.Add(1)
		go r.worker(i >= r.cfg.Workers)
	}
	r.signal()
	return nil
}

// Close stops the workers; queued uploads resume at the next start.
func (r *Rotator) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.halt()
	r.wg.Wait()
}

// Stats returns the current counters.
func (r *Rotator) Stats() Stats {
	s := Stats{Uploaded: r.stats.uploaded.Load(), Failures: r.stats.failures.Load(),
		UploadedBytes: r.stats.uploadedBytes.Load()}
	r.mu.Lock()
	s.Queued = int64(len(r.queued))
	for _, at := range r.queuedAt {
		if s.OldestQueued.IsZero() || at.Before(s.OldestQueued) {
			s.OldestQueued = at
		}
	}
	r.mu.Unlock()
	if e, ok := r.lastErr.Load().(string); ok {
		s.LastError = e
	}
	return s
}

// QueueLen is the number of uploads waiting or in progress.
func (r *Rotator) QueueLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queued)
}

// worker uploads queued segments; an urgentOnly worker only those of
// expedited streams.
func (r *Rotator) worker(urgentOnly bool) {
	defer r.wg.Done()
	var cur job
	wake := r.wake
	if urgentOnly {
		wake = r.wakeUrgent
	}
	loop := retry.Loop{Stop: r.stop, Wake: wake, Min: r.cfg.RetryMin, Max: r.cfg.RetryMax}
	loop.Run(func() (bool, error) {
		j, ok := r.next(urgentOnly)
		if !ok {
			return false, nil
		}
		cur = j
		ctx, cancel := context.WithTimeout(r.runCtx, 2*time.Minute)
		err := r.upload(ctx, j)
		cancel()
		r.done(j, err)
		return true, err
	}, func(err error, retryIn time.Duration) {
		r.stats.failures.Add(1)
		r.lastErr.Store(err.Error())
		r.lg.Warn("rotation: will retry", "stream", cur.stream, "segment", cur.seg, "retry_in", retryIn, "err", err)
	})
}

// next picks an upload job that no other worker is running: of the
// expedited stream expedited first, its lowest segment first, so that
// handoffs finish one after the other rather than all at the end; else,
// unless urgentOnly, any job.
func (r *Rotator) next(urgentOnly bool) (job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return job{}, false
	}
	var best, other job
	var bestRank uint64
	found, foundOther := false, false
	for j, idle := range r.queued {
		if !idle {
			continue
		}
		rank, urgent := r.urgent[j.stream]
		switch {
		case urgent && (!found || rank < bestRank || (rank == bestRank && j.seg < best.seg)):
			best, bestRank, found = j, rank, true
		case !urgent && !foundOther && !urgentOnly:
			other, foundOther = j, true
		}
	}
	if !found {
		best, found = other, foundOther
	}
	if found {
		r.queued[best] = false // in progress
	}
	return best, found
}

func (r *Rotator) done(j job, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.queued[j] = true // retry
	default:
		delete(r.queued, j)
		delete(r.queuedAt, j)
	}
	if err != nil {
		r.signal()
	}
}

// upload runs the crash-safe sequence for one sealed segment.
func (r *Rotator) upload(ctx context.Context, j job) error {
	st, release, err := r.reg.AcquireID(ctx, j.stream)
	if sequencer.KindOf(err) == sequencer.KindNotFound {
		return nil // stream deleted meanwhile
	}
	if errors.Is(err, sequencer.ErrNotOwner) {
		// Cluster mode: another node owns the stream and uploads its
		// segments; should it come back here, its actor's start queues
		// them again.
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	snap := st.Snapshot()
	var seg hotlog.Segment
	found := false
	for _, g := range snap.Segments {
		if g.Seg == j.seg {
			seg, found = g, true
		}
	}
	if !found || seg.State == segment.Uploaded {
		return nil
	}
	key := segment.ObjectKey(j.stream, j.seg)
	if err := r.recordSealed(ctx, j, seg, key); err != nil {
		return err
	}
	msgs, err := r.reg.SegmentMessages(ctx, snap, seg)
	if err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	smsgs := make([]segment.Message, len(msgs))
	for i, m := range msgs {
		smsgs[i] = segment.Message{Pos: m.Pos, Data: m.Data, BatchEnd: m.BatchEnd}
	}
	hdr := segment.Header{StreamID: j.stream, Segment: j.seg, Start: seg.Start, End: seg.End,
		Count: int64(len(msgs)), ContentType: snap.ContentType}
	buf := bytes.NewBuffer(make([]byte, 0, segment.EncodedSize(hdr, smsgs)))
	size, crc, err := segment.Encode(buf, hdr, smsgs)
	if err != nil {
		return fmt.Errorf("encode segment: %w", err)
	}
	if err := r.store.Put(ctx, key, bytes.NewReader(buf.Bytes()), size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := r.verify(ctx, key, size, crc); err != nil {
		return err
	}
	if err := r.cat.MarkUploaded(ctx, j.stream, j.seg, size, crc, int64(len(msgs))); err != nil {
		return err
	}
	if err := st.Trim(ctx, j.seg, key, crc); err != nil {
		return fmt.Errorf("trim: %w", err)
	}
	r.stats.uploaded.Add(1)
	r.stats.uploadedBytes.Add(size)
	return nil
}

// recordSealed notes the sealed segment in the admin index so an upload
// interrupted by a restart is found again.
func (r *Rotator) recordSealed(ctx context.Context, j job, seg hotlog.Segment, key string) error {
	return r.cat.RecordSealed(ctx, catalog.Segment{StreamID: j.stream, Seg: j.seg, FirstPos: seg.Start, EndPos: seg.End,
		Bytes: seg.Bytes, Messages: seg.Messages, ObjectKey: key, CreatedAt: time.Now()})
}

func (r *Rotator) verify(ctx context.Context, key string, size int64, crc uint32) error {
	info, err := r.store.Head(ctx, key)
	if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	if info.Size != size {
		return fmt.Errorf("verify %s: stored %d bytes, wrote %d", key, info.Size, size)
	}
	if r.cfg.Verify == VerifySize {
		return nil
	}
	rc, err := r.store.Get(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	defer rc.Close()
	if _, _, err := segment.CopyChecked(io.Discard, rc, crc); err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	return nil
}
