// Package server assembles a complete Durable Streams server: catalog,
// per-stream actors and the HTTP API. Embedders use New and mount Handler
// under any prefix; the durable-streams binary wraps it with flags.
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
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
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
	// AdminToken, if set, is the bearer token the admin API (/v1/admin/)
	// requires; empty leaves it open.
	AdminToken string
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
	})
	if err != nil {
		cat.Close()
		return nil, fmt.Errorf("server: start registry: %w", err)
	}
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
	s := &Server{cfg: cfg, catalog: cat, store: store, rot: rot, reg: reg, admin: adm}
	s.api = api.New(api.Options{
		Registry:        reg,
		Logger:          cfg.Logger,
		LongPollTimeout: cfg.LongPollTimeout,
		SSEMaxDuration:  cfg.SSEMaxDuration,
		MaxAppendBytes:  cfg.MaxAppendBytes,
		MaxReadChunk:    cfg.MaxReadChunk,
		CacheMode:       cfg.CacheMode,
		Ready:           s.ready,
		Admin:           adm,
		AdminToken:      cfg.AdminToken,
	})
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

func (s *Server) ready(ctx context.Context) error {
	return s.catalog.DB().PingContext(ctx)
}

// BeginShutdown ends live reads (long-polls answer, SSE streams close) so
// an http.Server can drain quickly; call it before http.Server.Shutdown.
func (s *Server) BeginShutdown() { s.reg.BeginShutdown() }

// Close ends live reads, flushes and closes every stream and the catalog.
func (s *Server) Close(ctx context.Context) error {
	s.rot.Close()
	err := s.reg.Close(ctx)
	return errors.Join(err, s.catalog.Close())
}
