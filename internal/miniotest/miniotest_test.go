package miniotest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/miniotest"
)

func TestRepoRoot(t *testing.T) {
	root, err := miniotest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "install-minio.sh")); err != nil {
		t.Fatalf("root %s does not hold scripts/install-minio.sh: %v", root, err)
	}
}

// TestStopRestart checks that data survives a restart on the same endpoint
// and that requests fail while the server is down.
func TestStopRestart(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := t.Context()
	cfg := srv.S3Config()
	cfg.MaxRetries = -1 // fail fast while the server is down
	s, err := coldstore.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("survives restarts")
	if err := s.Put(ctx, "seg/1", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	endpoint := srv.Endpoint

	srv.Stop()
	srv.Stop() // idempotent
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.Head(sctx, "seg/1")
	if err == nil || errors.Is(err, coldstore.ErrNotFound) {
		t.Fatalf("Head while stopped: err = %v, want a connection error", err)
	}
	t.Logf("while stopped: %v", err)

	start := time.Now()
	srv.Restart(t)
	t.Logf("restart took %v", time.Since(start))
	if srv.Endpoint != endpoint {
		t.Fatalf("endpoint changed from %s to %s", endpoint, srv.Endpoint)
	}
	rc, err := s.Get(ctx, "seg/1", 0, -1) // the same client works again
	if err != nil {
		t.Fatalf("Get after restart: %v\n%s", err, srv.Output())
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restart read %q, %v", got, err)
	}
}

// TestIndependentServers checks that two servers can run side by side.
func TestIndependentServers(t *testing.T) {
	a, b := miniotest.Start(t), miniotest.Start(t)
	if a.Endpoint == b.Endpoint || a.DataDir() == b.DataDir() || a.SecretKey == b.SecretKey {
		t.Fatalf("servers share settings: %s %s", a.Endpoint, b.Endpoint)
	}
}

// TestAlsoListen checks that the bucket is reachable through AlsoEndpoint,
// before and after a restart of the server. (127.0.0.2 stands in for a
// bridge address: any 127/8 address is local without setup.)
func TestAlsoListen(t *testing.T) {
	srv := miniotest.Start(t, miniotest.AlsoListen(netip.MustParseAddr("127.0.0.2")))
	if !strings.HasPrefix(srv.AlsoEndpoint, "http://127.0.0.2:") {
		t.Fatalf("AlsoEndpoint = %q", srv.AlsoEndpoint)
	}
	ctx := t.Context()
	cfg := srv.S3Config()
	cfg.Endpoint = srv.AlsoEndpoint
	s, err := coldstore.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("through the relay")
	if err := s.Put(ctx, "seg/2", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	got, err := srv.ReadObject(ctx, srv.Bucket, "seg/2")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}
	rc, err := s.Get(ctx, "seg/2", 0, -1)
	if err != nil {
		t.Fatalf("Get through the relay after restart: %v", err)
	}
	got, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("through the relay after restart read %q, %v", got, err)
	}
}
