// Package cluster is cluster mode's membership and stream ownership: a
// node registers in the shared catalog and heartbeats, knows which nodes
// are live, places streams that have no owner by rendezvous hashing, and
// owns each stream it serves through the stream's lease, renewed for all
// of its streams with one statement per interval. A [Cluster] is the
// registry's [sequencer.Fence]: it answers, without I/O, whether this node
// may still acknowledge writes of a stream (docs/cluster.md).
//
// Fencing, as numbered invariants:
//
//  1. A node writes a stream only while it holds the stream's lease: the
//     registry calls Acquire (catalog.ClaimLease) before an actor starts.
//  2. A node acknowledges a commit only before its fence deadline: the
//     send time of its last successful renewal (or of the claim), on its
//     own monotonic clock, plus the TTL minus the safety margin. The
//     catalog's expiry is the renewal's commit time plus the TTL, later
//     than the send time, so the node stops at least a margin before the
//     lease can expire by any clock that agrees with its own to within
//     the margin.
//  3. A lease is never taken from another node, even expired
//     (catalog.ClaimLease): the stream's unsealed data is only on its
//     holder's disk. It passes on only when its holder releases it clean
//     (every byte in the cold tier). Until then other nodes answer
//     [ErrUnavailable] (503) for it if its holder is dead.
//  4. A renewal that does not return one of this node's leases means the
//     lease expired or passed on: the node forgets it, Check fails with
//     [sequencer.ErrNotOwner] and the actor closes; serving the stream
//     again takes a new claim and a new epoch.
//  5. The segment index refuses writes for a stream unless they carry the
//     epoch the catalog holds for this node (catalog.GuardSegmentWrites),
//     so an uploader still running on a fenced node changes nothing.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/sequencer"
)

// Defaults of [Config].
const (
	DefaultHeartbeat = time.Second
	DefaultTTL       = 5 * time.Second
)

// Errors of the ownership methods, wrapped; test with [errors.Is].
var (
	// ErrUnavailable means the stream's owner is gone and its unsealed
	// data is only on that node (node loss): callers answer 503 with
	// Retry-After until it returns or is drained.
	ErrUnavailable = errors.New("cluster: the stream's owner is unavailable and its unsealed data is only there")
	// ErrFenced means this node could not renew its leases in time: it
	// may not acknowledge writes until a renewal succeeds again.
	ErrFenced = errors.New("cluster: leases not renewed in time; writes refused")
)

// Owner says who serves a stream now.
type Owner struct {
	NodeID string
	URL    string // the owner's advertise URL
	Self   bool   // this node
}

