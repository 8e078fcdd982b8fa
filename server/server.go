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
	"net"
	"net/http"
	"os"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/cluster"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segcache"
	"github.com/streamtier/durable-streams/faults"
	"github.com/streamtier/durable-streams/health"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/connlimit"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
	"github.com/streamtier/durable-streams/reclaim"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/subscriptions"
)

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Storage selects disk (the default) or memory; see StorageMemory.
	Storage         Storage
	DataDir         string        // default ./data
	LongPollTimeout time.Duration // default 30s
	SSEMaxDuration  time.Duration // default 60s
	MaxAppendBytes  int64         // default 8 MiB
	MaxReadChunk    int           // default 1 MiB
	// ReadResponseMax bounds catch-up responses (0: one response to the
	// tail); see api.Options.ReadResponseMax.
	ReadResponseMax int
	// DisableCompression turns response compression off.
	DisableCompression bool
	// DisableZeroCopy: see api.Options.DisableZeroCopy.
	DisableZeroCopy bool
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
	// Limits bounds connections and request bodies; zero fields take
	// DefaultLimits' values, negative ones turn that bound off.
	Limits Limits

	// Faults, if set, injects test faults into requests and serves POST
	// and DELETE /_test/inject-error to control them. For tests only:
	// leave it nil in production, where that path is then a 404.
	Faults *faults.Injector
	// Subscriptions configures the subscription APIs and webhooks.
	Subscriptions SubscriptionConfig
	// CORS is the cross-origin policy for browsers; the zero value allows
	// every origin. See docs/operations.md.
	CORS api.CORS
	// CursorEpoch and CursorInterval set the clock of the Stream-Cursor of
	// live responses (protocol section 8.1); zero values take the
	// protocol's defaults, 2024-10-09T00:00:00Z and 20 s. The interval
	// must be between 1 s and 1 h.
	CursorEpoch    time.Time
	CursorInterval time.Duration
	// Cluster, with a DSN, keeps the catalog in PostgreSQL (see
	// docs/cluster.md); without one it is <DataDir>/catalog.db.
	Cluster Cluster
	// Router, if set, names the node that serves each stream; this node
	// forwards requests for the others' streams (api.Router). Nil: this
	// node serves every stream. An api.PeerRouter's nodes are trusted
	// like RateLimit.TrustedProxies.
	Router api.Router
}

// Limits bounds what slow, idle and greedy clients can hold. The
// connection bounds and timeouts apply to the http.Server and listener of
// HTTPServer and Listener (an embedder serving Handler() with its own
// http.Server sets its own); the body bounds apply in Handler() itself.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ConnIdleTimeout closes keep-alive connections idle this long
	// between requests. Long-polls and SSE responses are not idle and keep
	// their own lifetimes (LongPollTimeout, SSEMaxDuration).
	ConnIdleTimeout time.Duration
	// BodyMinRate is the average rate, in bytes per second, at which a
	// request body must arrive once BodyReadGrace has passed (408 and the
	// connection closed otherwise).
	BodyMinRate   int64
	BodyReadGrace time.Duration
	// MaxConns and MaxConnsPerClient bound open connections in total and
	// per client IP address (503 and 429 with Retry-After past them).
	// Trusted proxies (RateLimit.TrustProxyHeaders, TrustedProxies) are
	// exempt from the per-client connection bound: a proxy connection
	// carries many clients.
	MaxConns          int
	MaxConnsPerClient int
	// MaxBodyBytes and MaxBodyBytesPerClient bound the request body bytes
	// being received at once, in total and per client address (the
	// forwarded address behind trusted proxies); 503 and 429 past them.
	MaxBodyBytes          int64
	MaxBodyBytesPerClient int64
}

