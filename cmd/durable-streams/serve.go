package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/server"
)

// serveFlags holds the serve command's settings; every flag has a DS_*
// environment variable equivalent (flags win).
type serveFlags struct {
	addr            string
	dataDir         string
	longPollTimeout time.Duration
	sseMax          time.Duration
	maxAppend       int64
	maxChunk        int64
	logLevel        string
	cacheMode       string
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", envOr("DS_ADDR", "127.0.0.1:4437"), "listen address (DS_ADDR)")
	fs.StringVar(&f.dataDir, "data-dir", envOr("DS_DATA_DIR", "./data"), "data directory (DS_DATA_DIR)")
	fs.DurationVar(&f.longPollTimeout, "long-poll-timeout", envDuration("DS_LONG_POLL_TIMEOUT", 30*time.Second), "long-poll wait before 204 (DS_LONG_POLL_TIMEOUT)")
	fs.DurationVar(&f.sseMax, "sse-max-duration", envDuration("DS_SSE_MAX_DURATION", 60*time.Second), "SSE connections are closed after this (DS_SSE_MAX_DURATION)")
	fs.Int64Var(&f.maxAppend, "max-append-bytes", envInt("DS_MAX_APPEND_BYTES", 8<<20), "largest append body; larger gets 413 (DS_MAX_APPEND_BYTES)")
	fs.Int64Var(&f.maxChunk, "max-read-chunk", envInt("DS_MAX_READ_CHUNK", 1<<20), "largest read response body (DS_MAX_READ_CHUNK)")
	fs.StringVar(&f.logLevel, "log-level", envOr("DS_LOG_LEVEL", "info"), "debug, info, warn or error (DS_LOG_LEVEL)")
	fs.StringVar(&f.cacheMode, "cache-mode", envOr("DS_CACHE_MODE", "shared"), "shared (CDN-cacheable) or private (DS_CACHE_MODE)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("bad -log-level %q", f.logLevel)}
	}
	mode, err := cache.ParseMode(f.cacheMode)
	if err != nil {
		return usageError{err}
	}
	lg := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, server.Config{
		DataDir:         f.dataDir,
		LongPollTimeout: f.longPollTimeout,
		SSEMaxDuration:  f.sseMax,
		MaxAppendBytes:  f.maxAppend,
		MaxReadChunk:    int(f.maxChunk),
		CacheMode:       mode,
		Logger:          lg,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		srv.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	lg.Info("serving", "addr", ln.Addr().String(), "data_dir", f.dataDir)

	select {
	case err = <-errc:
	case <-ctx.Done():
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
