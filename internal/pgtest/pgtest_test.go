package pgtest_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestDatabases checks that the server runs, that every NewDatabase is a
// separate empty database, and that Stop shuts it down.
func TestDatabases(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := t.Context()
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase returned %q twice", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (k int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table of database a visible in b: n=%d err=%v", n, err)
	}
	cb.Close(ctx)

	srv.Stop()
	if c, err := pgx.Connect(ctx, a); err == nil {
		c.Close(ctx)
		t.Error("connected after Stop")
	}
}

// TestAlsoListen checks that the server answers on the extra address too,
// through a DSN from Via. (127.0.0.2 stands in for a bridge address: any
// 127/8 address is local without setup.)
func TestAlsoListen(t *testing.T) {
	srv := pgtest.Start(t, pgtest.AlsoListen(netip.MustParsePrefix("127.0.0.2/32")))
	if host, _, _ := net.SplitHostPort(srv.AlsoAddr); host != "127.0.0.2" {
		t.Fatalf("AlsoAddr = %q", srv.AlsoAddr)
	}
	dsn := pgtest.Via(srv.NewDatabase(t), srv.AlsoAddr)
	if !strings.Contains(dsn, srv.AlsoAddr) {
		t.Fatalf("Via: %s", dsn)
	}
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect via %s: %v", srv.AlsoAddr, err)
	}
	c.Close(t.Context())
}
