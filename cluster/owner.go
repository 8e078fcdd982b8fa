package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamtier/durable-streams/catalog"
)

// OwnerOf says which node serves the stream at path: the lease holder if
// it is live (this node included, also with an expired lease of its own,
// which it claims again); for a stream whose lease is free, because it
// was never leased or was released clean (all its data in the cold tier),
// and for a path with no stream yet, the rendezvous choice over live
// nodes. A holder that is not live fails with [ErrUnavailable]: the
// stream's unsealed data is on that node only.
//
// Answers are cached for one heartbeat interval, so a request may be sent
// to a node that just lost the stream; that node refuses it (503), and
// the client's retry finds the new owner. Streams this node holds a lease
// of are answered from memory; an answer of this node without a lease is
// never taken from the cache.
func (c *Cluster) OwnerOf(ctx context.Context, path string) (Owner, error) {
	now := c.cfg.Now()
	if e, ok := c.owners.get(path, now); ok {
		_, mine := c.leases.load(e.id)
		switch {
		case mine && e.id != 0:
			return c.self(), nil
		case e.owner.Self:
			// This node serves a stream only under its lease. Without
			// one, the answer may be stale in a way the owner cannot
			// repair by refusing: a path placed here while it had no
			// stream may since have been created through another node
			// that still saw an older lease or another node set, and
			// serving it here would fail to claim the lease (503) until
			// the entry aged. Ask again; the stream's first request
			// here claims the lease, and from then on memory answers.
		case e.fresh:
			return e.owner, e.err
		}
	}
	id, owner, err := c.lookupOwner(ctx, path)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return Owner{}, err
	}
	c.owners.put(path, id, owner, err, now)
	return owner, err
}

// lookupOwner is OwnerOf without the cache; id is 0 for a path without a
// stream.
func (c *Cluster) lookupOwner(ctx context.Context, path string) (int64, Owner, error) {
	row, err := c.st.Get(ctx, path)
	if errors.Is(err, catalog.ErrNotFound) {
		return 0, c.placed(path), nil
	}
	if err != nil {
		return 0, Owner{}, fmt.Errorf("cluster: owner of %q: %w", path, err)
	}
	l, err := c.st.GetLease(ctx, row.ID)
	switch {
	case errors.Is(err, catalog.ErrNotFound) || (err == nil && l.Node == ""):
		return row.ID, c.placed(path), nil
	case err != nil:
		return 0, Owner{}, fmt.Errorf("cluster: owner of %q: %w", path, err)
	case l.Node == c.cfg.NodeID:
		return row.ID, c.self(), nil
	}
	n, ok := c.liveNode(l.Node)
	if !ok {
		return row.ID, Owner{NodeID: l.Node}, fmt.Errorf("cluster: stream %q: its owner %q is not live: %w", path, l.Node, ErrUnavailable)
	}
	return row.ID, Owner{NodeID: n.ID, URL: n.AdvertiseURL}, nil
}

// placed is the rendezvous choice for path over the live nodes.
func (c *Cluster) placed(path string) Owner {
	nodes := c.LiveNodes()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	id := place(path, ids)
	if id == c.cfg.NodeID {
		return c.self()
	}
	n, _ := c.liveNode(id)
	return Owner{NodeID: n.ID, URL: n.AdvertiseURL}
}

func (c *Cluster) self() Owner {
	return Owner{NodeID: c.cfg.NodeID, URL: c.cfg.AdvertiseURL, Self: true}
}

// maxCachedOwners bounds the owner cache; it is emptied when full.
const maxCachedOwners = 1 << 16

// ownerCache remembers OwnerOf's answers by path for a short time.
type ownerCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]ownerEntry
}

type ownerEntry struct {
	id    int64 // the stream's id; 0 if there was none
	owner Owner
	err   error
	at    time.Time
	fresh bool // set by get: younger than ttl
}

func (oc *ownerCache) init(ttl time.Duration) {
	oc.ttl = ttl
	oc.m = map[string]ownerEntry{}
}

func (oc *ownerCache) get(path string, now time.Time) (ownerEntry, bool) {
	oc.mu.Lock()
	e, ok := oc.m[path]
	oc.mu.Unlock()
	e.fresh = ok && now.Sub(e.at) < oc.ttl
	return e, ok
}

func (oc *ownerCache) put(path string, id int64, owner Owner, err error, now time.Time) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if len(oc.m) >= maxCachedOwners {
		clear(oc.m)
	}
	oc.m[path] = ownerEntry{id: id, owner: owner, err: err, at: now}
}
