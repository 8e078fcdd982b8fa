// Package server assembles a complete Durable Streams server: catalog,
// per-stream actors and the HTTP API. The durable-streams binary wraps it
// with flags; applications embed it the same way:
//
//	srv, err := server.New(ctx, server.Config{DataDir: "data", Hooks: hooks.Hooks{...}})
//	...
//	defer srv.Close(ctx)
//	mux.Handle("/streams/", http.StripPrefix("/streams", srv.Handler()))
//
// Streams are then at /streams/v1/stream/<path>; Location headers and
// fork sources honor the prefix. Before shutting the HTTP server down,
// call BeginShutdown so that long-polls and SSE responses end at once;
// after it, Close. Config.Hooks lets the application veto appends, observe
// acknowledged ones, and follow stream creation and deletion (see package
// hooks); Config.RegistryStream records creations and deletions in a
// stream that clients can follow. See docs/embedding.md.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/faults"
	"github.com/streamtier/durable-streams/health"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
)

// Config configures a Server. Zero values mean defaults.
type Config struct {
	DataDir         string        // default ./data
	LongPollTimeout time.Duration // default 30s
	SSEMaxDuration  time.Duration // default 60s
	MaxAppendBytes  int64         // default 8 MiB
	MaxReadChunk    int           // default 1 MiB
	CacheMode       cache.Mode
	IdleTimeout     time.Duration // close idle stream actors after this (default 30s)
	MaxOpenStreams  int           // soft bound on open stream actors (default 4096)
	Logger          *slog.Logger

	// ColdStore is where sealed segments go; the zero value is a local
	// directory <DataDir>/cold (the embedded default).
	ColdStore coldstore.Config
	// Store, when set, is used as the cold store instead of opening
	// ColdStore (embedders with their own object store; tests).
	Store coldstore.Store
	// Rotation decides when segments are sealed; zero fields take
	// DefaultRotation's values.
	Rotation sequencer.RotationPolicy
	// CacheBytes bounds the on-disk cache of cold objects (default 1 GiB).
	CacheBytes int64
	// Verify selects how uploads are checked before the hot log is trimmed.
	Verify rotation.VerifyMode
	// Auth configures access control; without credentials every request
	// is allowed. See package auth.
	Auth auth.Config
	// AdminToken is shorthand for Auth.AdminToken, which wins when both are
	// set.
	AdminToken string
	// RateLimit limits requests per client; the zero value does not.
	RateLimit ratelimit.Config
	// EdgeSecret, if set, lets a trusted edge (CDN, reverse proxy) that
	// sends it in X-Edge-Secret pick the cache mode of a request with
	// X-Cache-Mode; see docs/caching.md.
	EdgeSecret string

	// Hooks are the application's callbacks on appends and on stream
	// creation and deletion; see package hooks and docs/embedding.md.
	Hooks hooks.Hooks
	// RegistryStream, if set, is the path of an application/json stream
	// (e.g. "__registry__") to which the server appends a RegistryEvent
	// for every stream created or deleted. It is created on start if
	// missing; clients can read it like any stream but not write to it.
	RegistryStream string
	// Journal configures the commit journal shared by all streams
	// (default: on, in <DataDir>/journal); see docs/journal.md.
	Journal sequencer.JournalConfig
	// Faults, if set, injects test faults into requests and serves POST
	// and DELETE /_test/inject-error to control them. For tests only:
	// leave it nil in production, where that path is then a 404.
	Faults *faults.Injector
}

// DefaultRotation seals a segment at 4 MiB, or after 15 minutes, or on close.
var DefaultRotation = sequencer.RotationPolicy{Enabled: true, SealBytes: 4 << 20, SealAge: 15 * time.Minute}

// Server is a running Durable Streams server.
type Server struct {
	cfg     Config
	catalog *catalog.Catalog
	store   coldstore.Store
	rot     *rotation.Rotator
	reg     *sequencer.Registry
	admin   *admin.Service
	api     *api.API
	lc      *lifecycle
	metrics *metrics.Metrics
}

