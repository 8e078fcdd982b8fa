// Package admin is the operator surface of the cold tier: the SQL admin
// index of segments, queried together with the stream directory, and the
// actions an operator runs against the index and the object store.
//
// The admin index is the catalog's segment index (catalog/segments.go). The
// rotation uploader (package rotation) mirrors every sealed segment into it,
// first in state "sealed" and, once the object is stored and verified, in
// state "uploaded" with the object's size and CRC32C; the collector of
// deleted streams (package reclaim) removes a stream's rows after its
// objects. The streams' own hot
// logs stay authoritative: the index exists so that questions across all
// streams ("which segments are not uploaded yet", "how many bytes does this
// prefix keep in the cold store") are one SQL query instead of opening every
// stream.
//
// A [Service] answers those questions and runs the operator actions:
//
//   - [Service.ListSegments] pages through the index with filters;
//   - [Service.StreamStats] and [Service.Totals] sum it up, together with
//     the size of a stream's hot log;
//   - [Service.Verify] compares the index with the object store (missing,
//     orphaned and corrupt objects);
//   - [Service.ClusterStatus] and [Service.ClusterLeases] show the
//     nodes of a cluster, which are live, and the streams each owns;
//   - [Service.GC] removes what the normal paths left behind: objects that no
//     index row names and no stream owns, the objects and rows of streams
//     that were deleted for real, and stale entries of the catalog's GC queue.
//
// Every action streams the store listing and reads the index in pages, so
// its memory does not grow with the number of streams or objects; the lists
// in its reports are bounded ([Config.MaxReport]) while their counts stay
// exact. The HTTP face is in package api (under /v1/admin/) and the command
// line client is "durable-streams segments".
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/reclaim"
	"github.com/streamtier/durable-streams/sequencer"
)

// States of a row of the admin index, as written by package rotation; the
// type is the one the hot log and the catalog use.
const (
	StateSealed   = segment.Sealed   // sealed in the hot log; upload pending or running
	StateUploaded = segment.Uploaded // object stored and verified; rows trimmed from the hot log
)

// States of the stream a segment belongs to.
const (
	StreamLive        = "live"
	StreamSoftDeleted = "soft_deleted" // deleted, kept while forks reference it
	StreamDeleted     = "deleted"      // deleted for real; awaiting collection
)

// Errors returned (wrapped) by Service methods; test with errors.Is.
var (
	// ErrNotFound means no stream, live or soft-deleted, has the path.
	ErrNotFound = errors.New("admin: stream not found")
	// ErrInvalid means a bad argument: an unknown state filter, a
	// malformed cursor, an empty path.
	ErrInvalid = errors.New("admin: invalid argument")
)

// DefaultMinAge is how old an object without an index row, or an entry of
// the GC queue, must be before [Service.GC] touches it.
const DefaultMinAge = 10 * time.Minute

// Config configures a Service.
type Config struct {
	Catalog *catalog.Catalog // required
	Store   coldstore.Store  // required
	// Registry gives StreamStats the stream's tail and hot-log size, and GC
	// the location of hot files of deleted streams; optional.
	Registry *sequencer.Registry
	Logger   *slog.Logger
	// MinAge protects objects without an index row and fresh GC queue
	// entries from GC, so that it never races an upload or the collector's
	// own collection of a deleted stream (default DefaultMinAge; negative:
	// no protection).
	MinAge time.Duration
	// Collector deletes objects, index rows, hot files and GC queue
	// entries for GC; default: one over Catalog and Store, and the hot logs
	// of Registry.
	Collector *reclaim.Collector
	// Now is the clock that MinAge is measured with (default time.Now).
	Now func() time.Time
	// Cluster says the catalog is shared by the nodes of a cluster
	// (PostgreSQL), whose membership and leases ClusterStatus reports;
	// without it, ClusterStatus describes this one node.
	Cluster bool
	// Node is this node's id (required with Cluster).
	Node string
	// NodeTTL is how long after its last heartbeat a node counts as live
	// (default DefaultNodeTTL); the cluster's own setting belongs here.
	NodeTTL time.Duration
	// MaxReport bounds each list of a Report or GCReport (default 1000);
	// the counts stay exact.
	MaxReport int
}

// Service answers admin queries and runs operator actions. It is safe for
// concurrent use, but two GC runs at once do the same work twice.
type Service struct {
	cfg   Config
	cat   *catalog.Catalog
	store coldstore.Store
	reg   *sequencer.Registry
	col   *reclaim.Collector
	hot   bool // col knows where hot logs are
	lg    *slog.Logger
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Catalog == nil || cfg.Store == nil {
		return nil, errors.New("admin: Catalog and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinAge == 0 {
		cfg.MinAge = DefaultMinAge
	}
	if cfg.MinAge < 0 {
		cfg.MinAge = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cluster && cfg.Node == "" {
		return nil, errors.New("admin: Cluster needs the Node id")
	}
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = DefaultNodeTTL
	}
	if cfg.MaxReport <= 0 {
		cfg.MaxReport = 1000
	}
	s := &Service{cfg: cfg, cat: cfg.Catalog, store: cfg.Store, reg: cfg.Registry, col: cfg.Collector, lg: cfg.Logger}
	s.hot = s.col != nil || s.reg != nil
	if s.col == nil {
		hotPath := func(int64) string { return "" }
		if s.reg != nil {
			hotPath = s.reg.StreamPath
		}
		// GC calls only its synchronous methods, so it starts no worker.
		col, err := reclaim.New(reclaim.Config{Catalog: cfg.Catalog, Store: cfg.Store, HotPath: hotPath, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.col = col
	}
	return s, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// streamState names the state of a stream from its catalog row, if any.
func streamState(exists, softDeleted bool) string {
	switch {
	case !exists:
		return StreamDeleted
	case softDeleted:
		return StreamSoftDeleted
	default:
		return StreamLive
	}
}
