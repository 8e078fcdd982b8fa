package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/cluster"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/faults"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

// serveFlags holds the serve command's settings; every flag has a DS_*
// environment variable equivalent (flags win).
type serveFlags struct {
	addr            string
	dataDir         string
	storage         string
	longPollTimeout time.Duration
	sseMax          time.Duration
	maxAppend       int64
	maxChunk        int64
	readRespMax     int64
	compression     string
	logLevel        string
	cacheMode       string
	edgeSecret      string
	idleTimeout     time.Duration
	maxOpen         int64

	coldKind     string
	coldDir      string
	s3           coldstore.S3Config
	sealBytes    int64
	sealMessages int64
	sealAge      time.Duration
	journal      sequencer.JournalConfig
	cacheBytes   int64
	verify       string
	adminToken   string
	auth         authFlags
	createBucket bool

	cluster server.Cluster
	// drainTimeout bounds the drain before exit in cluster mode (0: none).
	drainTimeout time.Duration

	registryStream string
	testFaults     bool
	forwardAllTo   string
	debugAddr      string

	readHeaderTimeout time.Duration
	connIdleTimeout   time.Duration
	bodyMinRate       int64
	bodyReadGrace     time.Duration
	maxConns          int64
	maxConnsPerClient int64
	maxBodyBytes      int64
	maxBodyPerClient  int64
	corsOrigins       string
	cursorInterval    time.Duration
	cursorEpoch       string

	// Command line conveniences (issue 14, item 10).
	port int // --port: replaces the port of addr; -1 when not given

	webhooks            bool
	webhookAllowPrivate bool
	publicURL           string
}

