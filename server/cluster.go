package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/streamtier/durable-streams/catalog"
)

// Cluster configures cluster mode: the stream directory, segment index and
// GC queue live in a PostgreSQL database instead of the data directory.
// For now one node serves from a database (a second one refuses to start);
// leases, routing and handoff between nodes are not built yet (see
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
// directory or, in cluster mode, the PostgreSQL database, claimed for this
// node alone.
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
	if err := cat.ClaimSingleNode(ctx); err != nil {
		cat.Close()
		return nil, err
	}
	cfg.Logger.Info("cluster catalog on PostgreSQL", "node_id", cfg.Cluster.NodeID, "advertise_url", cfg.Cluster.AdvertiseURL)
	return cat, nil
}
