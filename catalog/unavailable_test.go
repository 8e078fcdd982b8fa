package catalog

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused connection", fmt.Errorf("get: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), true},
		{"broken connection", fmt.Errorf("get: %w", driver.ErrBadConn), true},
		{"timeout", fmt.Errorf("get: %w", context.DeadlineExceeded), true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"not found", ErrNotFound, false},
		{"other", errors.New("disk I/O error"), false},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
