package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

func TestClusterValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Cluster
		ok   bool
	}{
		{"off", Cluster{}, true},
		{"complete", Cluster{DSN: "postgres://h/db", NodeID: "n1", AdvertiseURL: "http://10.0.0.1:4437"}, true},
		{"https", Cluster{DSN: "postgres://h/db", NodeID: "n1", AdvertiseURL: "https://n1.example"}, true},
		{"no node id", Cluster{DSN: "postgres://h/db", AdvertiseURL: "http://10.0.0.1:4437"}, false},
		{"no advertise URL", Cluster{DSN: "postgres://h/db", NodeID: "n1"}, false},
		{"advertise URL without host", Cluster{DSN: "postgres://h/db", NodeID: "n1", AdvertiseURL: "http://"}, false},
		{"advertise URL not http", Cluster{DSN: "postgres://h/db", NodeID: "n1", AdvertiseURL: "ftp://n1"}, false},
	}
	for _, tt := range tests {
		if err := tt.c.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestClusterCatalog runs a server whose catalog is PostgreSQL: streams
// created through it are in the shared database, survive a restart of the
// node.
func TestClusterCatalog(t *testing.T) {
	pg := pgtest.Start(t)
	cluster := Cluster{DSN: pg.NewDatabase(t), NodeID: "n1", AdvertiseURL: "http://127.0.0.1:1"}
	dataDir := t.TempDir()
	cfg := Config{DataDir: dataDir, Logger: discard(), Cluster: cluster}

	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptestServer(s)
	url := hs.URL + "/v1/stream/cluster/a"
	httpcall.Do(t, http.MethodPut, url, "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
	httpcall.Do(t, http.MethodPost, url, "hello", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
	rows, err := s.Catalog().List(context.Background(), "", "", 0)
	if err != nil || len(rows) != 1 || rows[0].ContentType != "text/plain" {
		t.Errorf("catalog rows %+v, %v; want the one stream", rows, err)
	}

	hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, hs = startServer(t, cfg)
	url = hs.URL + "/v1/stream/cluster/a"
	if r := httpcall.Do(t, http.MethodGet, url, "").Want(t, http.StatusOK); r.Body != "hello" {
		t.Errorf("GET after restart = %q, want \"hello\"", r.Body)
	}
	httpcall.Do(t, http.MethodGet, hs.URL+"/v1/stream/cluster/missing", "").Want(t, http.StatusNotFound)
}
