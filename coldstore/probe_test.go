package coldstore_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/miniotest"
)

func TestProbeLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cold")
	s, err := coldstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), s); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), s); err == nil {
		t.Fatal("probe of a removed directory succeeded")
	}
}

// listOnly hides a store's Probe method, so Probe falls back to List.
type listOnly struct {
	coldstore.Store
	err error
}

func (s listOnly) List(ctx context.Context, prefix string) iter.Seq2[coldstore.ObjectInfo, error] {
	if s.err != nil {
		return func(yield func(coldstore.ObjectInfo, error) bool) { yield(coldstore.ObjectInfo{}, s.err) }
	}
	return s.Store.List(ctx, prefix)
}

func TestProbeFallsBackToList(t *testing.T) {
	local, err := coldstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), listOnly{Store: local}); err != nil {
		t.Fatalf("empty store: %v", err)
	}
	if err := local.Put(t.Context(), "a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), listOnly{Store: local}); err != nil {
		t.Fatalf("store with an object: %v", err)
	}
	boom := errors.New("boom")
	if err := coldstore.Probe(t.Context(), listOnly{Store: local, err: boom}); !errors.Is(err, boom) {
		t.Fatalf("failing list: %v", err)
	}
}

func TestProbeS3(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := srv.S3Config()
	cfg.MaxRetries = -1 // fail fast once MinIO is stopped
	s, err := coldstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), s); err != nil {
		t.Fatalf("probe: %v", err)
	}
	missing := cfg
	missing.Bucket = "no-such-bucket"
	sm, err := coldstore.NewS3(t.Context(), missing)
	if err != nil {
		t.Fatal(err)
	}
	if err := coldstore.Probe(t.Context(), sm); err == nil {
		t.Error("probe of a missing bucket succeeded")
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := coldstore.Probe(ctx, s); err == nil {
		t.Error("probe of a stopped server succeeded")
	}
}
