// Package servertest runs a server.Server behind an httptest server, for
// the tests of packages that exercise the whole server over HTTP.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/server"
)

// Option adjusts Start.
type Option func(*options)

type options struct{ ignoreCloseError bool }

// IgnoreCloseError keeps an error from closing the server at the end of
// the test from failing it, for tests that break the server on purpose
// (such as by closing its catalog).
func IgnoreCloseError() Option { return func(o *options) { o.ignoreCloseError = true } }

// Start runs a server configured by cfg behind an httptest server. An
// empty cfg.DataDir becomes a temporary directory and a nil cfg.Logger one
// that discards. Both servers stop when the test ends: new requests are
// refused first, so that live reads end, and an error closing the server
// fails the test unless IgnoreCloseError is given.
func Start(t testing.TB, cfg server.Config, opts ...Option) (*server.Server, *httptest.Server) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.BeginShutdown()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil && !o.ignoreCloseError {
			t.Errorf("server.Close: %v", err)
		}
	})
	return srv, ts
}
