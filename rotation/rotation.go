// Package rotation moves sealed segments of streams from their hot logs to
// the cold object store and serves reads of uploaded segments.
//
// The order of an upload is what makes it crash-safe:
//
//  1. encode the segment (rotation/segment) and Put it under its key;
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
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/rotation/segment"
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
	Store      coldstore.Store
	Catalog    *catalog.Catalog
	Logger     *slog.Logger
	Workers    int // concurrent uploads (default 2)
	Verify     VerifyMode
	CacheDir   string // on-disk read-through cache of cold objects
	CacheBytes int64  // its bound (default 1 GiB)
	RetryMin   time.Duration
	RetryMax   time.Duration
}

// Stats are the rotator's counters.
type Stats struct {
	Queued, Uploaded, Failures, Collected int64
	CacheHits, CacheMisses                int64
	LastError                             string
	// UploadedBytes sums the object bytes of verified uploads.
	UploadedBytes int64
	// OldestQueued is when the oldest segment still waiting for its
	// upload was sealed (zero when none waits): the cold tier's lag.
	OldestQueued time.Time
}

// Rotator uploads sealed segments and reads uploaded ones.
type Rotator struct {
	cfg   Config
	store coldstore.Store
	cat   *catalog.Catalog
	lg    *slog.Logger
	reg   *sequencer.Registry
	cache *diskCache

	mu       sync.Mutex
	queued   map[job]bool
	queuedAt map[job]time.Time // when each queued segment was sealed
	gcIDs    []int64
	wake     chan struct{}
	started  bool

	stats struct {
		queued, uploaded, failures, collected atomic.Int64
		uploadedBytes                         atomic.Int64
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
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	dc, err := newDiskCache(cfg.CacheDir, cfg.CacheBytes, cfg.Store)
	if err != nil {
		return nil, err
	}
	runCtx, halt := context.WithCancel(context.Background())
	return &Rotator{cfg: cfg, store: cfg.Store, cat: cfg.Catalog, lg: cfg.Logger, cache: dc,
		queued: map[job]bool{}, queuedAt: map[job]time.Time{}, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		runCtx: runCtx, halt: halt}, nil
}

// ObjectKey is the key of a segment object: "<stream id>/<segment>.seg"
// below the store's prefix.
func ObjectKey(stream, seg int64) string { return fmt.Sprintf("%d/%016d.seg", stream, seg) }

// OnSeal queues an upload; it never blocks (it runs on actor goroutines).
func (r *Rotator) OnSeal(stream int64, seg hotlog.Segment) {
	r.enqueue(job{stream, seg.Seg}, seg.SealedAt)
}

// OnHardDelete queues the collection of deleted streams' objects.
func (r *Rotator) OnHardDelete(ids []int64) {
	r.mu.Lock()
	r.gcIDs = append(r.gcIDs, ids...)
	r.mu.Unlock()
	r.signal()
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
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start begins uploading with reg, after re-queuing uploads that a crash
// or shutdown interrupted.
func (r *Rotator) Start(ctx context.Context, reg *sequencer.Registry) error {
	r.reg = reg
	rows, err := r.cat.DB().QueryContext(ctx, `SELECT stream_id, seg, created_at FROM segments WHERE state = 'sealed'`)
	if err != nil {
		return fmt.Errorf("rotation: list pending uploads: %w", err)
	}
	type pendingJob struct {
		job
		sealed time.Time
	}
	var pending []pendingJob
	for rows.Next() {
		var j pendingJob
		var ms int64
		if err := rows.Scan(&j.stream, &j.seg, &ms); err != nil {
			rows.Close()
			return fmt.Errorf("rotation: list pending uploads: %w", err)
		}
		j.sealed = time.UnixMilli(ms)
		pending = append(pending, j)
	}
	rows.Close()
	for _, j := range pending {
		r.enqueue(j.job, j.sealed)
	}
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	for range r.cfg.Workers {
		r.wg.Add(1)
		go r.worker()
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
		Collected: r.stats.collected.Load(), CacheHits: r.cache.hits.Load(), CacheMisses: r.cache.misses.Load(),
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

func (r *Rotator) worker() {
	defer r.wg.Done()
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-r.stop:
				return
			case <-time.After(backoff):
			}
		}
		j, gc, ok := r.next()
		if !ok {
			select {
			case <-r.stop:
				return
			case <-r.wake:
			}
			continue
		}
		ctx, cancel := context.WithTimeout(r.runCtx, 2*time.Minute)
		var err error
		if gc != 0 {
			err = r.collect(ctx, gc)
		} else {
			err = r.upload(ctx, j)
		}
		cancel()
		r.done(j, gc, err)
		if err != nil {
			r.stats.failures.Add(1)
			r.lastErr.Store(err.Error())
			backoff = min(max(backoff*2, r.cfg.RetryMin), r.cfg.RetryMax)
			r.lg.Warn("rotation: will retry", "stream", j.stream, "segment", j.seg, "gc", gc, "retry_in", backoff, "err", err)
			continue
		}
		backoff = 0
	}
}

// next picks a GC id or an upload job that no other worker is running.
func (r *Rotator) next() (job, int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return job{}, 0, false
	}
	if len(r.gcIDs) > 0 {
		id := r.gcIDs[0]
		r.gcIDs = r.gcIDs[1:]
		return job{}, id, true
	}
	for j, idle := range r.queued {
		if idle {
			r.queued[j] = false // in progress
			return j, 0, true
		}
	}
	return job{}, 0, false
}

