package miniotest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
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
