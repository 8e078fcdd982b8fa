// Package servertest runs a server.Server behind an httptest server, for
// the tests of packages that exercise the whole server over HTTP. It is
// the public server/servertest with the signature this project's tests
// use.
package servertest

import (
	"net/http/httptest"
	"testing"

	"github.com/streamtier/durable-streams/server"
	"github.com/streamtier/durable-streams/server/servertest"
)

// Option adjusts Start.
type Option = servertest.Option

// IgnoreCloseError keeps an error from closing the server at the end of
// the test from failing it, for tests that break the server on purpose
// (such as by closing its catalog).
func IgnoreCloseError() Option { return servertest.IgnoreCloseError() }

// Start runs a server configured by cfg behind an httptest server. An
// empty cfg.DataDir becomes a temporary directory and a nil cfg.Logger one
// that discards. Both servers stop when the test ends: new requests are
// refused first, so that live reads end, and an error closing the server
// fails the test unless IgnoreCloseError is given.
func Start(t testing.TB, cfg server.Config, opts ...Option) (*server.Server, *httptest.Server) {
	t.Helper()
	s := servertest.Start(t, cfg, opts...)
	return s.Server(), s.HTTPServer()
}
