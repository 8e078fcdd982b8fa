package sequencer

import (
	"sync"
	"time"

	"github.com/streamtier/durable-streams/catalog"
)

// rowCache keeps catalog rows by path so that the requests to a stream
// do not each look its row up in the catalog.
//
// Every change of a stream row goes through the Registry, which updates or
// drops the cached row right after the catalog commits the change. A
// lookup that missed reads the catalog without a lock, so a change may
// commit between that read and the fill; every change therefore moves gen
// on, and a fill whose read started before the latest change is dropped
// (the next lookup reads the catalog again).
type rowCache struct {
	mu     sync.RWMutex
	gen    uint64
	byPath map[string]catalog.Stream
	pathOf map[int64]string // id to path of the cached rows
	limit  int
}

func newRowCache(limit int) *rowCache {
	return &rowCache{byPath: map[string]catalog.Stream{}, pathOf: map[int64]string{}, limit: max(limit, 1)}
}

// get returns the cached row of path, or the generation that a fill of
// the row read from the catalog from now on must present to put.
func (c *rowCache) get(path string) (row catalog.Stream, ok bool, gen uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	row, ok = c.byPath[path]
	return row, ok, c.gen
}

// put caches row unless a change happened since gen was handed out.
func (c *rowCache) put(row catalog.Stream, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.store(row)
}

// store caches row, making room if needed. The caller holds c.mu.
func (c *rowCache) store(row catalog.Stream) {
	if _, ok := c.byPath[row.Path]; !ok && len(c.byPath) >= c.limit {
		// Any victim will do: a dropped row costs one catalog read.
		for p, r := range c.byPath {
			delete(c.byPath, p)
			delete(c.pathOf, r.ID)
			break
		}
	}
	if old, ok := c.byPath[row.Path]; ok && old.ID != row.ID {
		delete(c.pathOf, old.ID)
	}
	c.byPath[row.Path] = row
	c.pathOf[row.ID] = row.Path
}

// inserted caches row, just entered in the catalog, as the catalog
// returns it (times and TTL in whole milliseconds), so that the first
// append to a new stream does not read back the row its creation wrote.
func (c *rowCache) inserted(row catalog.Stream) {
	ms := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.UnixMilli(t.UnixMilli())
	}
	if row.TTL > 0 {
		row.TTL = max(row.TTL.Truncate(time.Millisecond), time.Millisecond)
	}
	row.ExpiresAt, row.LastAccess, row.CreatedAt = ms(row.ExpiresAt), ms(row.LastAccess), ms(row.CreatedAt)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++ // a fill that read the catalog before the insert is stale
	c.store(row)
}

// forgetPath drops the row of path, after the catalog changed it.
func (c *rowCache) forgetPath(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if row, ok := c.byPath[path]; ok {
		delete(c.pathOf, row.ID)
		delete(c.byPath, path)
	}
}

// forgetIDs drops the rows of ids, after the catalog changed them.
func (c *rowCache) forgetIDs(ids ...int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		if p, ok := c.pathOf[id]; ok {
			delete(c.pathOf, id)
			delete(c.byPath, p)
		}
	}
}

// forgetAll drops every row, after a change whose rows are not all known
// by id (the reference counts of a deleted fork's ancestors).
func (c *rowCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byPath)
	clear(c.pathOf)
}

// touched records access times that the catalog has just stored, so that
// a cached row never has an older access time than its catalog row once
// the in-memory times are dropped.
func (c *rowCache) touched(access map[int64]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for id, t := range access {
		p, ok := c.pathOf[id]
		if !ok {
			continue
		}
		t = time.UnixMilli(t.UnixMilli()) // as the catalog stores it
		if row := c.byPath[p]; row.LastAccess.Before(t) {
			row.LastAccess = t
			c.byPath[p] = row
		}
	}
}
