package rotation

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/rotation/segment"
)

// diskCache is a bounded read-through cache of whole cold objects on local
// disk, evicted least-recently-used by bytes. Objects are immutable, so a
// cached copy never goes stale. Concurrent misses for one object share a
// single download. Parsed segment indexes are kept in memory alongside.
// Without a directory it reads ranges from the store directly.
type diskCache struct {
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

func newDiskCache(dir string, max int64, store coldstore.Store) (*diskCache, error) {
	c := &diskCache{dir: dir, max: max, store: store, lru: list.New(), items: map[string]*list.Element{},
		inflight: map[string]*download{}, readers: map[string]*segment.Reader{}}
	if dir == "" {
		return c, nil
	}
	// The cache is only a copy: start empty rather than trust leftovers.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("rotation: reset cache dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rotation: create cache dir: %w", err)
	}
	return c, nil
}

// reader returns a segment reader for key, parsing its index once. crc is
// the CRC32C of the whole object as verified at upload (0 if unknown):
// downloads that do not match it are not cached.
func (c *diskCache) reader(ctx context.Context, key string, crc uint32) (*segment.Reader, error) {
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
		return nil, fmt.Errorf("rotation: open segment %s: %w", key, err)
	}
	c.mu.Lock()
	if len(c.readers) >= maxReaders {
		clear(c.readers)
	}
	c.readers[key] = rd
	c.mu.Unlock()
	return rd, nil
}

func (c *diskCache) size(ctx context.Context, key string, crc uint32) (int64, error) {
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

// readAt returns n bytes at off of object key.
func (c *diskCache) readAt(ctx context.Context, key string, crc uint32, off, n int64) ([]byte, error) {
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
func (c *diskCache) ensure(ctx context.Context, key string, crc uint32) (*cacheEntry, error) {
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
func (c *diskCache) fetch(ctx context.Context, key string, crc uint32) (*cacheEntry, error) {
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
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && crc != 0 && h.Sum32() != crc {
		err = fmt.Errorf("downloaded %d bytes with CRC32C %08x, want %08x: truncated or corrupt", n, h.Sum32(), crc)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("rotation: cache %s: %w", key, err)
	}
	return &cacheEntry{key: key, path: path, size: n}, nil
}

// evictLocked removes least recently used objects beyond the byte bound,
// always keeping the newest one.
func (c *diskCache) evictLocked() {
	for c.used > c.max && c.lru.Len() > 1 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.items, e.key)
		c.used -= e.size
		os.Remove(e.path)
	}
}

// file returns the path of the cached copy of object key, fetching it if
// needed. ok is false without a cache directory, or when crc is unknown:
// only a copy verified whole at download may be read without checking
// its blocks. The file may be evicted at any time; open it and retry on
// os.ErrNotExist.
func (c *diskCache) file(ctx context.Context, key string, crc uint32) (path string, ok bool, err error) {
	if c.dir == "" || crc == 0 {
		return "", false, nil
	}
	e, err := c.ensure(ctx, key, crc)
	if err != nil {
		return "", false, err
	}
	return e.path, true, nil
}

// forget drops a deleted object from the cache.
func (c *diskCache) forget(key string) {
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