func (r *Rotator) done(j job, gc int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case gc != 0 && err != nil:
		r.gcIDs = append(r.gcIDs, gc)
	case gc != 0:
	case err != nil:
		r.queued[j] = true // retry
	default:
		delete(r.queued, j)
		delete(r.queuedAt, j)
	}
	if err != nil {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// upload runs the crash-safe sequence for one sealed segment.
func (r *Rotator) upload(ctx context.Context, j job) error {
	st, release, err := r.reg.AcquireID(ctx, j.stream)
	if sequencer.KindOf(err) == sequencer.KindNotFound {
		return nil // stream deleted meanwhile
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
	if !found || seg.State == hotlog.SegmentUploaded {
		return nil
	}
	key := ObjectKey(j.stream, j.seg)
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
	if _, err := r.cat.DB().ExecContext(ctx, `UPDATE segments SET state = 'uploaded', bytes = ?, checksum = ?, messages = ?
		WHERE stream_id = ? AND seg = ?`, size, int64(crc), len(msgs), j.stream, j.seg); err != nil {
		return fmt.Errorf("admin index: %w", err)
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
	_, err := r.cat.DB().ExecContext(ctx, `INSERT INTO segments (stream_id, seg, first_pos, end_pos, bytes, messages, object_key, checksum, created_at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'sealed') ON CONFLICT(stream_id, seg) DO NOTHING`,
		j.stream, j.seg, seg.Start, seg.End, seg.Bytes, seg.Messages, key, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("admin index: %w", err)
	}
	return nil
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
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(h, rc); err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	if h.Sum32() != crc {
		return fmt.Errorf("verify %s: checksum mismatch", key)
	}
	return nil
}

// collect deletes every object of a deleted stream, then its admin index
// rows, then finishes its GC entry.
func (r *Rotator) collect(ctx context.Context, id int64) error {
	prefix := fmt.Sprintf("%d/", id)
	for obj, err := range r.store.List(ctx, prefix) {
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := r.store.Delete(ctx, obj.Key); err != nil {
			return fmt.Errorf("delete %s: %w", obj.Key, err)
		}
		r.cache.forget(obj.Key)
	}
	if _, err := r.cat.DB().ExecContext(ctx, `DELETE FROM segments WHERE stream_id = ?`, id); err != nil {
		return fmt.Errorf("admin index: %w", err)
	}
	if err := r.cat.DoneGC(ctx, id); err != nil {
		return err
	}
	r.stats.collected.Add(1)
	return nil
}

// ReadSegment implements sequencer.ColdReader.
func (r *Rotator) ReadSegment(ctx context.Context, stream int64, seg hotlog.Segment, from, limit int64, budget int) ([]hotlog.Message, error) {
	rd, err := r.cache.reader(ctx, seg.ObjectKey, seg.Checksum)
	if err != nil {
		return nil, err
	}
	msgs, err := rd.Read(ctx, from, limit, budget)
	if err != nil {
		return nil, err
	}
	out := make([]hotlog.Message, len(msgs))
	for i, m := range msgs {
		out[i] = hotlog.Message{Pos: m.Pos, Seg: seg.Seg, Data: m.Data, BatchEnd: m.BatchEnd}
	}
	return out, nil
}

// SegmentFile implements sequencer.ColdFileReader: the ranges of the
// cached copy of seg's object that hold the read, when that copy was
// verified whole against the checksum recorded at upload.
func (r *Rotator) SegmentFile(ctx context.Context, stream int64, seg hotlog.Segment, from, limit int64, budget int) (sequencer.ColdFile, bool, error) {
	path, ok, err := r.cache.file(ctx, seg.ObjectKey, seg.Checksum)
	if err != nil || !ok {
		return sequencer.ColdFile{}, false, err
	}
	rd, err := r.cache.reader(ctx, seg.ObjectKey, seg.Checksum)
	if err != nil {
		return sequencer.ColdFile{}, false, err
	}
	ext, ok := rd.Index().Extents(from, limit, budget)
	if !ok {
		return sequencer.ColdFile{}, false, nil
	}
	rs := make([]sequencer.FileRange, len(ext))
	for i, e := range ext {
		rs[i] = sequencer.FileRange{Pos: e.Pos, Off: e.Off, Len: e.Len}
	}
	return sequencer.ColdFile{Path: path, Ranges: rs}, true, nil
}
