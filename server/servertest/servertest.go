// Package servertest runs a Durable Streams server on a free loopback
// port, for the tests of applications that use or embed one:
//
//	func TestOrders(t *testing.T) {
//		ds := servertest.Start(t, server.Config{})
//		c := ds.Client() // or any HTTP client at ds.URL
//		...
//		ds.Reset(t.Context()) // every stream gone, same URL
//	}
//
// The server is the real one (server.New behind an httptest server), with
// its data in a temporary directory that is removed when it stops. Reset
// clears it by replacing it with a new server on a fresh, empty directory
// behind the same URL: clients configured with the URL keep working, and
// nothing survives, which deleting every stream through the API would not
// give (producer states, deletion tombstones and cold segments would
// stay).
package servertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/client"
	"github.com/streamtier/durable-streams/server"
)

// Option adjusts Start and New.
type Option func(*options)

type options struct{ ignoreCloseError bool }

// IgnoreCloseError keeps an error from closing the server at the end of
// the test from failing it, for tests that break the server on purpose
// (such as by closing its catalog).
func IgnoreCloseError() Option { return func(o *options) { o.ignoreCloseError = true } }

// closeTimeout bounds the close of a server at cleanup and on Reset.
const closeTimeout = 10 * time.Second

// Server is a running server at URL. Its methods are safe for concurrent
// use, also with requests in flight.
type Server struct {
	// URL is the server's base URL, such as "http://127.0.0.1:40123"
	// (streams are under URL + "/v1/stream/"). It stays the same across
	// Reset.
	URL string

	cfg server.Config
	opt options
	hs  *httptest.Server

	mu     sync.RWMutex
	cur    *instance // nil once closed
	closed bool
}

// instance is one server.Server and its data directory.
type instance struct {
	srv    *server.Server
	dir    string
	ownDir bool // dir was made here and is removed with the instance
}

// Start runs a server configured by cfg for the test t and stops it when
// the test ends; it fails the test if the server does not start, or (unless
// IgnoreCloseError is given) if closing it fails. An empty cfg.DataDir
// becomes a temporary directory and a nil cfg.Logger one that discards.
func Start(t testing.TB, cfg server.Config, opts ...Option) *Server {
	t.Helper()
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil && !s.opt.ignoreCloseError {
			t.Errorf("servertest: %v", err)
		}
	})
	return s
}

// New runs a server configured by cfg, like Start, for callers without a
// testing.TB (a TestMain sharing one server among tests, an example). The
// caller must Close it.
func New(cfg server.Config, opts ...Option) (*Server, error) {
	s := &Server{cfg: cfg}
	for _, o := range opts {
		o(&s.opt)
	}
	if s.cfg.Logger == nil {
		s.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	inst, err := s.newInstance(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.cur = inst
	s.hs = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.hs.URL
	return s, nil
}

// newInstance starts a server on dir, or on a new temporary directory
// when dir is empty (none in memory mode, whose data dies with it).
func (s *Server) newInstance(dir string) (*instance, error) {
	inst := &instance{dir: dir}
	if dir == "" && s.cfg.Storage != server.StorageMemory {
		d, err := os.MkdirTemp("", "ds-servertest-*")
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		inst.dir, inst.ownDir = d, true
	}
	cfg := s.cfg
	cfg.DataDir = inst.dir
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		inst.remove()
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	inst.srv = srv
	return inst, nil
}

// stop ends live reads, closes the server and removes its directory if
// it made it.
func (inst *instance) stop(ctx context.Context) error {
	inst.srv.BeginShutdown()
	err := inst.srv.Close(ctx)
	if err != nil {
		err = fmt.Errorf("closing the server: %w", err)
	}
	return errors.Join(err, inst.remove())
}

func (inst *instance) remove() error {
	if !inst.ownDir {
		return nil
	}
	if err := os.RemoveAll(inst.dir); err != nil {
		return fmt.Errorf("removing the data dir: %w", err)
	}
	return nil
}

// serveHTTP hands each request to the current server.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	inst := s.cur
	s.mu.RUnlock()
	if inst == nil {
		http.Error(w, "servertest: server closed", http.StatusServiceUnavailable)
		return
	}
	inst.srv.Handler().ServeHTTP(w, r)
}

// Server returns the current server.Server (after a Reset, the new one),
// for tests that look at its internals; nil after Close.
func (s *Server) Server() *server.Server {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return nil
	}
	return s.cur.srv
}

// DataDir returns the current server's data directory ("" in memory
// mode).
func (s *Server) DataDir() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return ""
	}
	return s.cur.dir
}

// HTTPServer returns the httptest server in front, whose Client talks to
// it; it stays the same across Reset.
func (s *Server) HTTPServer() *httptest.Server { return s.hs }

// StreamURL returns the URL of the stream at path (such as "logs/app").
func (s *Server) StreamURL(path string) string {
	return s.URL + client.DefaultStreamPrefix + strings.TrimLeft(path, "/")
}

// Client returns a Go client of the server, with opts.
func (s *Server) Client(opts ...client.Option) *client.Client {
	return client.New(s.URL, opts...)
}

// Reset clears the server: it starts a new server on a fresh, empty
// temporary directory, sends every new request to it, and then stops the
// old one and removes its directory. The URL does not change. Live reads
// of the old server end (long-polls answer, SSE responses close), and
// clients that reconnect find their streams gone (404).
//
// Reset clears what lives under the data directory, which is everything
// by default. A cold store given by cfg.Store or an S3 cfg.ColdStore is
// shared by the old and the new server and is not cleared; give each test
// its own bucket prefix instead.
func (s *Server) Reset(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errors.New("servertest: reset after close")
	}
	fresh, err := s.newInstance("")
	if err != nil {
		return fmt.Errorf("servertest: reset: %w", err)
	}
	s.mu.Lock()
	old := s.cur
	if s.closed {
		s.mu.Unlock()
		return errors.Join(errors.New("servertest: reset after close"), fresh.stop(ctx))
	}
	s.cur = fresh
	s.mu.Unlock()
	if err := old.stop(ctx); err != nil && !s.opt.ignoreCloseError {
		return fmt.Errorf("servertest: reset: %w", err)
	}
	return nil
}

// Close stops the server: live reads end first, then the HTTP server
// stops, then the server closes and its temporary directory is removed.
// Closing twice is a no-op.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inst := s.cur
	s.mu.Unlock()
	// Live reads end before the HTTP server waits for its requests.
	inst.srv.BeginShutdown()
	s.hs.Close()
	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
	return inst.stop(ctx)
}
