package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/cluster"
	"github.com/streamtier/durable-streams/metrics"
	"github.com/streamtier/durable-streams/sequencer"
)

// Cluster configures cluster mode: the stream directory, segment index and
// GC queue live in a PostgreSQL database that several nodes share, and
// each node serves the streams whose leases it holds (package cluster,
// docs/cluster.md).
type Cluster struct {
	// DSN is the PostgreSQL connection string (postgres://...); empty
	// means the embedded SQLite catalog.
	DSN string
	// NodeID names this node to the cluster; required with DSN.
	NodeID string
	// AdvertiseURL is the base URL at which the other nodes reach this
	// one; required with DSN, http or https.
	AdvertiseURL string
	// Heartbeat is how often the node heartbeats and renews its leases
	// (default cluster.DefaultHeartbeat, 1 s).
	Heartbeat time.Duration
	// TTL is how long a node that stopped heartbeating counts as live, and
	// how long its leases last after their last renewal (default
	// cluster.DefaultTTL, 5 s). A node stops acknowledging writes a fifth
	// of it before its leases could expire.
	TTL time.Duration
}

// nodeLabel is the node id every metric carries: only in cluster mode.
func (c Cluster) nodeLabel() string {
	if c.DSN == "" {
		return ""
	}
	return c.NodeID
}

func (c Cluster) validate() error {
	if c.DSN == "" {
		return nil
	}
	if c.NodeID == "" {
		return errors.New("cluster mode needs a node id")
	}
	u, err := url.Parse(c.AdvertiseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cluster mode needs an http(s) advertise URL, got %q", c.AdvertiseURL)
	}
	return nil
}

// openCatalog opens the catalog of cfg: the SQLite file in the data
// directory or, in cluster mode, the shared PostgreSQL database.
func openCatalog(ctx context.Context, cfg Config) (*catalog.Catalog, error) {
	if cfg.Cluster.DSN == "" {
		return catalog.Open(ctx, filepath.Join(cfg.DataDir, "catalog.db"))
	}
	if err := cfg.Cluster.validate(); err != nil {
		return nil, err
	}
	cat, err := catalog.OpenPostgres(ctx, cfg.Cluster.DSN)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("cluster catalog on PostgreSQL", "node_id", cfg.Cluster.NodeID, "advertise_url", cfg.Cluster.AdvertiseURL)
	return cat, nil
}

// joinCluster registers this node in cluster mode and returns its
// membership and leases; nil for a single node.
func joinCluster(ctx context.Context, cfg Config, cat *catalog.Catalog) (*cluster.Cluster, error) {
	if cfg.Cluster.DSN == "" {
		return nil, nil
	}
	return cluster.New(ctx, cluster.Config{Catalog: cat, NodeID: cfg.Cluster.NodeID, AdvertiseURL: cfg.Cluster.AdvertiseURL,
		Heartbeat: cfg.Cluster.Heartbeat, TTL: cfg.Cluster.TTL, Logger: cfg.Logger})
}

// fence is the registry's view of cl: nil (no fence) for a single node.
func fence(cl *cluster.Cluster) sequencer.Fence {
	if cl == nil {
		return nil
	}
	return cl
}

// clusterProbe is the readiness check of cl: none for a single node.
func clusterProbe(cl *cluster.Cluster) func(context.Context) error {
	if cl == nil {
		return nil
	}
	return cl.Writable
}

// ClusterRouter adapts a node's [cluster.Cluster] to the per-request
// routing of the HTTP layer (api.Router in cluster mode): Route returns
// nil when this node serves path, or the base URL of the owner to forward
// the request to. An error wrapping [api.ErrUnavailable] (the owner is
// gone with the stream's unsealed data, or the catalog cannot be reached
// to find it) means answer 503 with Retry-After.
type ClusterRouter struct {
	Cluster *cluster.Cluster
}

// routeTimeout bounds the catalog lookups of one request's routing.
const routeTimeout = 2 * time.Second

// clusterRouter is the router server.New builds in cluster mode before it
// has joined the cluster: the rate limiter needs its IsPeer first. It is
// bound once, before any request is served.
type clusterRouter struct {
	cl atomic.Pointer[cluster.Cluster]
}

func (r *clusterRouter) bind(cl *cluster.Cluster) { r.cl.Store(cl) }

// Route implements api.Router.
func (r *clusterRouter) Route(ctx context.Context, path string) (*url.URL, error) {
	cl := r.cl.Load()
	if cl == nil {
		return nil, fmt.Errorf("server: not joined to the cluster yet: %w", api.ErrUnavailable)
	}
	// A lookup that needs the catalog is bounded: a node cut off from
	// it answers 503 soon rather than hold the request.
	ctx, cancel := context.WithTimeout(ctx, routeTimeout)
	defer cancel()
	return ClusterRouter{Cluster: cl}.Route(ctx, path)
}

// IsPeer implements api.PeerRouter: addr is the host of a live node's
// advertise URL. The nodes are few, so a scan is cheap.
func (r *clusterRouter) IsPeer(addr netip.Addr) bool {
	cl := r.cl.Load()
	if cl == nil {
		return false
	}
	addr = addr.Unmap()
	for _, n := range cl.LiveNodes() {
		u, err := url.Parse(n.AdvertiseURL)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// Route says where the stream at path (the catalog's path, without the
// URL prefix) is served.
func (r ClusterRouter) Route(ctx context.Context, path string) (*url.URL, error) {
	o, err := r.Cluster.OwnerOf(ctx, path)
	if errors.Is(err, cluster.ErrUnavailable) || catalog.Unavailable(err) {
		// The owner is gone, or this node cannot reach the catalog to
		// find it (a lookup timing out included): retryable.
		return nil, fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	if err != nil {
		return nil, err
	}
	if o.Self {
		return nil, nil
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("server: node %q advertises a bad URL %q: %w", o.NodeID, o.URL, err)
	}
	return u, nil
}

// clusterStats is the metrics source of cl: none for a single node.
func clusterStats(cl *cluster.Cluster) func() metrics.ClusterStats {
	if cl == nil {
		return nil
	}
	return func() metrics.ClusterStats {
		return metrics.ClusterStats{LiveNodes: int64(len(cl.LiveNodes())), LeasesHeld: int64(cl.HeldLeases()),
			LeaseRenewalFailures: cl.RenewalFailures()}
	}
}

// journalConfig is cfg.Journal with, in cluster mode, the node id that
// keys this node's journal positions in the shared catalog.
func journalConfig(cfg Config) sequencer.JournalConfig {
	j := cfg.Journal
	if cfg.Cluster.DSN != "" && j.Node == "" {
		j.Node = cfg.Cluster.NodeID
	}
	return j
}

// adoptLocal gives cl the leases of the streams whose data is on this
// node (reg.LocalStreams: hot logs in the data directory and streams so
// far only in the journal) and that have none: those of a single node
// whose PostgreSQL catalog now serves a cluster (cluster.Cluster.Adopt).
// It runs once the registry has recovered, before the node serves.
func adoptLocal(ctx context.Context, cl *cluster.Cluster, reg *sequencer.Registry) error {
	if cl == nil {
		return nil
	}
	ids, err := reg.LocalStreams()
	if err != nil {
		return err
	}
	_, err = cl.Adopt(ctx, ids)
	return err
}