// DefaultLimits are generous enough never to refuse honest traffic.
var DefaultLimits = Limits{
	ReadHeaderTimeout:     10 * time.Second,
	ConnIdleTimeout:       2 * time.Minute,
	BodyMinRate:           api.DefaultBodyMinRate,
	BodyReadGrace:         api.DefaultBodyReadGrace,
	MaxConns:              16384,
	MaxConnsPerClient:     512,
	MaxBodyBytes:          256 << 20,
	MaxBodyBytesPerClient: 64 << 20,
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *int64, def int64) {
		if *v == 0 {
			*v = def
		}
	}
	pickDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	pickDur(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	pickDur(&l.ConnIdleTimeout, d.ConnIdleTimeout)
	pickDur(&l.BodyReadGrace, d.BodyReadGrace)
	pick(&l.BodyMinRate, d.BodyMinRate)
	pick(&l.MaxBodyBytes, d.MaxBodyBytes)
	pick(&l.MaxBodyBytesPerClient, d.MaxBodyBytesPerClient)
	if l.MaxConns == 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerClient == 0 {
		l.MaxConnsPerClient = d.MaxConnsPerClient
	}
	return l
}

// The disk cache of cold segments serves zero-copy reads: sequencer sends
// a chunk from the cached file when its cold reader can name the ranges.
var _ sequencer.ColdFileReader = (*segcache.Cache)(nil)

// DefaultRotation seals a segment at 4 MiB, or after 15 minutes, or on close.
var DefaultRotation = sequencer.RotationPolicy{Enabled: true, SealBytes: 4 << 20, SealAge: 15 * time.Minute}

// Server is a running Durable Streams server.
type Server struct {
	cfg       Config
	catalog   *catalog.Catalog
	store     coldstore.Store
	cold      *segcache.Cache
	collector *reclaim.Collector
	rot       *rotation.Rotator
	reg       *sequencer.Registry
	cluster   *cluster.Cluster // nil for a single node
	admin     *admin.Service
	api       *api.API
	lc        *lifecycle
	metrics   *metrics.Metrics
	conns     *connlimit.Conns  // nil without connection bounds
	budget    *connlimit.Budget // nil without body byte bounds

	subs *subscriptions.Manager // nil when disabled
	lay  layout
}