// Config configures a [Cluster].
type Config struct {
	Catalog      *catalog.Catalog
	NodeID       string
	AdvertiseURL string
	// Heartbeat is how often the node heartbeats and renews its leases
	// (default DefaultHeartbeat).
	Heartbeat time.Duration
	// TTL is how long after its last heartbeat a node counts as dead, and
	// how long a lease lasts after its last renewal (default DefaultTTL).
	// It must exceed Margin plus two heartbeats.
	TTL time.Duration
	// Margin is how long before a lease's expiry this node stops
	// acknowledging writes (default TTL/5); it covers the disagreement
	// between nodes' clocks and the time from a commit's fence check to
	// its answer.
	Margin time.Duration
	Logger *slog.Logger
	// Now is the clock; its readings must carry Go's monotonic clock, as
	// time.Now's do (the default). Tests set a fake one.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Catalog == nil {
		return errors.New("cluster: Config.Catalog is required")
	}
	if c.NodeID == "" || c.AdvertiseURL == "" {
		return errors.New("cluster: a node id and an advertise URL are required")
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Margin <= 0 {
		c.Margin = c.TTL / 5
	}
	if c.TTL <= c.Margin+2*c.Heartbeat {
		return fmt.Errorf("cluster: node TTL %v must exceed the safety margin %v plus two heartbeats of %v", c.TTL, c.Margin, c.Heartbeat)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// store is the part of the catalog a Cluster uses; tests wrap it to make
// the catalog stop answering.
type store interface {
	RegisterNode(ctx context.Context, id, url string) error
	DeregisterNode(ctx context.Context, id string) error
	Heartbeat(ctx context.Context, id string) error
	Nodes(ctx context.Context, since time.Time) ([]catalog.Node, error)
	ClaimLease(ctx context.Context, stream int64, node string, ttl time.Duration) (catalog.Lease, error)
	RenewLeases(ctx context.Context, node string, ttl time.Duration) ([]catalog.Lease, error)
	ReleaseLease(ctx context.Context, l catalog.Lease) error
	GetLease(ctx context.Context, stream int64) (catalog.Lease, error)
	Get(ctx context.Context, path string) (catalog.Stream, error)
}

// Cluster is this node's membership and the leases it holds. It
// implements [sequencer.Fence].
type Cluster struct {
	cfg Config
	st  store
	lg  *slog.Logger

	base     time.Time    // origin of the monotonic readings below
	deadline atomic.Int64 // ns after base: writes allowed before (invariant 2)
	leases   leaseTable

	live atomic.Pointer[[]catalog.Node] // live nodes in id order, self included

	owners ownerCache
	// refused remembers, for a heartbeat interval, the streams whose
	// leases another node holds: requests and sweeps that reach this
	// node for them fail without a catalog write each.
	refusedMu sync.Mutex
	refused   map[int64]refusal

	fenced  bool // the loop saw the deadline pass; loop goroutine only
	failing bool // the last renewal failed; loop goroutine only
	// renewFailures counts failed renewal rounds (metrics).
	renewFailures atomic.Uint64
	// leaving: Leave was called; the node renews its leases but no longer
	// heartbeats, and places no stream on itself.
	leaving atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// refusal is a claim another node's lease refused.
type refusal struct {
	until int64 // ns after base
	err   error
}

// maxRefusals bounds the refused map; it is emptied when full.
const maxRefusals = 1 << 16

// held is a lease this node holds.
type held struct {
	epoch int64
	// claimed is when the claim returned (ns after base): a renewal sent
	// after it must return the lease.
	claimed int64
	// deadline is the claim's own fence deadline (ns after base), for
	// the time before the next renewal.
	deadline int64
}

var _ sequencer.Fence = (*Cluster)(nil)

// New registers this node, renews whatever leases it still holds from an
// earlier run (same node id), and starts heartbeating; Close stops it.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := newCluster(cfg, cfg.Catalog)
	if err := c.st.RegisterNode(ctx, cfg.NodeID, cfg.AdvertiseURL); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := c.tick(ctx); err != nil {
		return nil, fmt.Errorf("cluster: first renewal: %w", err)
	}
	cfg.Catalog.GuardSegmentWrites(c.holder)
	c.lg.Info("cluster: node registered", "node_id", cfg.NodeID, "advertise_url", cfg.AdvertiseURL,
		"heartbeat", cfg.Heartbeat.String(), "ttl", cfg.TTL.String(), "margin", cfg.Margin.String(), "live_nodes", len(c.LiveNodes()))
	go c.loop()
	return c, nil
}

// newCluster builds a Cluster on st without registering or starting it.
func newCluster(cfg Config, st store) *Cluster {
	c := &Cluster{cfg: cfg, st: st, lg: cfg.Logger, base: cfg.Now(), refused: map[int64]refusal{},
		stop: make(chan struct{}), done: make(chan struct{})}
	c.owners.init(cfg.Heartbeat)
	c.live.Store(&[]catalog.Node{{ID: cfg.NodeID, AdvertiseURL: cfg.AdvertiseURL}})
	return c
}

// Leave takes this node out of the members before a drain: it stops
// heartbeating and deregisters, so the other nodes stop placing streams on
// it and stop forwarding to it within a heartbeat, while it keeps renewing
// the leases it still holds (they pass on one by one as the drain hands
// its streams off). A node that starts again registers anew.
func (c *Cluster) Leave(ctx context.Context) error {
	c.leaving.Store(true)
	if err := c.st.DeregisterNode(ctx, c.cfg.NodeID); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	c.lg.Info("cluster: node left the members; draining", "node_id", c.cfg.NodeID)
	return c.refreshNodes(ctx)
}

// Close stops heartbeating. It releases no lease: the unsealed data of
// this node's streams stays on its disk, so they stay its own until it
// returns (or a drain hands them off first). Its leases expire in TTL.
func (c *Cluster) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// NodeID returns this node's id.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// LiveNodes returns the nodes whose last heartbeat is within the TTL, as
// of the last successful heartbeat, in id order; this node is always
// among them.
func (c *Cluster) LiveNodes() []catalog.Node { return *c.live.Load() }

// RenewalFailures returns how many heartbeat rounds failed to renew this
// node's leases since it started.
func (c *Cluster) RenewalFailures() uint64 { return c.renewFailures.Load() }

// HeldLeases returns how many stream leases this node holds and uses.
func (c *Cluster) HeldLeases() int {
	return c.leases.len()
}

// Writable is nil while this node may acknowledge writes of the streams
// it holds, and wraps [ErrFenced] once its last successful renewal is too
// old: the node's readiness in cluster mode.
func (c *Cluster) Writable(context.Context) error {
	if c.mono() < c.deadline.Load() {
		return nil
	}
	return fmt.Errorf("cluster: node %q: %w", c.cfg.NodeID, ErrFenced)
}

// mono returns the monotonic time since base in ns.
func (c *Cluster) mono() int64 { return int64(c.cfg.Now().Sub(c.base)) }

// fenceDeadline is the deadline of a renewal or claim sent at sent.
func (c *Cluster) fenceDeadline(sent int64) int64 {
	return sent + int64(c.cfg.TTL-c.cfg.Margin)
}

// loop heartbeats and renews every Heartbeat until Close.
func (c *Cluster) loop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		// A renewal that takes longer than half the fence is of little
		// use; give up and try again on a fresh connection rather than
		// wait behind a dead one.
		ctx, cancel := context.WithTimeout(context.Background(), (c.cfg.TTL-c.cfg.Margin)/2)
		err := c.tick(ctx)
		cancel()
		if err != nil {
			c.renewFailures.Add(1)
		}
		c.logState(err)
	}
}

