// Package sequencer runs one actor goroutine per active stream, the single
// writer that orders its appends, and the registry that starts actors
// lazily, evicts idle ones and manages stream lifecycles (create, fork,
// delete, expiry).
package sequencer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/reclaim"
)

// RotationPolicy decides when the open segment of a stream is sealed.
type RotationPolicy struct {
	Enabled      bool // seal on close; rotation is wired to a cold store
	SealBytes    int64
	SealMessages int64
	SealAge      time.Duration
}

// Config configures a Registry.
type Config struct {
	DataDir     string
	Catalog     *catalog.Catalog
	Logger      *slog.Logger
	MaxOpen     int           // soft bound on open actors (default 4096)
	IdleTimeout time.Duration // close actors unused this long (default 30s)
	MaxBatch    int           // appends per group commit (default 1024)
	RecentBytes int           // per-stream in-memory tail cache (default 256 KiB)
	Rotation    RotationPolicy
	Cold        ColdReader
	// OnSeal is called (from the actor goroutine; must not block) when a
	// segment is sealed.
	OnSeal func(streamID int64, seg hotlog.Segment)
	// OnHandoff, if set, is told when a handoff of a stream starts
	// (active) and ends: the uploader puts the segments of streams being
	// handed off first, since each handoff waits for them.
	OnHandoff func(streamID int64, active bool)
	// Collector removes the remains of streams deleted for real (package
	// reclaim implements it); nil: a collector of the hot logs and the
	// catalog only, for registries without a cold store.
	Collector Collector
	// OnLifecycle, if set, is told about every stream created or deleted
	// (by a request or by expiry) right after the catalog commit. It is
	// called with the stream's path lock held, so events of one path
	// arrive in commit order; it must not block or call into the
	// Registry: hand the event to another goroutine.
	OnLifecycle func(LifecycleEvent)
	Now         func() time.Time
	// Journal configures the commit journal all streams share.
	Journal JournalConfig
	// Fence, in cluster mode, says whether this node may serve and write
	// a stream (see Fence); nil for a single node.
	Fence Fence
	// NodeID names this node in the handoff states it saves (handoff.go).
	NodeID string
}

// Registry owns the open streams.
type Registry struct {
	cfg Config
	cat *catalog.Catalog
	lg  *slog.Logger

	mu    sync.Mutex
	slots map[int64]*slot

	pathLocks [256]sync.Mutex
	rows      *rowCache // catalog rows by path, see liveRow

	accessMu sync.Mutex
	access   map[int64]time.Time // recent access times (sliding TTL)
	dirty    map[int64]struct{}  // access times not yet persisted

	closing   chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup

	counters counters // see Stats

	jnl *streamJournal // nil when Config.Journal.Disabled

	ho handoffs // guarded by mu
}

type slot struct {
	ready chan struct{}
	st    *Stream
	err   error
}

