package catalog

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Cluster membership and stream ownership: the nodes that serve from a
// shared catalog, and one lease per stream naming the node that owns it.
// Package cluster builds cluster mode's ownership and fencing on them
// (docs/cluster.md).
//
// A lease carries an epoch that only grows. It increases by one each time
// the lease passes to a holder (after a release or an expiry), never when
// the holder renews, so every write a node makes for a stream can carry the
// epoch it holds and be refused once a newer epoch exists.
//
// Expiry is judged by c.now of the node that compares: the holder must
// stop acting on a lease before ExpiresAt by its own clock, with a margin
// larger than the clocks' disagreement.

// Errors of the lease methods, wrapped; test with [errors.Is].
var (
	// ErrLeaseHeld means another node holds the stream's lease and it has
	// not expired.
	ErrLeaseHeld = errors.New("catalog: lease held by another node")
	// ErrLeaseLost means the lease is no longer the caller's: it expired,
	// was released, or passed to another holder (a newer epoch).
	ErrLeaseLost = errors.New("catalog: lease lost")
	// ErrUnknownNode means the node is not registered (any more).
	ErrUnknownNode = errors.New("catalog: node not registered")
)

// Node is a registered member of the cluster.
type Node struct {
	ID           string
	AdvertiseURL string
	StartedAt    time.Time // when it last registered
	HeartbeatAt  time.Time
}

// Lease is a stream's ownership record.
type Lease struct {
	StreamID  int64
	Node      string // "" while free
	Epoch     int64  // 0 until first acquired
	ExpiresAt time.Time
}

// RegisterNode records node id as started now, reachable at url,
// replacing an earlier registration of the same id.
func (c *Catalog) RegisterNode(ctx context.Context, id, url string) error {
	if id == "" {
		return errors.New("catalog: register node: empty id")
	}
	now := c.now().UnixMilli()
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, advertise_url, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3)
			ON CONFLICT (id) DO UPDATE SET advertise_url = excluded.advertise_url,
				started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`, id, url, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: register node %q: %w", id, err)
	}
	return nil
}

// Heartbeat records that node id is alive now. It fails with
// [ErrUnknownNode] if the node is not registered, for instance because
// [Catalog.ExpireNodes] removed it: the node must then register again and
// treat every lease it held as lost.
func (c *Catalog) Heartbeat(ctx context.Context, id string) error {
	now := c.now().UnixMilli()
	err := c.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, ErrUnknownNode, "UPDATE nodes SET heartbeat_at = ? WHERE id = ?", now, id)
	})
	if err != nil {
		return fmt.Errorf("catalog: heartbeat of node %q: %w", id, err)
	}
	return nil
}

// Nodes returns the registered nodes whose last heartbeat is at or after
// since (all of them for the zero time), in id order.
func (c *Catalog) Nodes(ctx context.Context, since time.Time) ([]Node, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT id, advertise_url, started_at, heartbeat_at FROM nodes
		WHERE heartbeat_at >= ? ORDER BY id`, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("catalog: nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		var started, beat int64
		if err := rows.Scan(&n.ID, &n.AdvertiseURL, &started, &beat); err != nil {
			return nil, fmt.Errorf("catalog: nodes: %w", err)
		}
		n.StartedAt, n.HeartbeatAt = time.UnixMilli(started), time.UnixMilli(beat)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: nodes: %w", err)
	}
	return out, nil
}

// DeregisterNode removes node id from the members (a node leaving the
// cluster on purpose, before its drain): the others stop placing streams
// on it at their next refresh. Its leases are untouched. Removing a node
// that is not registered is no error.
func (c *Catalog) DeregisterNode(ctx context.Context, id string) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM nodes WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: deregister node %q: %w", id, err)
	}
	return nil
}

