package server

import (
	"context"
	"database/sql"
	"net/http"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestClusterAdoptsUnleasedStreams: a node whose catalog has streams
// without lease rows (a single node's PostgreSQL catalog upgraded to
// cluster mode) adopts, at start, those whose hot logs it has, and serves
// them.
func TestClusterAdoptsUnleasedStreams(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Logger: discard(), Cluster: Cluster{DSN: dsn, NodeID: "n1", AdvertiseURL: "http://127.0.0.1:1"}}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptestServer(s)
	url := hs.URL + "/v1/stream/old/a"
	httpcall.Do(t, http.MethodPut, url, "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
	httpcall.Do(t, http.MethodPost, url, "before", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
	row, err := s.Catalog().Get(context.Background(), "old/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := closeServer(s, hs); err != nil {
		t.Fatal(err)
	}

	// The catalog as a single node left it: no lease rows.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM stream_leases"); err != nil {
		t.Fatal(err)
	}

	s, hs = startServer(t, cfg)
	l, err := s.Catalog().GetLease(context.Background(), row.ID)
	if err != nil || l.Node != "n1" {
		t.Fatalf("lease after the start = %+v, %v; want n1's", l, err)
	}
	url = hs.URL + "/v1/stream/old/a"
	httpcall.Do(t, http.MethodPost, url, "+after", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
	if r := httpcall.Do(t, http.MethodGet, url+"?offset=-1", "").Want(t, http.StatusOK); r.Body != "before+after" {
		t.Errorf("GET after the adoption = %q, want %q", r.Body, "before+after")
	}
}