// NewRegistry starts a registry and its background workers.
func NewRegistry(cfg Config) (*Registry, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("sequencer: Config.Catalog is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 4096
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.RecentBytes <= 0 {
		cfg.RecentBytes = 256 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Collector == nil {
		c, err := reclaim.New(reclaim.Config{Catalog: cfg.Catalog, Logger: cfg.Logger,
			HotPath: func(id int64) string { return hotlog.StreamPath(cfg.DataDir, id) }})
		if err != nil {
			return nil, fmt.Errorf("sequencer: %w", err)
		}
		cfg.Collector = c
	}
	r := &Registry{cfg: cfg, cat: cfg.Catalog, lg: cfg.Logger, slots: map[int64]*slot{}, rows: newRowCache(2 * cfg.MaxOpen),
		access: map[int64]time.Time{}, dirty: map[int64]struct{}{}, closing: make(chan struct{})}
	if !cfg.Journal.Disabled {
		// Before anything serves: the hot logs must have caught up.
		jnl, err := openStreamJournal(r)
		if err != nil {
			return nil, err
		}
		if err := jnl.recover(context.Background()); err != nil {
			jnl.j.Close()
			return nil, err
		}
		r.jnl = jnl
		r.bg.Add(1)
		go jnl.checkpointer()
	}
	r.bg.Add(3)
	go r.janitor()
	go r.flusher()
	go r.sweeper()
	r.collectPending(context.Background())
	return r, nil
}

func (r *Registry) now() time.Time { return r.cfg.Now() }

// Closing returns a channel closed when shutdown starts, so live readers
// can end their responses cleanly.
func (r *Registry) Closing() <-chan struct{} { return r.closing }

// isClosing reports whether the registry is shutting down.
func (r *Registry) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// BeginShutdown wakes every live reader so it can finish its response;
// it is safe to call more than once.
func (r *Registry) BeginShutdown() { r.closeOnce.Do(func() { close(r.closing) }) }

// Close stops background work, flushes access times and stops every actor
// after its queued operations.
func (r *Registry) Close(ctx context.Context) error {
	r.BeginShutdown()
	r.bg.Wait()
	r.flushAccess(ctx)
	r.stopActors()
	if r.jnl != nil {
		return r.jnl.close(ctx)
	}
	return nil
}

// stopActors stops every actor after its queued operations.
func (r *Registry) stopActors() {
	r.mu.Lock()
	var all []*Stream
	for _, sl := range r.slots {
		if sl.st != nil {
			sl.st.closing = true
			all = append(all, sl.st)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, st := range all {
		wg.Add(1)
		go func() { defer wg.Done(); st.stop() }()
	}
	wg.Wait()
}

// StreamPath returns where the hot log of stream id lives.
func (r *Registry) StreamPath(id int64) string { return hotlog.StreamPath(r.cfg.DataDir, id) }

// Collector removes what streams deleted for real leave behind.
type Collector interface {
	// Collect is given the ids of streams deleted for real whose actors
	// have stopped; it removes their hot files before it returns and may
	// remove their cold remains later. It must not call into the Registry.
	Collect(ctx context.Context, ids []int64)
	// RemoveHot removes only the hot files of stream id on this node,
	// when another node deleted the stream (its cold remains are that
	// node's to collect) or serves it now.
	RemoveHot(id int64) error
}

// Handle is a stream in use by a request together with its catalog row:
// the surface the HTTP layer reads and appends through. Uploads, trims and
// forks work on the Stream itself, inside this package and for the
// uploader (AcquireID).
type Handle struct {
	st      *Stream
	Info    catalog.Stream
	release func()
}

// ID returns the stream's internal id.
func (h *Handle) ID() int64 { return h.st.id }

// Snapshot returns the latest published view of the stream.
func (h *Handle) Snapshot() *Snapshot { return h.st.Snapshot() }

// Append validates and commits req; it returns after the commit is durable.
func (h *Handle) Append(ctx context.Context, req *AppendRequest) (AppendResult, error) {
	return h.st.Append(ctx, req)
}

// Release lets the stream be evicted again.
func (h *Handle) Release() {
	if h.release != nil {
		h.release()
		h.release = nil
	}
}

// Acquire opens the live stream at path. renew records an access that
// extends a sliding TTL (reads and writes do, HEAD does not). Only a
// stream with a TTL records it: access times move nothing else, and a
// stream's TTL is fixed at its creation, so the others would only cost a
// catalog update each (every new stream of create-64, on its append).
func (r *Registry) Acquire(ctx context.Context, path string, renew bool) (*Handle, error) {
	row, err := r.liveRowUnlocked(ctx, path)
	if err != nil {
		return nil, err
	}
	st, release, err := r.acquireID(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	if renew && row.TTL > 0 {
		r.touch(row.ID)
	}
	return &Handle{st: st, Info: row, release: release}, nil
}

// liveRowUnlocked is liveRow for a caller that does not hold path's lock:
// it takes the lock to expire the stream, as every deletion holds it
// (see Create).
func (r *Registry) liveRowUnlocked(ctx context.Context, path string) (catalog.Stream, error) {
	row, err := r.liveRow(ctx, path, false)
	if !errors.Is(err, errExpireLocked) {
		return row, err
	}
	unlock := r.lockPath(path)
	defer unlock()
	return r.liveRow(ctx, path, true)
}

// errExpireLocked asks liveRowUnlocked to take the path's lock.
var errExpireLocked = errors.New("expire under the path lock")

// liveRow returns the catalog row of a live, unexpired stream, expiring it
// if its deadline has passed, which needs path's lock (locked). Rows come
// from the row cache when they can: looking them up in the catalog was
// about a seventh of the CPU time of a small append.
func (r *Registry) liveRow(ctx context.Context, path string, locked bool) (catalog.Stream, error) {
	row, ok, gen := r.rows.get(path)
	if !ok {
		var err error
		row, err = r.cat.Get(ctx, path)
		if errors.Is(err, catalog.ErrNotFound) {
			return row, errNotFound
		}
		if err != nil {
			return row, internal("catalog lookup", err)
		}
		r.rows.put(row, gen)
	}
	if !row.DeletedAt.IsZero() {
		return row, errGone
	}
	if r.expired(row) {
		if !locked {
			return row, errExpireLocked
		}
		soft, err := r.expire(ctx, row)
		if err != nil {
			return row, err
		}
		if soft {
			return row, errGone
		}
		return row, errNotFound
	}
	return row, nil
}

// acquireID opens stream id (live or soft-deleted) and pins it.
func (r *Registry) acquireID(ctx context.Context, id int64) (*Stream, func(), error) {
	for {
		r.mu.Lock()
		sl := r.slots[id]
		if sl == nil {
			select {
			case <-r.closing:
				r.mu.Unlock()
				return nil, nil, errStopped
			default:
			}
			if r.handingOff(id) {
				r.mu.Unlock()
				return nil, nil, errHandingOff
			}
			sl = &slot{ready: make(chan struct{})}
			r.slots[id] = sl
			r.mu.Unlock()
			r.open(ctx, id, sl)
		} else {
			r.mu.Unlock()
		}
		select {
		case <-sl.ready:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if sl.err != nil {
			return nil, nil, sl.err
		}
		st := sl.st
		r.mu.Lock()
		if st.closing {
			r.mu.Unlock()
			<-st.done
			continue
		}
		st.refs++
		r.mu.Unlock()
		var once sync.Once
		return st, func() {
			once.Do(func() {
				r.mu.Lock()
				st.refs--
				st.lastUsed = r.now()
				r.mu.Unlock()
			})
		}, nil
	}
}

// open loads stream id's hot log and starts its actor.
func (r *Registry) open(ctx context.Context, id int64, sl *slot) {
	st, err := r.startActor(ctx, id)
	if err != nil {
		var serr *Error
		switch {
		case errors.As(err, &serr):
		case errors.Is(err, fs.ErrNotExist):
			serr = errNotFound
		default:
			serr = internal("open stream", err)
		}
		r.mu.Lock()
		delete(r.slots, id)
		r.mu.Unlock()
		sl.err = serr
		close(sl.ready)
		return
	}
	r.mu.Lock()
	sl.st = st
	r.mu.Unlock()
	close(sl.ready)
}

func (r *Registry) startActor(ctx context.Context, id int64) (*Stream, error) {
	if err := r.refuseWhileDraining(id); err != nil {
		return nil, err
	}
	if err := r.fenceAcquire(ctx, id); err != nil {
		return nil, err
	}
	if err := r.continueHandoff(ctx, id); err != nil {
		return nil, err
	}
	lg, meta, prods, segs, wb, err := r.openHotLog(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &Stream{id: id, reg: r, log: lg, lg: r.lg, meta: meta, segments: segs,
		mailbox: make(chan op, mailboxSize), done: make(chan struct{}), lastUsed: r.now(),
		producers: prods}
	if wb != nil {
		st.wb = *wb
		st.addRecent(wb.batch.Messages)
		r.jnl.track(st)
	}
	st.publish()
	st.resetSealTimer()
	for _, g := range segs {
		if g.State == segment.Sealed {
			r.rotationNotify(st, g) // resume uploads interrupted by a restart
		}
	}
	st.start()
	return st, nil
}

// janitor closes idle actors and keeps the number of open ones bounded.
func (r *Registry) janitor() {
	defer r.bg.Done()
	t := time.NewTicker(max(r.cfg.IdleTimeout/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
			r.evictIdle()
		}
	}
}

func (r *Registry) evictIdle() {
	now := r.now()
	r.mu.Lock()
	var idle []*Stream
	for _, sl := range r.slots {
		if st := sl.st; st != nil && st.refs == 0 && !st.closing {
			idle = append(idle, st)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastUsed.Before(idle[j].lastUsed) })
	over := len(r.slots) - r.cfg.MaxOpen
	var victims []*Stream
	for i, st := range idle {
		if i < over || now.Sub(st.lastUsed) >= r.cfg.IdleTimeout {
			st.closing = true
			victims = append(victims, st)
		}
	}
	r.mu.Unlock()
	for _, st := range victims {
		st.stop()
		r.mu.Lock()
		if sl := r.slots[st.id]; sl != nil && sl.st == st {
			delete(r.slots, st.id)
		}
		r.mu.Unlock()
	}
}

// OpenCount reports how many actors are running.
func (r *Registry) OpenCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots)
}

func (r *Registry) lockPath(path string) func() {
	m := &r.pathLocks[r.pathLockIndex(path)]
	m.Lock()
	return m.Unlock
}

func (r *Registry) pathLockIndex(path string) int {
	h := fnv.New32a()
	h.Write([]byte(path))
	return int(h.Sum32() % uint32(len(r.pathLocks)))
}

// lockPaths locks the paths' locks, each once and in a fixed order, so
// that two callers locking overlapping sets cannot deadlock.
func (r *Registry) lockPaths(paths ...string) func() {
	idx := make([]int, 0, len(paths))
	for _, p := range paths {
		idx = append(idx, r.pathLockIndex(p))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		r.pathLocks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			r.pathLocks[i].Unlock()
		}
	}
}

func (r *Registry) rotationNotify(st *Stream, seg hotlog.Segment) {
	if r.cfg.OnSeal != nil {
		r.cfg.OnSeal(st.id, seg)
	}
}

// closedNotify records in the catalog that stream id was closed. The actor
// calls it before answering the closing append, so that a listing made
// after the answer shows the stream closed; a stream closes once, so the
// actor waits for this catalog write at most once in its life.
func (r *Registry) closedNotify(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), closeRecordTimeout)
	defer cancel()
	err := r.setClosed(ctx, id)
	r.rows.forgetIDs(id)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		r.lg.Warn("catalog: record close", "id", id, "err", err)
	}
}

// closeRecordTimeout bounds how long an actor waits to record a close.
const closeRecordTimeout = 5 * time.Second

func contentTypeOf(s string) protocol.ContentType {
	ct, err := protocol.ParseContentType(s)
	if err != nil {
		return protocol.ContentType{Full: s, Media: s}
	}
	return ct
}