// limits turns the limit flags into server.Limits; a flag's 0 means off.
func (f *serveFlags) limits() server.Limits {
	off := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	offDur := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return server.Limits{
		ReadHeaderTimeout:     offDur(f.readHeaderTimeout),
		ConnIdleTimeout:       offDur(f.connIdleTimeout),
		BodyMinRate:           off(f.bodyMinRate),
		BodyReadGrace:         f.bodyReadGrace,
		MaxConns:              int(off(f.maxConns)),
		MaxConnsPerClient:     int(off(f.maxConnsPerClient)),
		MaxBodyBytes:          off(f.maxBodyBytes),
		MaxBodyBytesPerClient: off(f.maxBodyPerClient),
	}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", envOr("DS_ADDR", "127.0.0.1:4437"), "listen address (DS_ADDR)")
	fs.StringVar(&f.dataDir, "data-dir", envOr("DS_DATA_DIR", "./data"), "data directory (DS_DATA_DIR)")
	fs.StringVar(&f.storage, "storage", envOr("DS_STORAGE", "disk"), "disk: keep data in --data-dir; memory: keep everything in memory, for tests and development (no files; lost on exit) (DS_STORAGE)")
	fs.DurationVar(&f.longPollTimeout, "long-poll-timeout", envDuration("DS_LONG_POLL_TIMEOUT", 30*time.Second), "long-poll wait before 204 (DS_LONG_POLL_TIMEOUT)")
	fs.DurationVar(&f.sseMax, "sse-max-duration", envDuration("DS_SSE_MAX_DURATION", 60*time.Second), "SSE connections are closed after this (DS_SSE_MAX_DURATION)")
	fs.Int64Var(&f.maxAppend, "max-append-bytes", envInt("DS_MAX_APPEND_BYTES", 8<<20), "largest append body; larger gets 413 (DS_MAX_APPEND_BYTES)")
	fs.Int64Var(&f.maxChunk, "max-read-chunk", envInt("DS_MAX_READ_CHUNK", 1<<20), "bytes read from storage at a time, the memory a reader holds (DS_MAX_READ_CHUNK)")
	fs.Int64Var(&f.readRespMax, "read-response-max", envInt("DS_READ_RESPONSE_MAX", 0), "largest catch-up response body, which then also ends at segment boundaries; 0 = everything up to the tail in one response (DS_READ_RESPONSE_MAX)")
	fs.StringVar(&f.compression, "compression", envOr("DS_COMPRESSION", "on"), "on: compress read responses (gzip, zstd) when the client accepts it; off: never (DS_COMPRESSION)")
	fs.StringVar(&f.logLevel, "log-level", envOr("DS_LOG_LEVEL", "info"), "debug, info, warn or error (DS_LOG_LEVEL)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", envDuration("DS_IDLE_TIMEOUT", 30*time.Second), "close a stream's actor and files after this long without use (DS_IDLE_TIMEOUT)")
	fs.Int64Var(&f.maxOpen, "max-open-streams", envInt("DS_MAX_OPEN_STREAMS", 4096), "soft bound on streams held open at once (DS_MAX_OPEN_STREAMS)")
	fs.StringVar(&f.cacheMode, "cache-mode", envOr("DS_CACHE_MODE", "shared"), "shared (CDN-cacheable) or private (DS_CACHE_MODE)")
	fs.StringVar(&f.edgeSecret, "edge-secret", envOr("DS_EDGE_SECRET", ""), "secret a trusted edge sends in X-Edge-Secret to pick the cache mode per request with X-Cache-Mode; empty ignores X-Cache-Mode; prefer the variable (DS_EDGE_SECRET)")
	fs.StringVar(&f.coldKind, "cold-store", envOr("DS_COLD_STORE", "local"), "where sealed segments go: local or s3 (DS_COLD_STORE)")
	fs.StringVar(&f.coldDir, "cold-dir", envOr("DS_COLD_DIR", ""), "directory of the local cold store (default <data-dir>/cold) (DS_COLD_DIR)")
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", envOr("DS_S3_ENDPOINT", ""), "S3 endpoint URL; empty for AWS (DS_S3_ENDPOINT)")
	fs.StringVar(&f.s3.Region, "s3-region", envOr("DS_S3_REGION", envOr("AWS_REGION", "us-east-1")), "S3 region; R2 uses auto (DS_S3_REGION, AWS_REGION)")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", envOr("DS_S3_BUCKET", ""), "S3 bucket (DS_S3_BUCKET)")
	fs.StringVar(&f.s3.Prefix, "s3-prefix", envOr("DS_S3_PREFIX", "segments"), "key prefix inside the bucket (DS_S3_PREFIX)")
	fs.BoolVar(&f.s3.PathStyle, "s3-path-style", envBool("DS_S3_PATH_STYLE", false), "path-style addressing, needed by MinIO (DS_S3_PATH_STYLE)")
	fs.BoolVar(&f.createBucket, "s3-create-bucket", envBool("DS_S3_CREATE_BUCKET", false), "create the S3 bucket at start if it does not exist (DS_S3_CREATE_BUCKET)")
	fs.Int64Var(&f.sealBytes, "seal-bytes", envInt("DS_SEAL_BYTES", 4<<20), "seal a segment at this many bytes (DS_SEAL_BYTES)")
	fs.Int64Var(&f.sealMessages, "seal-messages", envInt("DS_SEAL_MESSAGES", 0), "seal a segment at this many messages; 0 = no limit (DS_SEAL_MESSAGES)")
	fs.DurationVar(&f.sealAge, "seal-age", envDuration("DS_SEAL_AGE", 15*time.Minute), "seal a segment this long after its first message (DS_SEAL_AGE)")
	fs.Int64Var(&f.journal.CheckpointBytes, "journal-checkpoint-bytes", envInt("DS_JOURNAL_CHECKPOINT_BYTES", 128<<20), "checkpoint the commit journal once it holds this much; bounds replay after a crash (DS_JOURNAL_CHECKPOINT_BYTES)")
	fs.DurationVar(&f.journal.CheckpointAge, "journal-checkpoint-age", envDuration("DS_JOURNAL_CHECKPOINT_AGE", time.Minute), "checkpoint the commit journal once a record is this old (DS_JOURNAL_CHECKPOINT_AGE)")
	fs.Int64Var(&f.cacheBytes, "cache-bytes", envInt("DS_CACHE_BYTES", 1<<30), "bound of the on-disk cache of cold segments (DS_CACHE_BYTES)")
	fs.StringVar(&f.verify, "verify-uploads", envOr("DS_VERIFY_UPLOADS", "full"), "check uploads before trimming: full (read back, CRC32C) or size (DS_VERIFY_UPLOADS)")
	fs.StringVar(&f.adminToken, "admin-token", envOr("DS_ADMIN_TOKEN", ""), "static bearer token granting everything (admin API included); setting it turns access control on; prefer the variable, flags show in process listings (DS_ADMIN_TOKEN)")
	f.auth.register(fs)
	fs.StringVar(&f.cluster.DSN, "cluster-dsn", envOr("DS_CLUSTER_DSN", ""), "keep the catalog in this PostgreSQL database (postgres://user@host/db) instead of the data directory, shared by every node of the cluster; prefer the variable, it may hold a password (DS_CLUSTER_DSN)")
	fs.StringVar(&f.cluster.NodeID, "node-id", envOr("DS_NODE_ID", ""), "this node's name in cluster mode (default the host name) (DS_NODE_ID)")
	fs.StringVar(&f.cluster.AdvertiseURL, "advertise-url", envOr("DS_ADVERTISE_URL", ""), "URL other nodes reach this one at in cluster mode (default http://<addr>) (DS_ADVERTISE_URL)")
	fs.DurationVar(&f.cluster.Heartbeat, "node-heartbeat", envDuration("DS_NODE_HEARTBEAT", cluster.DefaultHeartbeat), "cluster mode: heartbeat and renew this node's stream leases this often (DS_NODE_HEARTBEAT)")
	fs.DurationVar(&f.cluster.TTL, "node-ttl", envDuration("DS_NODE_TTL", cluster.DefaultTTL), "cluster mode: a node silent this long is dead and its leases expire; it stops acknowledging writes a fifth of this before (DS_NODE_TTL)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", envDuration("DS_DRAIN_TIMEOUT", time.Minute), "in cluster mode, on SIGTERM or SIGINT hand off every stream to the other nodes for up to this long before exiting (a second signal exits at once); 0 = exit without draining (DS_DRAIN_TIMEOUT)")
	fs.StringVar(&f.registryStream, "registry-stream", envOr("DS_REGISTRY_STREAM", ""), "path of a JSON stream the server appends every stream create and delete to, e.g. __registry__; empty: none (DS_REGISTRY_STREAM)")
	fs.BoolVar(&f.testFaults, "enable-test-faults", envBool("DS_ENABLE_TEST_FAULTS", false), "serve POST/DELETE /_test/inject-error to inject errors into requests; for tests only, never in production (DS_ENABLE_TEST_FAULTS)")
	fs.StringVar(&f.forwardAllTo, "forward-all-to", "", "forward every stream request to the server at this base URL (http://host:port) instead of serving it; for tests of request forwarding only, never in production")
	fs.StringVar(&f.debugAddr, "debug-addr", envOr("DS_DEBUG_ADDR", ""), "serve Go's pprof profiles under /debug/pprof/ on this separate address, e.g. 127.0.0.1:6060; empty: off (DS_DEBUG_ADDR)")
	fs.BoolVar(&f.webhooks, "webhooks", envBool("DS_WEBHOOKS", false), "allow webhook subscriptions and deliver their signed webhooks (DS_WEBHOOKS)")
	fs.BoolVar(&f.webhookAllowPrivate, "webhook-allow-private", envBool("DS_WEBHOOK_ALLOW_PRIVATE", false), "also allow webhook targets on loopback (localhost, 127.0.0.0/8, ::1), for development; private networks stay refused (DS_WEBHOOK_ALLOW_PRIVATE)")
	fs.StringVar(&f.publicURL, "public-url", envOr("DS_PUBLIC_URL", ""), "stream root URL as clients reach it, e.g. https://streams.example/v1/stream, for webhook callback_url and jwks_url; empty: from the request (DS_PUBLIC_URL)")
	d := server.DefaultLimits
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", envDuration("DS_READ_HEADER_TIMEOUT", d.ReadHeaderTimeout), "time a client has to send a request's headers; 0 = no limit (DS_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&f.connIdleTimeout, "conn-idle-timeout", envDuration("DS_CONN_IDLE_TIMEOUT", d.ConnIdleTimeout), "close keep-alive connections idle this long between requests; 0 = never (DS_CONN_IDLE_TIMEOUT)")
	fs.Int64Var(&f.bodyMinRate, "body-min-rate", envInt("DS_BODY_MIN_RATE", d.BodyMinRate), "bytes per second a request body must average after -body-read-grace, else 408; 0 = no minimum (DS_BODY_MIN_RATE)")
	fs.DurationVar(&f.bodyReadGrace, "body-read-grace", envDuration("DS_BODY_READ_GRACE", d.BodyReadGrace), "time a request body may take before -body-min-rate applies (DS_BODY_READ_GRACE)")
	fs.Int64Var(&f.maxConns, "max-conns", envInt("DS_MAX_CONNS", int64(d.MaxConns)), "open connections in total; more get 503; 0 = no limit (DS_MAX_CONNS)")
	fs.Int64Var(&f.maxConnsPerClient, "max-conns-per-client", envInt("DS_MAX_CONNS_PER_CLIENT", int64(d.MaxConnsPerClient)), "open connections per client IP; more get 429; not applied with -trust-proxy-headers; 0 = no limit (DS_MAX_CONNS_PER_CLIENT)")
	fs.Int64Var(&f.maxBodyBytes, "max-inflight-body-bytes", envInt("DS_MAX_INFLIGHT_BODY_BYTES", d.MaxBodyBytes), "request body bytes being received at once, in total; more get 503; 0 = no limit (DS_MAX_INFLIGHT_BODY_BYTES)")
	fs.Int64Var(&f.maxBodyPerClient, "max-inflight-body-bytes-per-client", envInt("DS_MAX_INFLIGHT_BODY_BYTES_PER_CLIENT", d.MaxBodyBytesPerClient), "request body bytes being received at once per client address; more get 429; 0 = no limit (DS_MAX_INFLIGHT_BODY_BYTES_PER_CLIENT)")
	fs.StringVar(&f.corsOrigins, "cors-origins", envOr("DS_CORS_ORIGINS", "*"), `origins whose web pages may use the server: "*" any, a comma-separated list (https://app.example.com,...), or "off" for no CORS headers (DS_CORS_ORIGINS)`)
	fs.DurationVar(&f.cursorInterval, "cursor-interval", envDuration("DS_CURSOR_INTERVAL", protocol.DefaultCursorInterval), "length of one Stream-Cursor interval of live reads, 1s to 1h (DS_CURSOR_INTERVAL)")
	fs.StringVar(&f.cursorEpoch, "cursor-epoch", envOr("DS_CURSOR_EPOCH", protocol.DefaultCursorEpoch.Format(time.RFC3339)), "RFC 3339 instant from which Stream-Cursor intervals are counted (DS_CURSOR_EPOCH)")

	// Command line conveniences.
	portFlag(fs, &f.port)

	if err := flagError(fs.Parse(args)); err != nil {
		return err
	}
	var err error
	if f.addr, err = withPort(f.addr, f.port); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("bad -log-level %q", f.logLevel)}
	}
	mode, err := cache.ParseMode(f.cacheMode)
	if err != nil {
		return usageError{err}
	}
	cors, err := api.ParseCORS(f.corsOrigins)
	if err != nil {
		return usageError{fmt.Errorf("bad -cors-origins: %w", err)}
	}
	cursorEpoch, err := time.Parse(time.RFC3339, f.cursorEpoch)
	if err != nil {
		return usageError{fmt.Errorf("bad -cursor-epoch %q: want an RFC 3339 time such as 2024-10-09T00:00:00Z", f.cursorEpoch)}
	}
	if err := (protocol.CursorClock{Epoch: cursorEpoch, Interval: f.cursorInterval}).Validate(); err != nil {
		return usageError{fmt.Errorf("bad -cursor-interval: %w", err)}
	}
	lg := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Credentials come from DS_S3_ACCESS_KEY_ID/DS_S3_SECRET_ACCESS_KEY or
	// the usual AWS chain (AWS_ACCESS_KEY_ID, profiles, ...); never flags,
	// so they don't show in process listings.
	f.s3.AccessKeyID = os.Getenv("DS_S3_ACCESS_KEY_ID")
	f.s3.SecretAccessKey = os.Getenv("DS_S3_SECRET_ACCESS_KEY")
	verify := rotation.VerifyFull
	switch f.verify {
	case "full":
	case "size":
		verify = rotation.VerifySize
	default:
		return usageError{fmt.Errorf("bad -verify-uploads %q (want full or size)", f.verify)}
	}
	if f.compression != "on" && f.compression != "off" {
		return usageError{fmt.Errorf("bad -compression %q (want on or off)", f.compression)}
	}
	if f.readRespMax < 0 || f.readRespMax > math.MaxInt32 {
		return usageError{fmt.Errorf("-read-response-max must be between 0 and %d, got %d", math.MaxInt32, f.readRespMax)}
	}
	if f.coldKind == coldstore.KindS3 && f.s3.Bucket == "" {
		return usageError{errors.New("-cold-store s3 needs -s3-bucket")}
	}
	if f.cluster.DSN != "" {
		if f.cluster.NodeID == "" {
			if f.cluster.NodeID, err = os.Hostname(); err != nil {
				return usageError{fmt.Errorf("-node-id: %w", err)}
			}
		}
		if f.cluster.AdvertiseURL == "" {
			f.cluster.AdvertiseURL = "http://" + f.addr
		}
	}
	router, err := forwardAll(f.forwardAllTo)
	if err != nil {
		return usageError{err}
	}
	authCfg, rateCfg, err := f.auth.config(f.adminToken)
	if err != nil {
		return usageError{err}
	}
	authn, err := auth.New(authCfg)
	if err != nil {
		return usageError{err}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.createBucket && f.coldKind == coldstore.KindS3 {
		if err := ensureBucket(ctx, f.s3); err != nil {
			return err
		}
	}
	srv, err := server.New(ctx, server.Config{
		Storage:         server.Storage(f.storage),
		DataDir:         f.dataDir,
		LongPollTimeout: f.longPollTimeout,
		SSEMaxDuration:  f.sseMax,
		MaxAppendBytes:  f.maxAppend,
		MaxReadChunk:    int(f.maxChunk),
		CacheMode:       mode,
		EdgeSecret:      f.edgeSecret,
		IdleTimeout:     f.idleTimeout,
		MaxOpenStreams:  int(f.maxOpen),
		Logger:          lg,
		ColdStore:       coldstore.Config{Kind: f.coldKind, Dir: f.coldDir, S3: f.s3},
		Rotation:        sequencer.RotationPolicy{SealBytes: f.sealBytes, SealMessages: f.sealMessages, SealAge: f.sealAge},
		CacheBytes:      f.cacheBytes,
		Verify:          verify,
		Auth:            authCfg,
		RateLimit:       rateCfg,
		RegistryStream:  f.registryStream,
		Faults:          testFaults(f.testFaults, lg),
		Journal:         f.journal,
		Limits:          f.limits(),
		CORS:            cors,
		CursorEpoch:     cursorEpoch,
		CursorInterval:  f.cursorInterval,
		Subscriptions: server.SubscriptionConfig{Webhooks: f.webhooks, WebhookAllowPrivate: f.webhookAllowPrivate,
			PublicURL: f.publicURL},
		Cluster:            f.cluster,
		Router:             router,
		ReadResponseMax:    int(f.readRespMax),
		DisableCompression: f.compression == "off",
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		srv.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	if f.debugAddr != "" {
		_, stopDebug, err := serveDebug(f.debugAddr, lg)
		if err != nil {
			ln.Close()
			srv.Close(context.Background())
			return err
		}
		defer stopDebug()
	}
	hs := srv.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(srv.Listener(ln)) }()
	if server.Storage(f.storage) == server.StorageMemory {
		lg.Info("serving", "addr", ln.Addr().String(), "storage", f.storage)
	} else {
		lg.Info("serving", "addr", ln.Addr().String(), "data_dir", f.dataDir)
	}
	warnIfOpen(lg, ln.Addr(), authn.Enabled())

	select {
	case err = <-errc:
	case <-ctx.Done():
		if f.cluster.DSN != "" && f.drainTimeout > 0 {
			stop() // a second signal ends the process at once
			drainBeforeExit(srv.Registry(), f.drainTimeout, lg)
			// The node left the members when the drain began; serving two
			// more heartbeats lets every peer see that and stop sending it
			// requests, which the listener closing would otherwise cut.
			hb := f.cluster.Heartbeat
			if hb <= 0 {
				hb = cluster.DefaultHeartbeat
			}
			select {
			case <-time.After(2 * hb):
			case err = <-errc:
			}
		}
	}
	lg.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv.BeginShutdown()
	shutErr := hs.Shutdown(shutCtx)
	closeErr := srv.Close(shutCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, shutErr, closeErr)
}

// forwardAll is the Router of -forward-all-to: every stream is served by
// the server at base (nil for an empty base: every stream is served here).
func forwardAll(base string) (api.Router, error) {
	if base == "" {
		return nil, nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad -forward-all-to %q: want an http(s) base URL", base)
	}
	return staticRouter{u}, nil
}

// staticRouter forwards every stream request to one server.
type staticRouter struct{ to *url.URL }

func (s staticRouter) Route(context.Context, string) (*url.URL, error) { return s.to, nil }

// testFaults returns a fault injector when enabled, loudly: a production
// server must never run with it.
func testFaults(enabled bool, lg *slog.Logger) *faults.Injector {
	if !enabled {
		return nil
	}
	lg.Warn("test fault injection is on: anyone who can reach " + faults.ControlPath + " can make requests fail; never use this in production")
	return faults.New()
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(envOr(key, "")); err == nil {
		return d
	}
	return def
}

func envInt(key string, def int64) int64 {
	if n, err := strconv.ParseInt(envOr(key, ""), 10, 64); err == nil {
		return n
	}
	return def
}

func envBool(key string, def bool) bool {
	if b, err := strconv.ParseBool(envOr(key, "")); err == nil {
		return b
	}
	return def
}

// ensureBucket creates the S3 bucket unless it exists (-s3-create-bucket).
func ensureBucket(ctx context.Context, cfg coldstore.S3Config) error {
	st, err := coldstore.NewS3(ctx, cfg)
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.EnsureBucket(ctx); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}
