package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/streamtier/durable-streams/catalog"
)

// Modes of a ClusterStatus.
const (
	ModeSingle  = "single"  // one node on its own catalog: no membership, no leases
	ModeCluster = "cluster" // nodes sharing a PostgreSQL catalog
)

// DefaultNodeTTL is how long after its last heartbeat a node still counts
// as live when Config.NodeTTL is not set: the cluster's default node and
// lease TTL.
const DefaultNodeTTL = 5 * time.Second

// ClusterStatus is the membership and ownership of a cluster as the
// shared catalog records it, seen from the node that answered.
type ClusterStatus struct {
	Mode string `json:"mode"` // ModeSingle or ModeCluster
	// Node is the id of the node that answered ("" in single mode
	// without one).
	Node string `json:"node,omitempty"`
	// NodeTTLSeconds is how long after its last heartbeat a node counts
	// as live; absent in single mode.
	NodeTTLSeconds float64 `json:"node_ttl_seconds,omitempty"`
	// Time is when the status was taken, by the answering node's clock,
	// which judges liveness and lease expiry.
	Time   time.Time     `json:"time"`
	Nodes  []ClusterNode `json:"nodes"`
	Totals ClusterTotals `json:"totals"`
}

// ClusterNode is one node: registered, or named by a lease after its
// registration was expired.
type ClusterNode struct {
	ID  string `json:"id"`
	URL string `json:"url,omitempty"` // advertise URL; "" when not registered
	// Registered is false for a node that only leases still name: it
	// stopped heartbeating long enough to be removed from membership.
	Registered  bool       `json:"registered"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	HeartbeatAt *time.Time `json:"heartbeat_at,omitempty"`
	// HeartbeatAgeSeconds is Time minus HeartbeatAt; absent when not
	// registered.
	HeartbeatAgeSeconds *float64 `json:"heartbeat_age_seconds,omitempty"`
	// Live is true when the last heartbeat is at most the node TTL old.
	Live bool `json:"live"`
	Self bool `json:"self"` // the node that answered
	// Leases counts the unexpired leases the node holds: the streams it
	// serves now.
	Leases int64 `json:"leases"`
	// Streams counts the streams whose lease names the node, expired ones
	// included: their unsealed data may be only on its disk. In single
	// mode, every stream.
	Streams int64 `json:"streams"`
}

// ClusterTotals sums up a ClusterStatus.
type ClusterTotals struct {
	Nodes     int64 `json:"nodes"`
	LiveNodes int64 `json:"live_nodes"`
	// Streams counts the directory's streams, live or soft-deleted.
	Streams int64 `json:"streams"`
	// Leased counts streams with an unexpired lease.
	Leased int64 `json:"leased"`
	// Expired counts streams whose lease names a node but expired: served
	// by nobody until that node returns or another takes the lease.
	Expired int64 `json:"expired"`
}

// ClusterStatus returns the nodes, their liveness and the leases and
// streams of each.
func (s *Service) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	now := s.cfg.Now()
	st := ClusterStatus{Mode: ModeSingle, Node: s.cfg.Node, Time: now.UTC(), Nodes: []ClusterNode{}}
	tot, err := s.cat.Totals(ctx)
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("admin: cluster status: %w", err)
	}
	st.Totals.Streams = tot.Streams
	if !s.cfg.Cluster {
		// One node serves every stream from its own catalog; it is live
		// since it answers.
		st.Nodes = append(st.Nodes, ClusterNode{ID: s.cfg.Node, Live: true, Self: true, Streams: tot.Streams})
		st.Totals.Nodes, st.Totals.LiveNodes = 1, 1
		return st, nil
	}
	st.Mode, st.NodeTTLSeconds = ModeCluster, s.cfg.NodeTTL.Seconds()
	members, err := s.cat.Nodes(ctx, time.Time{})
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("admin: cluster status: %w", err)
	}
	counts, err := s.cat.LeaseCounts(ctx)
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("admin: cluster status: %w", err)
	}
	// Both lists are in id order: merge them.
	for i, j := 0, 0; i < len(members) || j < len(counts); {
		var n ClusterNode
		if i < len(members) && (j == len(counts) || members[i].ID <= counts[j].Node) {
			n = s.member(members[i], now)
			i++
		} else {
			n = ClusterNode{ID: counts[j].Node}
		}
		if j < len(counts) && counts[j].Node == n.ID {
			n.Leases, n.Streams = counts[j].Held, counts[j].Streams
			j++
		}
		n.Self = n.ID == s.cfg.Node
		st.Nodes = append(st.Nodes, n)
		st.Totals.Nodes++
		if n.Live {
			st.Totals.LiveNodes++
		}
		st.Totals.Leased += n.Leases
		st.Totals.Expired += n.Streams - n.Leases
	}
	return st, nil
}

// member describes a registered node at now.
func (s *Service) member(m catalog.Node, now time.Time) ClusterNode {
	started, beat := m.StartedAt.UTC(), m.HeartbeatAt.UTC()
	age := now.Sub(beat).Seconds()
	return ClusterNode{ID: m.ID, URL: m.AdvertiseURL, Registered: true, StartedAt: &started, HeartbeatAt: &beat,
		HeartbeatAgeSeconds: &age, Live: now.Sub(beat) <= s.cfg.NodeTTL}
}

// LeaseFilter selects the leases of one node.
type LeaseFilter struct {
	Node  string // required
	After string // cursor: LeasePage.Next of the previous page
	Limit int    // page size: default DefaultLimit, at most MaxLimit
}

// NodeLease is one stream's lease.
type NodeLease struct {
	StreamID  int64     `json:"stream_id"`
	Stream    string    `json:"stream"` // its path
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	Held      bool      `json:"held"` // not expired
}

// LeasePage is one page of ClusterLeases, in stream id order.
type LeasePage struct {
	Node   string      `json:"node"`
	Leases []NodeLease `json:"leases"`
	// Next is the cursor of the next page (LeaseFilter.After); empty on
	// the last.
	Next string `json:"next,omitempty"`
}

// ClusterLeases returns one page of the leases naming a node, expired
// ones included: the streams it serves or whose unsealed data it may
// hold. In single mode there are none.
func (s *Service) ClusterLeases(ctx context.Context, f LeaseFilter) (LeasePage, error) {
	if f.Node == "" {
		return LeasePage{}, invalid("empty node id")
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return LeasePage{}, err
	}
	var after int64
	if f.After != "" {
		key, err := decodeCursor(f.After, leaseCursor, 1)
		if err != nil {
			return LeasePage{}, err
		}
		after = key[0]
	}
	page := LeasePage{Node: f.Node, Leases: []NodeLease{}}
	if !s.cfg.Cluster {
		return page, nil
	}
	rows, err := s.cat.NodeLeases(ctx, f.Node, after, limit+1)
	if err != nil {
		return LeasePage{}, fmt.Errorf("admin: cluster leases: %w", err)
	}
	for _, r := range rows {
		page.Leases = append(page.Leases, NodeLease{StreamID: r.StreamID, Stream: r.Path, Epoch: r.Epoch,
			ExpiresAt: r.ExpiresAt.UTC(), Held: r.Held})
	}
	if len(page.Leases) > limit {
		page.Leases = page.Leases[:limit]
		page.Next = encodeCursor(leaseCursor, page.Leases[limit-1].StreamID)
	}
	return page, nil
}
