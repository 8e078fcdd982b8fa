// Package segcache reads uploaded segments from the cold store through a
// bounded read-through cache of whole objects on local disk.
//
// The sequencer reads a stream's uploaded segments through a [Cache] (it
// implements sequencer.ColdReader); the server builds it next to the cold
// store and hands it over. Objects are immutable, so a cached copy never goes
// stale; every download is checked against the CRC32C that the segment index
// recorded at upload ([segment.CopyChecked]) before it is cached, and every
// block a read decodes is checked against the object's own index.
package segcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// Config configures a Cache.
type Config struct {
	Store coldstore.Store // required
	// Dir holds the cached objects; it is emptied at New. Without one,
	// reads go to the store as ranged reads.
	Dir string
	// MaxBytes bounds the cached objects (default 1 GiB); the newest
	// object stays even when it alone is larger.
	MaxBytes int64
}

// Stats are the cache's counters.
type Stats struct {
	Hits, Misses int64 // object lookups served from disk / downloaded
}

// Cache is a bounded read-through cache of whole cold objects on local
// disk, evicted least-recently-used by bytes. Concurrent misses for one
// object share a single download. Parsed segment indexes are kept in memory
// alongside. It is safe for concurrent use.
type Cache struct {
	dir   string
	max   int64
	store coldstore.Store

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recent at front
	items    map[string]*list.Element
	used     int64
	inflight map[string]*download
	readers  map[string]*segment.Reader

	hits, misses atomic.Int64
}

type cacheEntry struct {
	key  string
	path string
	size int64
}

type download struct {
	done chan struct{}
	err  error
}

const maxReaders = 4096

// New returns a cache over cfg.Store.
func New(cfg Config) (*Cache, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("segcache: Store is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	c := &Cache{dir: cfg.Dir, max: cfg.MaxBytes, store: cfg.Store, lru: list.New(), items: map[string]*list.Element{},
		inflight: map[string]*download{}, readers: map[string]*segment.Reader{}}
	if c.dir == "" {
		return c, nil
	}
	// The cache is only a copy: start empty rather than trust leftovers.
	if err := os.RemoveAll(c.dir); err != nil {
		return nil, fmt.Errorf("segcache: reset cache dir: %w", err)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("segcache: create cache dir: %w", err)
	}
	return c, nil
}

// ReadSegment returns the messages of the segment object key that overlap
// [from, limit), starting with the one containing from, whole messages
// only, within budget bytes (at least one message). checksum is the
// object's CRC32C as verified at upload (0 if unknown).
func (c *Cache) ReadSegment(ctx context.Context, key string, checksum uint32, from, limit int64, budget int) ([]segment.Message, error) {
	rd, err := c.reader(ctx, key, checksum)
	if err != nil {
		return nil, err
	}
	return rd.Read(ctx, from, limit, budget)
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats { return Stats{Hits: c.hits.Load(), Misses: c.misses.Load()} }

// reader returns a segment reader for key, parsing its index once. crc is
// the CRC32C of the whole object as verified at upload (0 if unknown):
// downloads that do not match it are not cached.
func (c *Cache) reader(ctx context.Context, key string, crc uint32) (*segment.Reader, error) {
	c.mu.Lock()
	rd := c.readers[key]
	c.mu.Unlock()
	if rd != nil {
		return rd, nil
	}
	size, err := c.size(ctx, key, crc)
	if err != nil {
		return nil, err
	}
	fetch := func(ctx context.Context, off, n int64) ([]byte, error) { return c.readAt(ctx, key, crc, off, n) }
	rd, err = segment.NewReader(ctx, fetch, size)
	if err != nil {
		return nil, fmt.Errorf("segcache: open segment %s: %w", key, err)
	}
	c.mu.Lock()
	if len(c.readers) >= maxReaders {
		clear(c.readers)
	}
	c.readers[key] = rd
	c.mu.Unlock()
	return rd, nil
}

func (c *Cache) size(ctx context.Context, key string, crc uint32) (int64, error) {
	if c.dir == "" {
		info, err := c.store.Head(ctx, key)
		return info.Size, err
	}
	e, err := c.ensure(ctx, key, crc)
	if err != nil {
		return 0, err
	}
	return e.size, nil
}

// readAt returns n bytes at off of object key. With a cache directory the
// bytes come from the object's local file (ensure returns its path and
// size): the file and range a response could also be sent from directly.
func (c *Cache) readAt(ctx context.Context, key string, crc uint32, off, n int64) ([]byte, error) {
	if c.dir == "" {
		rc, err := c.store.Get(ctx, key, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		buf := make([]byte, n)
		_, err = io.ReadFull(rc, buf)
		return buf, err
	}
	for attempt := 0; ; attempt++ {
		e, err := c.ensure(ctx, key, crc)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(e.path)
		if os.IsNotExist(err) && attempt == 0 {
			continue // evicted between ensure and open: fetch again
		}
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		_, err = f.ReadAt(buf, off)
		f.Close()
		if err != nil {
			return nil, err
		}
		return buf, nil
	}
}

// ensure makes sure object key is on disk and marks it recently used.
func (c *Cache) ensure(ctx context.Context, key string, crc uint32) (*cacheEntry, error) {
	for {
		c.mu.Lock()
		if el, ok := c.items[key]; ok {
			c.lru.MoveToFront(el)
			e := el.Value.(*cacheEntry)
			c.mu.Unlock()
			c.hits.Add(1)
			return e, nil
		}
		if d, ok := c.inflight[key]; ok {
			c.mu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if d.err != nil {
				return nil, d.err
			}
			continue
		}
		d := &download{done: make(chan struct{})}
		c.inflight[key] = d
		c.mu.Unlock()
		c.misses.Add(1)
		e, err := c.fetch(ctx, key, crc)
		c.mu.Lock()
		delete(c.inflight, key)
		if err == nil {
			c.items[key] = c.lru.PushFront(e)
			c.used += e.size
			c.evictLocked()
		}
		c.mu.Unlock()
		d.err = err
		close(d.done)
		if err != nil {
			return nil, err
		}
		return e, nil
	}
}

// fetch downloads key into the cache directory. A body cut short or
// damaged on the way would otherwise stay cached and fail every later read
// of the object, so with a known crc the download must match it.
func (c *Cache) fetch(ctx context.Context, key string, crc uint32) (*cacheEntry, error) {
	rc, err := c.store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".seg")
	tmp, err := os.CreateTemp(c.dir, "dl-*")
	if err != nil {
		return nil, err
	}
	n, _, err := segment.CopyChecked(tmp, rc, crc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("segcache: download %s: %w", key, err)
	}
	return &cacheEntry{key: key, path: path, size: n}, nil
}

// evictLocked removes least recently used objects beyond the byte bound,
// always keeping the newest one.
func (c *Cache) evictLocked() {
	for c.used > c.max && c.lru.Len() > 1 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.items, e.key)
		c.used -= e.size
		os.Remove(e.path)
	}
}

// Forget drops a deleted object from the cache.
func (c *Cache) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.readers, key)
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.items, key)
		c.used -= e.size
		os.Remove(e.path)
	}
}
