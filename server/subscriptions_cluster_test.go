package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/subscriptions"
)

// startReachableNode starts a cluster node whose advertise URL is its
// own listener, so that the other nodes forward to it.
func startReachableNode(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.AdvertiseURL = "http://" + ln.Addr().String()
	cfg.DataDir = t.TempDir()
	cfg.Logger = discard()
	s, err := New(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s.Handler()}}
	hs.Start()
	t.Cleanup(func() { closeServer(s, hs) })
	return s, hs.URL + "/v1/stream/"
}

// TestClusterSubscriptions: a subscription created through node a fires
// for a stream node b owns, once per wake, its callback and deletion go
// through b; a pull-wake subscription's wake event goes from b, which
// hears the append, to the wake stream a owns.
func TestClusterSubscriptions(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	node := func(id string) (*Server, string) {
		return startReachableNode(t, Config{
			Cluster:       Cluster{DSN: dsn, NodeID: id, Heartbeat: 100 * time.Millisecond, TTL: time.Second},
			Subscriptions: SubscriptionConfig{Webhooks: true, WebhookAllowPrivate: true},
		})
	}
	a, urlA := node("a")
	b, urlB := node("b")
	waitUntil(t, "both nodes live", func() bool { return len(a.Cluster().LiveNodes()) == 2 && len(b.Cluster().LiveNodes()) == 2 })
	ownedBy := func(node, prefix string) string {
		for i := 0; ; i++ {
			p := fmt.Sprintf("%s/%d", prefix, i)
			if o, err := a.Cluster().OwnerOf(context.Background(), p); err != nil {
				t.Fatal(err)
			} else if o.NodeID == node {
				return p
			}
		}
	}
	path := ownedBy("b", "subs")

	got := make(chan subscriptions.Notification, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n subscriptions.Notification
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		got <- n
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()

	sub := urlA + "__ds/subscriptions/s1"
	httpcall.Do(t, http.MethodPut, sub, `{"type":"webhook","pattern":"subs/*","webhook":{"url":"`+hook.URL+`"}}`,
		"Content-Type", "application/json").Want(t, http.StatusCreated)
	// Created and appended to through a, which forwards both to b.
	httpcall.Do(t, http.MethodPut, urlA+path, "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
	tail := httpcall.Do(t, http.MethodPost, urlA+path, "hello", "Content-Type", "text/plain").
		Want(t, http.StatusNoContent).Header.Get("Stream-Next-Offset")

	var n subscriptions.Notification
	select {
	case n = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook for an append to b's stream")
	}
	if len(n.Streams) != 1 || n.Streams[0].Path != path || n.Streams[0].TailOffset != tail || !n.Streams[0].HasPending {
		t.Fatalf("notification = %+v, want %s pending to %s", n, path, tail)
	}
	// The callback goes to b.
	ack := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":%q,"offset":%q}],"done":true}`, n.WakeID, n.Generation, path, tail)
	httpcall.Do(t, http.MethodPost, urlB+"__ds/subscriptions/s1/callback", ack,
		"Content-Type", "application/json", "Authorization", "Bearer "+n.CallbackToken).Want(t, http.StatusOK)
	var v subscriptions.View
	if err := json.Unmarshal([]byte(httpcall.Do(t, http.MethodGet, urlB+"__ds/subscriptions/s1", "").Want(t, http.StatusOK).Body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Streams) != 1 || v.Streams[0].AckedOffset != tail {
		t.Fatalf("b's view = %+v, want %s acked at %s", v, path, tail)
	}
	select {
	case extra := <-got:
		t.Fatalf("a second webhook for one wake: %+v", extra)
	case <-time.After(500 * time.Millisecond):
	}

	// A pull-wake subscription whose wake stream a owns, created through
	// b: b hears the append and appends the wake event through a; the
	// claim goes to a, the ack to b.
	wake := ownedBy("a", "wake")
	httpcall.Do(t, http.MethodPut, urlB+wake, "", "Content-Type", "application/json").Want(t, http.StatusCreated)
	httpcall.Do(t, http.MethodPut, urlB+"__ds/subscriptions/p1", `{"type":"pull-wake","streams":[`+fmt.Sprintf("%q", path)+`],"wake_stream":`+fmt.Sprintf("%q", wake)+`}`,
		"Content-Type", "application/json").Want(t, http.StatusCreated)
	tail = httpcall.Do(t, http.MethodPost, urlB+path, "again", "Content-Type", "text/plain").
		Want(t, http.StatusNoContent).Header.Get("Stream-Next-Offset")
	select { // s1 matches too: its next wake
	case n2 := <-got:
		if n2.SubscriptionID != "s1" || n2.Generation != n.Generation+1 {
			t.Fatalf("second webhook = %+v", n2)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no second webhook for s1")
	}
	var events []subscriptions.WakeEvent
	waitUntil(t, "a wake event in a's stream", func() bool {
		r := httpcall.Do(t, http.MethodGet, urlB+wake+"?offset=-1", "").Want(t, http.StatusOK)
		return json.Unmarshal([]byte(r.Body), &events) == nil && len(events) > 0
	})
	if e := events[0]; e.SubscriptionID != "p1" || e.Stream != path || len(events) != 1 {
		t.Fatalf("wake events = %+v", events)
	}
	var claim subscriptions.Claim
	if err := json.Unmarshal([]byte(httpcall.Do(t, http.MethodPost, urlA+"__ds/subscriptions/p1/claim", `{"worker":"w1"}`,
		"Content-Type", "application/json").Want(t, http.StatusOK).Body), &claim); err != nil {
		t.Fatal(err)
	}
	if len(claim.Streams) != 1 || claim.Streams[0].TailOffset != tail || !claim.Streams[0].HasPending {
		t.Fatalf("claim = %+v, want %s pending to %s", claim, path, tail)
	}
	ack = fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":%q,"offset":%q}],"done":true}`, claim.WakeID, claim.Generation, path, tail)
	httpcall.Do(t, http.MethodPost, urlB+"__ds/subscriptions/p1/ack", ack,
		"Content-Type", "application/json", "Authorization", "Bearer "+claim.Token).Want(t, http.StatusOK)
	httpcall.Do(t, http.MethodPost, urlA+"__ds/subscriptions/p1/claim", `{"worker":"w2"}`,
		"Content-Type", "application/json").Want(t, http.StatusConflict) // NO_PENDING_WORK

	// Deleted through b: a answers 404, and appends fire nothing.
	httpcall.Do(t, http.MethodDelete, urlB+"__ds/subscriptions/s1", "").Want(t, http.StatusNoContent)
	httpcall.Do(t, http.MethodGet, sub, "").Want(t, http.StatusNotFound)
	httpcall.Do(t, http.MethodPost, urlB+path, "more", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
	select {
	case extra := <-got:
		t.Fatalf("a webhook after the subscription was deleted: %+v", extra)
	case <-time.After(500 * time.Millisecond):
	}
}
