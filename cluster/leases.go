package cluster

import "sync"

// leaseShards spreads the held leases over locks, so that the fence
// checks of many streams' commits on many cores rarely share one.
const leaseShards = 64

// leaseTable is the leases this node holds, by stream id. It is read on
// every commit (Check), so a lookup takes a read lock of one shard and
// allocates nothing (a sync.Map would box every int64 key).
type leaseTable struct {
	shards [leaseShards]struct {
		mu sync.RWMutex
		m  map[int64]*held
	}
}

func (t *leaseTable) shard(id int64) *struct {
	mu sync.RWMutex
	m  map[int64]*held
} {
	return &t.shards[uint64(id)%leaseShards]
}

func (t *leaseTable) load(id int64) (*held, bool) {
	s := t.shard(id)
	s.mu.RLock()
	h, ok := s.m[id]
	s.mu.RUnlock()
	return h, ok
}

func (t *leaseTable) store(id int64, h *held) {
	s := t.shard(id)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[int64]*held{}
	}
	s.m[id] = h
	s.mu.Unlock()
}

// compareAndDelete deletes id's entry if it is still h.
func (t *leaseTable) compareAndDelete(id int64, h *held) bool {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[id] != h {
		return false
	}
	delete(s.m, id)
	return true
}

// deleteIf deletes the entries for which drop is true; drop must not call
// into t.
func (t *leaseTable) deleteIf(drop func(id int64, h *held) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for id, h := range s.m {
			if drop(id, h) {
				delete(s.m, id)
			}
		}
		s.mu.Unlock()
	}
}

func (t *leaseTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
