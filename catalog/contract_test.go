package catalog

import (
	"context"
	"testing"

	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// opener returns a fresh, empty catalog of one backend, closed when the
// test ends.
type opener func(t *testing.T) *Catalog

// contract lists the tests that every backend must pass unchanged: they
// define what the catalog's methods mean, whatever the database.
var contract = []struct {
	name string
	fn   func(*testing.T, opener)
}{
	{"InsertGetRoundTrip", testInsertGetRoundTrip},
	{"InsertDefaults", testInsertDefaults},
	{"InsertErrors", testInsertErrors},
	{"NotFound", testNotFound},
	{"ForkRefCountAndChildren", testForkRefCountAndChildren},
	{"Delete", testDelete},
	{"PathReusableAfterHardDelete", testPathReusableAfterHardDelete},
	{"AllocateIDConcurrent", testAllocateIDConcurrent},
	{"TouchMany", testTouchMany},
	{"Expired", testExpired},
	{"ExpiredFor", testExpiredFor},
	{"List", testList},
	{"ListLive", testListLive},
	{"SetClosed", testSetClosed},
	{"GCQueue", testGCQueue},
	{"ClusterStatus", testClusterStatus},
	{"CanceledContext", testCanceledContext},
	{"SegmentIndex", testSegmentIndex},
	{"Nodes", testNodes},
	{"Leases", testLeases},
	{"ClaimLease", testClaimLease},
	{"RenewLeases", testRenewLeases},
	{"AdoptLeases", testAdoptLeases},
	{"GuardSegmentWrites", testGuardSegmentWrites},
	{"Handoff", testHandoff},
	{"StreamSegments", testStreamSegments},
}

// backends are the catalog's databases; start returns the opener of one,
// starting whatever server it needs for the rest of the test.
var backends = []struct {
	name  string
	start func(t *testing.T) opener
}{
	{"sqlite", func(*testing.T) opener {
		return func(t *testing.T) *Catalog {
			c, _ := openTemp(t)
			return c
		}
	}},
	{"memory", func(*testing.T) opener {
		return func(t *testing.T) *Catalog {
			root := memdb.NewRoot()
			c, err := Open(context.Background(), root+"/catalog.db")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() {
				c.Close()
				memdb.DropAll(root)
			})
			return c
		}
	}},
	{"postgres", func(t *testing.T) opener {
		srv := pgtest.Start(t)
		return func(t *testing.T) *Catalog { return openPostgresTemp(t, srv.NewDatabase(t)) }
	}},
}

// TestContract runs the contract against every backend.
func TestContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			open := b.start(t)
			for _, tc := range contract {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
			}
		})
	}
}

// openPostgresTemp opens the catalog in the PostgreSQL database at dsn.
func openPostgresTemp(t *testing.T, dsn string) *Catalog {
	t.Helper()
	c, err := OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