// ExpireNodes removes the nodes whose last heartbeat is before before and
// returns their ids in id order. Their leases are not touched: each
// expires at its own time.
func (c *Catalog) ExpireNodes(ctx context.Context, before time.Time) ([]string, error) {
	var ids []string
	err := c.write(ctx, func(tx *sql.Tx) error {
		ids = nil
		rows, err := tx.QueryContext(ctx, "DELETE FROM nodes WHERE heartbeat_at < ? RETURNING id", before.UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: expire nodes: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

const leaseColumns = "stream_id, node, epoch, expires_at"

func scanLease(r scanner) (Lease, error) {
	var l Lease
	var expires int64
	if err := r.Scan(&l.StreamID, &l.Node, &l.Epoch, &expires); err != nil {
		return Lease{}, err
	}
	l.ExpiresAt = time.UnixMilli(expires)
	return l, nil
}

// AcquireLease makes node the holder of stream's lease until now + ttl.
// A free or expired lease passes to node with the next epoch; a lease
// node already holds is renewed with its epoch unchanged. It fails with
// [ErrLeaseHeld], returning the holder's lease, while another node holds
// an unexpired lease.
func (c *Catalog) AcquireLease(ctx context.Context, stream int64, node string, ttl time.Duration) (Lease, error) {
	return c.acquireLease(ctx, stream, node, ttl, true)
}

// ClaimLease is [Catalog.AcquireLease] for a stream whose unsealed data
// lives only on its holder's disk: it takes a lease that is free (never
// acquired, or released) or node's own, expired or not, but never one
// another node holds, even expired. It fails with [ErrLeaseHeld],
// returning that lease, otherwise. An expired lease of node's own passes
// back to it with the next epoch, as after any expiry.
func (c *Catalog) ClaimLease(ctx context.Context, stream int64, node string, ttl time.Duration) (Lease, error) {
	return c.acquireLease(ctx, stream, node, ttl, false)
}

// acquireLease is AcquireLease, or with takeExpired false ClaimLease.
func (c *Catalog) acquireLease(ctx context.Context, stream int64, node string, ttl time.Duration, takeExpired bool) (Lease, error) {
	if node == "" || ttl <= 0 {
		return Lease{}, fmt.Errorf("catalog: acquire lease of %d: need a node and a positive ttl", stream)
	}
	var l Lease
	err := c.write(ctx, func(tx *sql.Tx) error {
		now := c.now()
		// The placeholder row gives concurrent first acquisitions one row
		// to lock and decide on.
		if _, err := tx.ExecContext(ctx, `INSERT INTO stream_leases (stream_id, node, epoch, expires_at)
			VALUES (?, '', 0, 0) ON CONFLICT (stream_id) DO NOTHING`, stream); err != nil {
			return err
		}
		cur, err := scanLease(tx.QueryRowContext(ctx,
			"SELECT "+leaseColumns+" FROM stream_leases WHERE stream_id = ?"+c.forUpdate(), stream))
		if err != nil {
			return err
		}
		live := cur.Node != "" && cur.ExpiresAt.After(now)
		if cur.Node != "" && cur.Node != node && (live || !takeExpired) {
			l = cur
			return ErrLeaseHeld
		}
		l = Lease{StreamID: stream, Node: node, Epoch: cur.Epoch, ExpiresAt: time.UnixMilli(now.Add(ttl).UnixMilli())}
		if !live {
			l.Epoch++
		}
		_, err = tx.ExecContext(ctx, "UPDATE stream_leases SET node = ?, epoch = ?, expires_at = ? WHERE stream_id = ?",
			l.Node, l.Epoch, l.ExpiresAt.UnixMilli(), stream)
		return err
	})
	if err != nil {
		return l, fmt.Errorf("catalog: acquire lease of %d for %q: %w", stream, node, err)
	}
	return l, nil
}

// AdoptLeases makes node the holder, at epoch 1 until now + ttl, of those
// of streams that have no lease row at all, and returns their ids in
// order. Streams created in cluster mode always have one (their lease is
// claimed before their first byte is written); streams without one come
// from a single node whose catalog was upgraded to cluster mode, and
// their unsealed data is on that node's disk: it adopts them at start,
// before any other node can place them. A stream with a lease row,
// whoever holds it, and an id with no stream are left alone.
func (c *Catalog) AdoptLeases(ctx context.Context, node string, streams []int64, ttl time.Duration) ([]int64, error) {
	if node == "" || ttl <= 0 {
		return nil, errors.New("catalog: adopt leases: need a node and a positive ttl")
	}
	var out []int64
	err := c.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		expires := c.now().Add(ttl).UnixMilli()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO stream_leases (stream_id, node, epoch, expires_at)
			SELECT id, ?, 1, ? FROM streams WHERE id = ? ON CONFLICT (stream_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, id := range streams {
			res, err := ins.ExecContext(ctx, node, expires, id)
			if err != nil {
				return fmt.Errorf("stream %d: %w", id, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: adopt leases for %q: %w", node, err)
	}
	slices.Sort(out)
	return out, nil
}

// RenewLeases extends every unexpired lease node holds to now + ttl in one
// statement, whatever their number, and returns them in stream order.
// Leases of node that expired are not renewed (they are lost: the caller
// must stop acting for those streams until it claims them again with a new
// epoch). This is how a node keeps its leases: one round trip per renewal
// interval, not one per stream.
func (c *Catalog) RenewLeases(ctx context.Context, node string, ttl time.Duration) ([]Lease, error) {
	if node == "" || ttl <= 0 {
		return nil, errors.New("catalog: renew leases: need a node and a positive ttl")
	}
	var out []Lease
	err := c.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := c.now()
		rows, err := tx.QueryContext(ctx, "UPDATE stream_leases SET expires_at = ? WHERE node = ? AND expires_at > ? RETURNING "+leaseColumns,
			now.Add(ttl).UnixMilli(), node, now.UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLease(rows)
			if err != nil {
				return err
			}
			out = append(out, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: renew leases of %q: %w", node, err)
	}
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.StreamID, b.StreamID) })
	return out, nil
}

// RenewLease extends l, which the caller holds, to now + ttl and returns
// it. It fails with [ErrLeaseLost] if l has expired, was released, or has
// passed to a newer epoch: the caller must stop acting for the stream.
func (c *Catalog) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	now := c.now()
	expires := now.Add(ttl).UnixMilli()
	err := c.write(ctx, func(tx *sql.Tx) error {
		return c.updateHeld(ctx, tx, l, now, "expires_at = ?", expires)
	})
	if err != nil {
		return Lease{}, fmt.Errorf("catalog: renew lease of %d: %w", l.StreamID, err)
	}
	l.ExpiresAt = time.UnixMilli(expires)
	return l, nil
}

// ReleaseLease frees l, which the caller holds, so that any node may
// acquire it at once with the next epoch. It fails with [ErrLeaseLost] if
// l is no longer the caller's.
func (c *Catalog) ReleaseLease(ctx context.Context, l Lease) error {
	now := c.now()
	err := c.write(ctx, func(tx *sql.Tx) error {
		return c.updateHeld(ctx, tx, l, now, "node = '', expires_at = 0")
	})
	if err != nil {
		return fmt.Errorf("catalog: release lease of %d: %w", l.StreamID, err)
	}
	return nil
}

// updateHeld applies set to l's row if l is still held as given and
// unexpired at now, and fails with ErrLeaseLost otherwise.
func (c *Catalog) updateHeld(ctx context.Context, tx *sql.Tx, l Lease, now time.Time, set string, args ...any) error {
	args = append(args, l.StreamID, l.Node, l.Epoch, now.UnixMilli())
	return execAffecting(ctx, tx, ErrLeaseLost, "UPDATE stream_leases SET "+set+
		" WHERE stream_id = ? AND node = ? AND epoch = ? AND expires_at > ?", args...)
}

// GetLease returns stream's lease, or [ErrNotFound] if it was never
// acquired.
func (c *Catalog) GetLease(ctx context.Context, stream int64) (Lease, error) {
	l, err := scanLease(c.db.QueryRowContext(ctx, "SELECT "+leaseColumns+" FROM stream_leases WHERE stream_id = ?", stream))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Lease{}, fmt.Errorf("catalog: lease of %d: %w", stream, err)
	}
	return l, nil
}

// Holder names the lease under which a node writes a stream's shared
// state; see [Catalog.GuardSegmentWrites].
type Holder struct {
	Node  string
	Epoch int64
}

// GuardSegmentWrites makes every write of a stream's segment index rows
// ([Catalog.RecordSealed], [Catalog.MarkUploaded]) conditional on the lease
// that holder names: the write checks, in its own transaction, that the
// stream's lease is still held by that node at that epoch and unexpired,
// and fails with [ErrLeaseLost] otherwise, changing nothing. holder
// returns false for a stream this node holds no lease of, which refuses
// the write too. A node fenced off a stream (its lease expired or passed
// on) thus cannot change the index its next owner writes, whatever its
// uploader had under way.
//
// It is cluster mode's hook, called once before the catalog is used; nil
// (the default) leaves the writes unconditional, as one node needs.
func (c *Catalog) GuardSegmentWrites(holder func(stream int64) (Holder, bool)) {
	c.holder = holder
}

// checkHolder is the condition of GuardSegmentWrites, run inside the
// write's transaction tx. On PostgreSQL the lease row stays share-locked
// until the write commits, so the lease cannot pass on in between.
func (c *Catalog) checkHolder(ctx context.Context, tx *sql.Tx, stream int64) error {
	if c.holder == nil {
		return nil
	}
	h, ok := c.holder(stream)
	if !ok {
		return ErrLeaseLost
	}
	lock := ""
	if c.pg {
		lock = " FOR SHARE"
	}
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM stream_leases WHERE stream_id = ? AND node = ? AND epoch = ? AND expires_at > ?"+lock,
		stream, h.Node, h.Epoch, c.now().UnixMilli()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrLeaseLost
	}
	return err
}
