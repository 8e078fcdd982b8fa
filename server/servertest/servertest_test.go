package servertest_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/client"
	"github.com/streamtier/durable-streams/server"
	"github.com/streamtier/durable-streams/server/servertest"
)

func TestStartResetClose(t *testing.T) {
	ds := servertest.Start(t, server.Config{LongPollTimeout: 10 * time.Second})
	if !strings.HasPrefix(ds.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on loopback", ds.URL)
	}
	ctx := t.Context()
	c := ds.Client()
	s := c.Stream("orders/1")
	if _, err := s.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendJSON(ctx, map[string]int{"n": 1}, client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := ds.HTTPServer().Client().Head(ds.StreamURL("orders/1"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s: %v %v", ds.StreamURL("orders/1"), resp, err)
	}
	resp.Body.Close()

	// A long-poll in flight when Reset comes ends instead of holding the
	// old server open.
	md, _ := s.Head(ctx)
	polled := make(chan error, 1)
	go func() {
		r := s.Read(ctx, client.ReadOptions{Offset: md.NextOffset, Live: client.LiveLongPoll})
		defer r.Close()
		for {
			if _, err := r.Next(); err != nil {
				polled <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)

	oldDir, oldSrv := ds.DataDir(), ds.Server()
	if err := ds.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if ds.DataDir() == oldDir || ds.Server() == oldSrv {
		t.Error("Reset kept the server or its directory")
	}
	if _, err := os.Stat(oldDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old data dir remains: %v", err)
	}
	select {
	case err := <-polled:
		if !errors.Is(err, client.ErrNotFound) {
			t.Errorf("long-poll across Reset ended with %v, want ErrNotFound from the new server", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll still open after Reset")
	}
	// Same URL, empty server: the stream is gone, and can be made anew.
	if _, err := s.Head(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Head after Reset: %v, want ErrNotFound", err)
	}
	if cr, err := s.Create(ctx, client.CreateOptions{ContentType: "text/plain"}); err != nil || !cr.Created {
		t.Fatalf("Create after Reset: %+v %v", cr, err)
	}

	dir := ds.DataDir()
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ds.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(closeCtx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data dir remains after Close: %v", err)
	}
	if err := ds.Reset(closeCtx); err == nil {
		t.Error("Reset after Close succeeded")
	}
	if ds.Server() != nil {
		t.Error("Server after Close is not nil")
	}
}

func TestGivenDataDirIsKept(t *testing.T) {
	dir := t.TempDir()
	ds, err := servertest.New(server.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Client().Stream("x").Create(t.Context(), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ds.DataDir() == dir {
		t.Error("Reset reused the caller's directory")
	}
	if err := ds.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The caller's directory is the caller's: still there, with the data.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
		t.Errorf("the given data dir: %d entries, %v", len(ents), err)
	}
}

// TestMemoryReset: in memory mode there is no directory at all, and Reset
// still gives an empty server behind the same URL.
func TestMemoryReset(t *testing.T) {
	ds := servertest.Start(t, server.Config{Storage: server.StorageMemory})
	ctx := t.Context()
	s := ds.Client().Stream("orders/1")
	if _, err := s.Create(ctx, client.CreateOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if ds.DataDir() != "" {
		t.Errorf("DataDir %q in memory mode", ds.DataDir())
	}
	if err := ds.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Head after Reset: %v, want ErrNotFound", err)
	}
}
