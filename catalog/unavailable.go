package catalog

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the catalog's database could not
// be reached: a refused, broken or timed-out connection (a node cut off
// from PostgreSQL, a database restarting). That is a transient state a
// client should retry (503), not a fault of the request or a bug. An
// SQLite catalog is a local file and never reports it.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ne), errors.As(err, &ce), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down or not accepting connections yet.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}
