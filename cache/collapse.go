package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Collapser lets identical concurrent computations share one run: the
// first caller of a key runs the computation, callers arriving while it
// runs wait for its result, and callers arriving after it finished get the
// kept result, for as long as the result is valid.
//
// Validity is expressed by generations. Keys belong to a scope (for reads:
// a stream), and every call names the generation its key belongs to with a
// channel that is closed when the generation is superseded (for reads: the
// snapshot's Changed channel). A scope keeps the results of one generation
// only: the first call of a newer generation drops the older results. So a
// result is served to late arrivals exactly while its generation is
// current, which makes sharing deterministic: every caller of a key in one
// generation gets the same single run, not just the ones that overlapped
// it in time. A call whose generation is already superseded runs alone; a
// call with another generation that is still open (a newer one whose
// predecessor is about to be closed, or a new owner of the scope) replaces
// the scope's generation.
//
// Memory is bounded: kept results are evicted least recently used first
// once more than MaxEntries are kept or their sizes add up to more than
// MaxBytes. A result larger than MaxBytes is shared with the callers that
// waited for it but not kept.
//
// The zero value is not usable; use NewCollapser.
type Collapser[K comparable, V any] struct {
	maxEntries int
	maxBytes   int64
	size       func(V) int64

	mu     sync.Mutex
	scopes map[int64]*scope[K, V]
	// lru is the sentinel of a ring of the kept entries, most recently
	// used first.
	lru   entry[K, V]
	kept  int
	bytes int64

	computed atomic.Uint64
	shared   atomic.Uint64
}

// CollapserConfig bounds what a Collapser keeps.
type CollapserConfig[V any] struct {
	// MaxEntries bounds the number of kept results (default 4096).
	MaxEntries int
	// MaxBytes bounds the total size of kept results (default 64 MiB).
	MaxBytes int64
	// Size returns the size of a result for MaxBytes (nil: every result
	// counts as 0 bytes and only MaxEntries applies).
	Size func(V) int64
}

// CollapseStats counts a Collapser's work.
type CollapseStats struct {
	// Computed is the number of runs of a computation.
	Computed uint64
	// Shared is the number of calls answered by another call's run.
	Shared uint64
	// Kept and KeptBytes are the results kept now and their total size.
	Kept      int
	KeptBytes int64
}

type scope[K comparable, V any] struct {
	gen     <-chan struct{}
	entries map[K]*entry[K, V]
}

type entry[K comparable, V any] struct {
	key   K
	scope int64
	done  chan struct{}
	val   V
	err   error
	size  int64
	// prev and next link the entry into Collapser.lru while it is kept.
	prev, next *entry[K, V]
}

// errPanicked is what waiters get when the computation panicked.
var errPanicked = errors.New("cache: collapsed computation panicked")

// NewCollapser returns a Collapser with the given bounds.
func NewCollapser[K comparable, V any](cfg CollapserConfig[V]) *Collapser[K, V] {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 4096
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	c := &Collapser[K, V]{maxEntries: cfg.MaxEntries, maxBytes: cfg.MaxBytes, size: cfg.Size,
		scopes: make(map[int64]*scope[K, V])}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// Do returns the result of fn for key, which belongs to generation gen of
// scope sc, running fn at most once per key and generation. fn runs with
// ctx's values but not its cancellation, because other callers may be
// waiting for it; a caller whose ctx ends stops waiting with ctx's error.
// shared reports whether the result came from another call's run. Errors
// are shared with the callers that waited but not kept.
func (c *Collapser[K, V]) Do(ctx context.Context, sc int64, gen <-chan struct{}, key K, fn func(context.Context) (V, error)) (v V, shared bool, err error) {
	c.mu.Lock()
	s := c.scopes[sc]
	if s == nil || s.gen != gen {
		if closed(gen) {
			// The caller's generation is over: nobody will ask again.
			c.mu.Unlock()
			c.computed.Add(1)
			v, err := fn(context.WithoutCancel(ctx))
			return v, false, err
		}
		if s != nil {
			// Runs still in progress keep their entries for their waiters.
			c.dropScopeLocked(s)
		} else {
			s = &scope[K, V]{entries: make(map[K]*entry[K, V])}
			c.scopes[sc] = s
		}
		s.gen = gen
	}
	if e := s.entries[key]; e != nil {
		if e.next != nil {
			c.unlink(e)
			c.pushFront(e)
		}
		c.mu.Unlock()
		c.shared.Add(1)
		select {
		case <-e.done:
			return e.val, true, e.err
		case <-ctx.Done():
			var zero V
			return zero, true, ctx.Err()
		}
	}
	e := &entry[K, V]{key: key, scope: sc, done: make(chan struct{})}
	s.entries[key] = e
	c.mu.Unlock()

	c.computed.Add(1)
	e.err = errPanicked
	defer c.finish(s, e)
	e.val, e.err = fn(context.WithoutCancel(ctx))
	return e.val, false, e.err
}

// finish publishes e's result to its waiters and keeps it if it is valid
// and fits.
func (c *Collapser[K, V]) finish(s *scope[K, V], e *entry[K, V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(e.done)
	if e.err == nil && c.size != nil {
		e.size = c.size(e.val)
	}
	current := c.scopes[e.scope] == s && s.entries[e.key] == e
	if !current {
		return
	}
	if e.err == nil && e.size <= c.maxBytes && !closed(s.gen) {
		c.pushFront(e)
		c.kept++
		c.bytes += e.size
		for c.kept > c.maxEntries || c.bytes > c.maxBytes {
			c.evictLocked(c.lru.prev)
		}
		return
	}
	c.forgetLocked(s, e)
}

// forgetLocked removes e, which is not kept, from its scope, and the scope
// when it is empty.
func (c *Collapser[K, V]) forgetLocked(s *scope[K, V], e *entry[K, V]) {
	delete(s.entries, e.key)
	if len(s.entries) == 0 {
		delete(c.scopes, e.scope)
	}
}

// evictLocked forgets a kept result.
func (c *Collapser[K, V]) evictLocked(e *entry[K, V]) {
	c.unlink(e)
	c.kept--
	c.bytes -= e.size
	if s := c.scopes[e.scope]; s != nil && s.entries[e.key] == e {
		c.forgetLocked(s, e)
	}
}

// dropScopeLocked forgets every result of a superseded generation,
// keeping the scope (and its map) for the next one; runs still in
// progress finish for their waiters.
func (c *Collapser[K, V]) dropScopeLocked(s *scope[K, V]) {
	for _, e := range s.entries {
		if e.next != nil {
			c.unlink(e)
			c.kept--
			c.bytes -= e.size
		}
	}
	clear(s.entries)
}

func (c *Collapser[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &c.lru, c.lru.next
	e.prev.next, e.next.prev = e, e
}

func (c *Collapser[K, V]) unlink(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// Stats returns the counters and the current size of what is kept.
func (c *Collapser[K, V]) Stats() CollapseStats {
	c.mu.Lock()
	kept, bytes := c.kept, c.bytes
	c.mu.Unlock()
	return CollapseStats{Computed: c.computed.Load(), Shared: c.shared.Load(), Kept: kept, KeptBytes: bytes}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
