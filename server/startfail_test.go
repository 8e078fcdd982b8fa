package server

import (
	"context"
	"testing"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// TestFailedStartReleasesWhatItOpened: a start that fails after the
// catalog, the registry and the uploader are running (here: the registry
// stream exists with another content type) leaves nothing open, so the
// same data directory starts again at once.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	text, err := protocol.ParseContentType("text/plain")
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Registry().Create(ctx, &sequencer.CreateRequest{Path: "reg", ContentType: &text})
	if err != nil {
		t.Fatal(err)
	}
	res.Handle.Release()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{DataDir: dir, RegistryStream: "reg"}); err == nil {
		t.Fatal("start with a registry stream of the wrong content type succeeded")
	}
	s, err = New(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