// logState logs the transitions an operator (and the cluster tests)
// look for: renewals failing, writes fenced, renewals working again.
func (c *Cluster) logState(err error) {
	now := c.mono()
	switch {
	case err != nil && !c.failing:
		c.failing = true
		c.lg.Warn("cluster: lease renewal failed", "node_id", c.cfg.NodeID, "err", err)
	case err == nil && c.failing:
		c.failing = false
		c.lg.Info("cluster: lease renewal works again", "node_id", c.cfg.NodeID)
	}
	if over := now >= c.deadline.Load(); over != c.fenced {
		c.fenced = over
		if over {
			c.lg.Error("cluster: fenced: leases not renewed in time, writes refused", "node_id", c.cfg.NodeID)
		} else {
			c.lg.Info("cluster: unfenced: writes resume", "node_id", c.cfg.NodeID, "leases", c.HeldLeases())
		}
	}
}

// tick renews this node's leases, heartbeats and refreshes the live
// nodes, in that order of importance.
func (c *Cluster) tick(ctx context.Context) error {
	sent := c.mono()
	renewed, err := c.st.RenewLeases(ctx, c.cfg.NodeID, c.cfg.TTL)
	if err != nil {
		return err
	}
	c.applyRenewal(sent, renewed)
	if c.leaving.Load() {
		return c.refreshNodes(ctx)
	}
	if err := c.st.Heartbeat(ctx, c.cfg.NodeID); errors.Is(err, catalog.ErrUnknownNode) {
		err = c.st.RegisterNode(ctx, c.cfg.NodeID, c.cfg.AdvertiseURL)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return c.refreshNodes(ctx)
}

// applyRenewal moves the fence deadline after a renewal sent at sent that
// returned renewed, and forgets the leases it did not return (invariant
// 4). Leases of this node's that it holds no entry for (not used since a
// restart) are renewed too and left alone: their data is here.
func (c *Cluster) applyRenewal(sent int64, renewed []catalog.Lease) {
	got := make(map[int64]int64, len(renewed))
	for _, l := range renewed {
		got[l.StreamID] = l.Epoch
	}
	var lost []int64
	c.leases.deleteIf(func(id int64, h *held) bool {
		epoch, ok := got[id]
		if (ok && epoch != h.epoch) || (!ok && h.claimed < sent) {
			lost = append(lost, id)
			return true
		}
		return false
	})
	if len(lost) > 0 {
		// Deleted streams' leases go too, so this is routine in small
		// numbers.
		c.lg.Info("cluster: leases lost (expired, passed on, or their streams deleted)", "node_id", c.cfg.NodeID,
			"count", len(lost), "first_stream_ids", lost[:min(len(lost), 10)])
	}
	if d := c.fenceDeadline(sent); d > c.deadline.Load() {
		c.deadline.Store(d)
	}
}

// refreshNodes reloads the live nodes.
func (c *Cluster) refreshNodes(ctx context.Context) error {
	nodes, err := c.st.Nodes(ctx, c.cfg.Now().Add(-c.cfg.TTL))
	if err != nil {
		return err
	}
	self := false
	for _, n := range nodes {
		self = self || n.ID == c.cfg.NodeID
	}
	switch {
	case c.leaving.Load() && len(nodes) > 0:
		nodes = slices.DeleteFunc(nodes, func(n catalog.Node) bool { return n.ID == c.cfg.NodeID })
		if len(nodes) == 0 { // alone: nowhere else to place streams
			nodes = append(nodes, catalog.Node{ID: c.cfg.NodeID, AdvertiseURL: c.cfg.AdvertiseURL})
		}
	case !self:
		nodes = append(nodes, catalog.Node{ID: c.cfg.NodeID, AdvertiseURL: c.cfg.AdvertiseURL})
	}
	c.live.Store(&nodes)
	return nil
}

// Acquire takes or confirms this node's lease on stream id before an
// actor serves it (invariants 1 and 3). A lease held and renewed in time
// is confirmed without I/O; otherwise it is claimed in the catalog. It
// fails, wrapping [sequencer.ErrNotOwner], when another node holds the
// lease, and with [ErrUnavailable] too when that node is not live; such a
// refusal is remembered for a heartbeat interval.
func (c *Cluster) Acquire(ctx context.Context, id int64) error {
	if c.Check(id) == nil {
		return nil
	}
	sent := c.mono()
	c.refusedMu.Lock()
	r, ok := c.refused[id]
	c.refusedMu.Unlock()
	if ok && sent < r.until {
		return r.err
	}
	l, err := c.st.ClaimLease(ctx, id, c.cfg.NodeID, c.cfg.TTL)
	if errors.Is(err, catalog.ErrLeaseHeld) {
		if !c.isLive(l.Node) {
			err = fmt.Errorf("cluster: stream %d: holder %q is not live: %w (%w)", id, l.Node, ErrUnavailable, sequencer.ErrNotOwner)
		} else {
			err = fmt.Errorf("cluster: stream %d is held by %q at epoch %d: %w", id, l.Node, l.Epoch, sequencer.ErrNotOwner)
		}
		c.refusedMu.Lock()
		if len(c.refused) >= maxRefusals {
			clear(c.refused)
		}
		c.refused[id] = refusal{until: sent + int64(c.cfg.Heartbeat), err: err}
		c.refusedMu.Unlock()
		return err
	}
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.leases.store(id, &held{epoch: l.Epoch, claimed: c.mono(), deadline: c.fenceDeadline(sent)})
	return nil
}

// Adopt takes the leases of those of ids, streams whose hot logs are on
// this node, that have no lease row at all (catalog.AdoptLeases), and
// returns how many. Only a single node's catalog upgraded to cluster mode
// has such streams; their unsealed data is on that node's disk, so it
// adopts them at start, after its hot logs are recovered and before it
// serves, and no other node places them. The adopted leases are renewed
// with the node's others, and claimed again by its first request for each.
func (c *Cluster) Adopt(ctx context.Context, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	got, err := c.cfg.Catalog.AdoptLeases(ctx, c.cfg.NodeID, ids, c.cfg.TTL)
	if err != nil {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	if len(got) > 0 {
		c.lg.Info("cluster: adopted the leases of streams from before cluster mode whose hot logs are here",
			"node_id", c.cfg.NodeID, "count", len(got), "first_stream_ids", got[:min(len(got), 10)])
	}
	return len(got), nil
}

// Check is nil while this node may acknowledge writes of stream id: it
// holds the lease (invariant 4) and is within its fence deadline
// (invariant 2). It does no I/O: a map read and a clock reading.
func (c *Cluster) Check(id int64) error {
	h, ok := c.leases.load(id)
	if !ok {
		return fmt.Errorf("cluster: stream %d: no lease held here: %w", id, sequencer.ErrNotOwner)
	}
	now := c.mono()
	if now < c.deadline.Load() || now < h.deadline {
		return nil
	}
	return fmt.Errorf("cluster: stream %d: %w", id, ErrFenced)
}

// Release gives up this node's lease on stream id. Clean (every byte in
// the cold tier, handoff state saved) frees it in the catalog for any
// node to claim with the next epoch. Not clean, the unsealed data is
// still only here: the lease stays this node's in the catalog, renewed
// with the others, and only this process stops using it, so no other
// node may take the stream.
func (c *Cluster) Release(ctx context.Context, id int64, clean bool) error {
	h, ok := c.leases.load(id)
	if !ok {
		return fmt.Errorf("cluster: release stream %d: no lease held here: %w", id, sequencer.ErrNotOwner)
	}
	if clean {
		err := c.st.ReleaseLease(ctx, catalog.Lease{StreamID: id, Node: c.cfg.NodeID, Epoch: h.epoch})
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	c.leases.compareAndDelete(id, h)
	return nil
}

// holder is the catalog's segment write guard (invariant 5).
func (c *Cluster) holder(id int64) (catalog.Holder, bool) {
	h, ok := c.leases.load(id)
	if !ok {
		return catalog.Holder{}, false
	}
	return catalog.Holder{Node: c.cfg.NodeID, Epoch: h.epoch}, true
}

// isLive reports whether node is among the live nodes.
func (c *Cluster) isLive(node string) bool {
	_, ok := c.liveNode(node)
	return ok
}

func (c *Cluster) liveNode(id string) (catalog.Node, bool) {
	for _, n := range c.LiveNodes() {
		if n.ID == id {
			return n, true
		}
	}
	return catalog.Node{}, false
}
