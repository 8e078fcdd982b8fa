package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/subscriptions"
)

// TestSubscriptionsOverRealStreams drives a pull-wake subscription over
// the server's own streams (tails, listing, wake events through the
// registry), deletes a linked stream, and restarts the server: keys,
// subscription, lease and cursors survive.
func TestSubscriptionsOverRealStreams(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	root := "http://streams.test/v1/stream"
	s, err := New(ctx, Config{DataDir: dir, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptestServer(s)
	httpcall.Do(t, "PUT", hs.URL+"/v1/stream/wake", "[]", "Content-Type", "application/json").Want(t, http.StatusCreated)
	httpcall.Do(t, "PUT", hs.URL+"/v1/stream/events/old", "history", "Content-Type", "text/plain").Want(t, http.StatusCreated)
	m := s.Subscriptions()
	if _, _, err := m.Put(ctx, "p", &subscriptions.CreateRequest{Type: "pull-wake", Pattern: "events/*", WakeStream: "wake"}, root); err != nil {
		t.Fatal(err)
	}
	v, _ := m.Get(ctx, "p", root)
	if len(v.Streams) != 1 || v.Streams[0].AckedOffset == "-1" {
		t.Fatalf("existing stream not linked at its tail: %+v", v.Streams)
	}
	tail := httpcall.Do(t, "PUT", hs.URL+"/v1/stream/events/new", "abc", "Content-Type", "text/plain").Want(t, http.StatusCreated).Header.Get("Stream-Next-Offset")
	// The append writes a wake event to the wake stream ("[]" is 0 bytes).
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := s.Registry().Acquire(ctx, "wake", false)
		if err != nil {
			t.Fatal(err)
		}
		pos := h.Snapshot().TailToken(ctx).Position
		h.Release()
		if pos > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no wake event in the wake stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	claim, err := m.Claim(ctx, "p", "w1")
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	httpcall.Do(t, "DELETE", hs.URL+"/v1/stream/events/old", "").Want(t, http.StatusNoContent)
	waitHooks(t, s)
	if v, _ := m.Get(ctx, "p", root); len(v.Streams) != 1 || v.Streams[0].Path != "events/new" {
		t.Fatalf("links after deleting events/old: %+v", v.Streams)
	}
	if st := m.Stats(); st.Subscriptions != 1 || st.Wakes != 1 || st.WakeEvents != 1 || st.Failures != 0 {
		t.Errorf("stats = %+v", st)
	}
	if mb := httpcall.Do(t, "GET", hs.URL+"/metrics", "").Body; !strings.Contains(mb, "durable_streams_wake_events_total 1") {
		t.Errorf("metrics lack the wake events:\n%s", mb)
	}
	kid := m.JWKS().Keys[0].Kid
	hs.Close()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s2, _ := startServer(t, Config{DataDir: dir})
	m2 := s2.Subscriptions()
	if got := m2.JWKS().Keys[0].Kid; got != kid {
		t.Errorf("signing key changed across restart: %s, then %s", kid, got)
	}
	if _, err := m2.Claim(ctx, "p", "w2"); err == nil || !strings.Contains(err.Error(), subscriptions.CodeAlreadyClaimed) {
		t.Errorf("claim by another worker after restart: %v", err)
	}
	res, err := m2.Ack(ctx, "p", claim.Token, &subscriptions.AckRequest{WakeID: claim.WakeID, Generation: &claim.Generation,
		Acks: []subscriptions.Ack{{Stream: "events/new", Offset: tail}}, Done: true})
	if err != nil || res.NextWake {
		t.Fatalf("ack after restart: %+v, %v", res, err)
	}
	v, _ = m2.Get(ctx, "p", root)
	b, _ := json.Marshal(v.Streams)
	if len(v.Streams) != 1 || v.Streams[0].AckedOffset != tail {
		t.Errorf("cursor = %s, want %s", b, tail)
	}
}
