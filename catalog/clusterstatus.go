package catalog

import (
	"context"
	"fmt"
)

// Read-only views of cluster ownership for operators ("durable-streams
// cluster status", the admin API): how many streams each node owns and
// which. They never take locks or write, so they may run on any node at
// any time; their answers are a snapshot, already old when returned.
//
// A lease is held while it names a node and has not expired by c.now. A
// stream whose lease names a node but expired stays that node's: its
// unsealed data may be only on that node's disk, which is why operators
// want to see it next to the node (docs/cluster.md, node loss).

// NodeLeaseCount counts the leases naming one node, of streams the
// directory still has (live or soft-deleted).
type NodeLeaseCount struct {
	Node string
	// Held counts the leases that have not expired.
	Held int64
	// Streams counts every lease naming Node, expired ones included.
	Streams int64
}

// LeaseCounts returns, per node that some lease names, its lease counts,
// in node order. Nodes that hold no lease are absent, registered or not;
// nodes that are no longer registered but still named by leases are
// present.
func (c *Catalog) LeaseCounts(ctx context.Context) ([]NodeLeaseCount, error) {
	out, err := queryAll(ctx, c.db, func(r scanner) (NodeLeaseCount, error) {
		var n NodeLeaseCount
		err := r.Scan(&n.Node, &n.Held, &n.Streams)
		return n, err
	}, `SELECT l.node, SUM(CASE WHEN l.expires_at > ? THEN 1 ELSE 0 END), COUNT(*)
		FROM stream_leases l JOIN streams s ON s.id = l.stream_id
		WHERE l.node <> '' GROUP BY l.node ORDER BY l.node`, c.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("catalog: lease counts: %w", err)
	}
	return out, nil
}

// NodeLease is a lease with its stream's path.
type NodeLease struct {
	Lease
	Path string
	// Held is true while the lease has not expired.
	Held bool
}

// NodeLeases returns up to limit leases naming node, expired ones
// included, of streams with ids above after that the directory still has,
// in stream id order. Page by passing the last StreamID as after.
func (c *Catalog) NodeLeases(ctx context.Context, node string, after int64, limit int) ([]NodeLease, error) {
	if node == "" || limit <= 0 {
		return nil, fmt.Errorf("catalog: leases of node %q: need a node and a positive limit", node)
	}
	now := c.now()
	out, err := queryAll(ctx, c.db, func(r scanner) (NodeLease, error) {
		var l NodeLease
		var err error
		l.Lease, err = scanLease(&pathScanner{r, &l.Path})
		l.Held = l.ExpiresAt.After(now)
		return l, err
	}, `SELECT l.stream_id, l.node, l.epoch, l.expires_at, s.path
		FROM stream_leases l JOIN streams s ON s.id = l.stream_id
		WHERE l.node = ? AND l.stream_id > ? ORDER BY l.stream_id LIMIT ?`, node, after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: leases of node %q: %w", node, err)
	}
	return out, nil
}

// pathScanner scans a lease's columns with its stream's path after them.
type pathScanner struct {
	r    scanner
	path *string
}

func (p *pathScanner) Scan(dest ...any) error { return p.r.Scan(append(dest, p.path)...) }