// New opens the data directory (creating it) and starts the server's
// background work. Close releases everything.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "./data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Lines logged with a request's context carry its id, in every package.
	cfg.Logger = slog.New(requestid.NewHandler(cfg.Logger.Handler()))
	if cfg.Auth.AdminToken == "" {
		cfg.Auth.AdminToken = cfg.AdminToken
	}
	if err := validRegistryPath(cfg.RegistryStream); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	lc := newLifecycle(cfg.Hooks, cfg.RegistryStream, cfg.Logger)
	var onLifecycle func(sequencer.LifecycleEvent)
	if lc.enabled() {
		onLifecycle = lc.enqueue
	}
	authn, err := auth.New(cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	limiter, err := ratelimit.New(cfg.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: create data dir: %w", err)
	}
	cat, err := catalog.Open(ctx, filepath.Join(cfg.DataDir, "catalog.db"))
	if err != nil {
		return nil, fmt.Errorf("server: open catalog: %w", err)
	}
	if cfg.ColdStore.Kind == "" {
		cfg.ColdStore.Kind = "local"
	}
	if cfg.ColdStore.Kind == "local" && cfg.ColdStore.Dir == "" {
		cfg.ColdStore.Dir = filepath.Join(cfg.DataDir, "cold")
	}
	store, err := cfg.Store, error(nil)
	if store == nil {
		store, err = coldstore.Open(ctx, cfg.ColdStore)
	}
	if err != nil {
		cat.Close()
		return nil, fmt.Errorf("server: open cold store: %w", err)
	}
	rot, err := rotation.New(rotation.Config{Store: store, Catalog: cat, Logger: cfg.Logger,
		CacheDir: filepath.Join(cfg.DataDir, "cache"), CacheBytes: cfg.CacheBytes, Verify: cfg.Verify})
	if err != nil {
		cat.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	pol := cfg.Rotation
	pol.Enabled = true
	if pol.SealBytes == 0 && pol.SealMessages == 0 {
		pol.SealBytes = DefaultRotation.SealBytes
	}
	if pol.SealAge == 0 {
		pol.SealAge = DefaultRotation.SealAge
	}
	reg, err := sequencer.NewRegistry(sequencer.Config{
		DataDir:      cfg.DataDir,
		Catalog:      cat,
		Logger:       cfg.Logger,
		IdleTimeout:  cfg.IdleTimeout,
		MaxOpen:      cfg.MaxOpenStreams,
		Rotation:     pol,
		Cold:         rot,
		OnSeal:       rot.OnSeal,
		OnHardDelete: rot.OnHardDelete,
		OnLifecycle:  onLifecycle,
		Journal:      cfg.Journal,
	})
	if err != nil {
		cat.Close()
		return nil, fmt.Errorf("server: start registry: %w", err)
	}
	lc.reg = reg
	if err := rot.Start(ctx, reg); err != nil {
		reg.Close(ctx)
		cat.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	adm, err := admin.New(admin.Config{Catalog: cat, Store: store, Registry: reg, Logger: cfg.Logger})
	if err != nil {
		rot.Close()
		reg.Close(ctx)
		cat.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	lc.start()
	if cfg.RegistryStream != "" {
		if err := ensureRegistryStream(ctx, reg, cfg.RegistryStream); err != nil {
			lc.close()
			rot.Close()
			reg.Close(ctx)
			cat.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	s := &Server{cfg: cfg, catalog: cat, store: store, rot: rot, reg: reg, admin: adm, metrics: metrics.New(), lc: lc}
	s.api = api.New(api.Options{
		Registry:        reg,
		Logger:          cfg.Logger,
		LongPollTimeout: cfg.LongPollTimeout,
		SSEMaxDuration:  cfg.SSEMaxDuration,
		MaxAppendBytes:  cfg.MaxAppendBytes,
		MaxReadChunk:    cfg.MaxReadChunk,
		CacheMode:       cfg.CacheMode,
		EdgeSecret:      cfg.EdgeSecret,
		Health:          s.healthChecks(),
		Metrics:         s.metrics,
		Admin:           adm,
		Auth:            authn,
		RateLimit:       limiter,
		Hooks:           apiHooks(cfg.Hooks, cfg.RegistryStream),
		Catalog:         cat,
		Faults:          cfg.Faults,
	})
	if err := s.metrics.Watch(metrics.Sources{
		Streams:  reg,
		Rotation: rot,
		Reads: func() metrics.ReadStats {
			st := s.api.ReadStats()
			return metrics.ReadStats{StorageReads: st.StorageReads, CollapsedReads: st.CollapsedReads,
				LiveWaiters: st.LiveWaiters, KeptReads: int64(st.KeptReads), KeptReadBytes: st.KeptReadBytes}
		},
		HotDir: filepath.Join(cfg.DataDir, "streams"),
	}); err != nil {
		s.Close(ctx)
		return nil, fmt.Errorf("server: %w", err)
	}
	return s, nil
}

// Handler returns the HTTP handler; streams are under /v1/stream/.
func (s *Server) Handler() http.Handler { return s.api }

// Rotator exposes the segment uploader (for tests and tools).
func (s *Server) Rotator() *rotation.Rotator { return s.rot }

// Registry exposes the stream registry (for tests and tools).
func (s *Server) Registry() *sequencer.Registry { return s.reg }

// Admin exposes the segment administration service (for tests and tools).
func (s *Server) Admin() *admin.Service { return s.admin }

// Catalog exposes the stream catalog (for tests and tools).
func (s *Server) Catalog() *catalog.Catalog { return s.catalog }

// ColdStore exposes the cold object store (for tests and tools).
func (s *Server) ColdStore() coldstore.Store { return s.store }

// Metrics exposes the server's metrics registry (served at /metrics), for
// embedders that add their own.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// healthChecks are the checks behind /readyz. Without its catalog the
// server can do nothing, so that check is critical; without its cold store
// it still accepts appends (uploads are retried later), so that only
// degrades it. The cold-store probe is a remote request on S3: its result
// is reused for a few seconds.
func (s *Server) healthChecks() *health.Checker {
	return health.New(
		health.Check{Name: "catalog", Critical: true, CacheFor: time.Second,
			Probe: func(ctx context.Context) error { return s.catalog.DB().PingContext(ctx) }},
		health.Check{Name: "coldstore", CacheFor: 5 * time.Second,
			Probe: func(ctx context.Context) error { return coldstore.Probe(ctx, s.store) }},
	)
}

// BeginShutdown ends live reads (long-polls answer, SSE streams close) so
// an http.Server can drain quickly; call it before http.Server.Shutdown.
func (s *Server) BeginShutdown() { s.reg.BeginShutdown() }

// Close ends live reads, flushes and closes every stream and the catalog.
func (s *Server) Close(ctx context.Context) error {
	if err := s.WaitHooks(ctx); err != nil {
		s.cfg.Logger.Warn("closing before every hook ran", "err", err)
	}
	s.lc.close()
	s.rot.Close()
	err := s.reg.Close(ctx)
	return errors.Join(err, s.catalog.Close())
}