// New opens the data directory (creating it) and starts the server's
// background work. Close releases everything.
func New(ctx context.Context, cfg Config) (*Server, error) {
	lay, err := resolveStorage(&cfg)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	// undo closes, newest first, what a start that fails has opened; then
	// the in-memory databases go.
	started := false
	var undo []func()
	defer func() {
		if started {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		lay.release()
	}()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Lines logged with a request's context carry its id, in every package.
	cfg.Logger = slog.New(requestid.NewHandler(cfg.Logger.Handler()))
	if cfg.Auth.AdminToken == "" {
		cfg.Auth.AdminToken = cfg.AdminToken
	}
	cfg.Limits = cfg.Limits.withDefaults()
	var router *clusterRouter
	if cfg.Cluster.DSN != "" && cfg.Router == nil {
		router = &clusterRouter{}
		cfg.Router = router
	}
	if pr, ok := cfg.Router.(api.PeerRouter); ok && cfg.RateLimit.Peers == nil {
		cfg.RateLimit.Peers = pr.IsPeer // the nodes forward with the client's address
	}
	if err := validRegistryPath(cfg.RegistryStream); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := (protocol.CursorClock{Epoch: cfg.CursorEpoch, Interval: cfg.CursorInterval}).Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var subDeletes subscriptionDeletes
	lcHooks := cfg.Hooks
	if !cfg.Subscriptions.Disabled {
		lcHooks = subDeletes.wrap(lcHooks)
	}
	lc := newLifecycle(lcHooks, cfg.RegistryStream, cfg.Logger)
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
	if !lay.memory {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("server: create data dir: %w", err)
		}
	}
	cat, err := openCatalog(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("server: open catalog: %w", err)
	}
	undo = append(undo, func() { cat.Close() })
	cl, err := joinCluster(ctx, cfg, cat)
	if err != nil {
		return nil, fmt.Errorf("server: join cluster: %w", err)
	}
	if cl != nil {
		undo = append(undo, cl.Close)
	}
	if router != nil {
		router.bind(cl)
	}
	store, err := cfg.Store, error(nil)
	if store == nil {
		store, err = coldstore.Open(ctx, cfg.ColdStore)
	}
	if err != nil {
		return nil, fmt.Errorf("server: open cold store: %w", err)
	}
	cold, err := segcache.New(segcache.Config{Store: store, Dir: lay.cacheDir, MaxBytes: cfg.CacheBytes})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	collector, err := reclaim.New(reclaim.Config{Catalog: cat, Store: store, Cache: cold, Logger: cfg.Logger,
		HotPath: func(id int64) string { return hotlog.StreamPath(cfg.DataDir, id) }})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	undo = append(undo, collector.Close)
	rot, err := rotation.New(rotation.Config{Store: store, Catalog: cat, Logger: cfg.Logger, Verify: cfg.Verify})
	if err != nil {
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
		DataDir:     cfg.DataDir,
		Catalog:     cat,
		Logger:      cfg.Logger,
		IdleTimeout: cfg.IdleTimeout,
		MaxOpen:     cfg.MaxOpenStreams,
		Rotation:    pol,
		Cold:        cold,
		OnSeal:      rot.OnSeal,
		OnHandoff:   rot.Expedite,
		NodeID:      cfg.Cluster.NodeID,
		Collector:   collector,
		OnLifecycle: onLifecycle,
		Journal:     journalConfig(cfg),
		Fence:       fence(cl),
	})
	if err != nil {
		return nil, fmt.Errorf("server: start registry: %w", err)
	}
	undo = append(undo, func() { reg.Close(ctx) })
	lc.reg = reg
	if err := adoptLocal(ctx, cl, reg); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := rot.Start(ctx, reg); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	// The uploader stops before the registry, whose streams it uses.
	undo = append(undo, rot.Close)
	adm, err := admin.New(admin.Config{Catalog: cat, Store: store, Registry: reg, Collector: collector, Logger: cfg.Logger,
		Cluster: cfg.Cluster.DSN != "", Node: cfg.Cluster.NodeID, NodeTTL: cfg.Cluster.TTL})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	lc.start()
	undo = append(undo, lc.close)
	if cfg.RegistryStream != "" {
		if err := ensureRegistryStream(ctx, reg, cfg.RegistryStream); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	subs, err := openSubscriptions(ctx, cfg, reg, cat)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var subsAPI api.Subscriptions
	if subs != nil {
		subDeletes.m.Store(subs)
		subsAPI = subs
	}
	s := &Server{cfg: cfg, catalog: cat, store: store, cold: cold, collector: collector, rot: rot, reg: reg, cluster: cl, admin: adm,
		metrics: metrics.NewNode(cfg.Cluster.nodeLabel()), lc: lc,
		conns: connlimit.NewConns(connlimit.ConnsConfig{MaxConns: cfg.Limits.MaxConns,
			MaxConnsPerClient: cfg.Limits.MaxConnsPerClient, Exempt: cfg.RateLimit.Proxies().Trusted}),
		budget: connlimit.NewBudget(cfg.Limits.MaxBodyBytes, cfg.Limits.MaxBodyBytesPerClient)}
	s.subs = subs
	undo = []func(){func() { s.Close(ctx) }} // from here Close owns everything
	s.lay = lay
	s.api = api.New(api.Options{
		Registry:           reg,
		Logger:             cfg.Logger,
		LongPollTimeout:    cfg.LongPollTimeout,
		SSEMaxDuration:     cfg.SSEMaxDuration,
		MaxAppendBytes:     cfg.MaxAppendBytes,
		MaxReadChunk:       cfg.MaxReadChunk,
		CacheMode:          cfg.CacheMode,
		EdgeSecret:         cfg.EdgeSecret,
		Health:             s.healthChecks(),
		Metrics:            s.metrics,
		Admin:              adm,
		Auth:               authn,
		RateLimit:          limiter,
		Hooks:              hooks.Hooks{BeforeAppend: cfg.Hooks.BeforeAppend, AfterAppend: cfg.Hooks.AfterAppend},
		ReadOnlyStream:     cfg.RegistryStream,
		BodyMinRate:        cfg.Limits.BodyMinRate,
		BodyReadGrace:      cfg.Limits.BodyReadGrace,
		BodyBudget:         s.budget,
		Proxies:            cfg.RateLimit.Proxies(),
		Catalog:            cat,
		Faults:             cfg.Faults,
		Subscriptions:      subsAPI,
		CORS:               cfg.CORS,
		CursorEpoch:        cfg.CursorEpoch,
		CursorInterval:     cfg.CursorInterval,
		ReadResponseMax:    cfg.ReadResponseMax,
		DisableZeroCopy:    cfg.DisableZeroCopy,
		DisableCompression: cfg.DisableCompression,
		Router:             cfg.Router,
		NodeID:             cfg.Cluster.NodeID,
	})
	if err := s.metrics.Watch(metrics.Sources{
		Streams:  reg,
		Rotation: rot,
		Cache:    cold,
		Reclaim:  collector,
		Reads: func() metrics.ReadStats {
			st := s.api.ReadStats()
			return metrics.ReadStats{StorageReads: st.StorageReads, CollapsedReads: st.CollapsedReads,
				LiveWaiters: st.LiveWaiters, KeptReads: int64(st.KeptReads), KeptReadBytes: st.KeptReadBytes}
		},
		HotDir: lay.hotDir,
		Limits: func() metrics.LimitStats {
			total, _ := s.budget.InUse("")
			return metrics.LimitStats{OpenConns: s.conns.Open(), RefusedConns: s.conns.Refused(), BodyBytesInFlight: total}
		},
		Subscriptions: subsStats(subs),
		Cluster:       clusterStats(cl),
	}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	started = true
	return s, nil
}

// Handler returns the HTTP handler; streams are under /v1/stream/.
func (s *Server) Handler() http.Handler { return s.api }

// HTTPServer returns an http.Server for Handler() with the connection
// timeouts of Config.Limits: ReadHeaderTimeout, and ConnIdleTimeout as
// IdleTimeout. It sets no ReadTimeout or WriteTimeout: request bodies
// have their own minimum-rate deadline (in Handler()), and a whole-request
// write deadline would cut long-polls and SSE responses, which end on
// their own schedule. Serve it on Listener(ln).
func (s *Server) HTTPServer() *http.Server {
	l := s.cfg.Limits
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: max(l.ReadHeaderTimeout, 0),
		IdleTimeout:       max(l.ConnIdleTimeout, 0),
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// Listener wraps ln with the connection bounds of Config.Limits. The
// bounds are the server's: connections of every listener it wrapped
// count against them together.
func (s *Server) Listener(ln net.Listener) net.Listener { return s.conns.Listen(ln) }

// Rotator exposes the segment uploader (for tests and tools).
func (s *Server) Rotator() *rotation.Rotator { return s.rot }

// Registry exposes the stream registry (for tests and tools).
func (s *Server) Registry() *sequencer.Registry { return s.reg }

// Admin exposes the segment administration service (for tests and tools).
func (s *Server) Admin() *admin.Service { return s.admin }

// Subscriptions exposes the subscriptions manager (nil when disabled).
func (s *Server) Subscriptions() *subscriptions.Manager { return s.subs }

// Cluster exposes this node's membership and leases in cluster mode (nil
// for a single node); ClusterRouter adapts it to request routing.
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

// Catalog exposes the stream catalog (for tests and tools).
func (s *Server) Catalog() *catalog.Catalog { return s.catalog }

// ColdStore exposes the cold object store (for tests and tools).
func (s *Server) ColdStore() coldstore.Store { return s.store }

// Metrics exposes the server's metrics registry (served at /metrics), for
// embedders that add their own.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// healthChecks are the checks behind /readyz. Without its catalog the
// server can do nothing, so that check is critical, and so is, in cluster
// mode, a node fenced off its streams (its leases not renewed in time); without its cold store
// it still accepts appends (uploads are retried later), so that only
// degrades it. The cold-store probe is a remote request on S3: its result
// is reused for a few seconds.
func (s *Server) healthChecks() *health.Checker {
	return health.New(
		health.Check{Name: "catalog", Critical: true, CacheFor: time.Second,
			Probe: func(ctx context.Context) error { return s.catalog.Ping(ctx) }},
		health.Check{Name: "coldstore", CacheFor: 5 * time.Second,
			Probe: func(ctx context.Context) error { return coldstore.Probe(ctx, s.store) }},
		health.Check{Name: "cluster", Critical: true, Probe: clusterProbe(s.cluster)},
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
	s.api.Close()
	var serr error
	if s.subs != nil {
		serr = s.subs.Close()
	}
	s.rot.Close()
	err := s.reg.Close(ctx)
	if s.cluster != nil {
		// After the registry: its last commits still check the fence.
		s.cluster.Close()
	}
	s.collector.Close()
	cerr := s.catalog.Close()
	return errors.Join(serr, err, cerr, s.lay.release())
}
