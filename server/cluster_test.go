package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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

	if err := closeServer(s, hs); err != nil {
		t.Fatal(err)
	}
	_, hs = startServer(t, cfg)
	url = hs.URL + "/v1/stream/cluster/a"
	if r := httpcall.Do(t, http.MethodGet, url, "").Want(t, http.StatusOK); r.Body != "hello" {
		t.Errorf("GET after restart = %q, want \"hello\"", r.Body)
	}
	httpcall.Do(t, http.MethodGet, hs.URL+"/v1/stream/cluster/missing", "").Want(t, http.StatusNotFound)
}

// TestClusterTwoNodes runs two nodes on one PostgreSQL database, the
// second one reaching it through a proxy the test can cut: each stream is
// served by exactly one node (its rendezvous choice), the other answering
// 503; once the second node's renewals fail it stops acknowledging writes
// within the lease time while the first node goes on; after healing it
// continues its streams with every acknowledged append there once.
func TestClusterTwoNodes(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	link := startTCPProxy(t, pg.Addr)
	const ttl = time.Second
	node := func(id, dsn string) (*Server, string) {
		c := Cluster{DSN: dsn, NodeID: id, AdvertiseURL: "http://127.0.0.1:1", Heartbeat: 100 * time.Millisecond, TTL: ttl}
		s, hs := startServer(t, Config{Logger: discard(), Cluster: c})
		return s, hs.URL + "/v1/stream/"
	}
	a, urlA := node("a", dsn)
	b, urlB := node("b", strings.Replace(dsn, pg.Addr, link.addr(), 1))
	base := map[string]string{"a": urlA, "b": urlB}
	other := map[string]string{"a": "b", "b": "a"}
	waitUntil(t, "both nodes live", func() bool { return len(a.Cluster().LiveNodes()) == 2 && len(b.Cluster().LiveNodes()) == 2 })

	owner := map[string]string{}
	ofB := ""
	for i := range 16 {
		path := fmt.Sprintf("two/%d", i)
		o, err := a.Cluster().OwnerOf(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		owner[path] = o.NodeID
		if o.NodeID == "b" {
			ofB = path
		}
		for id, s := range map[string]*Server{"a": a, "b": b} {
			u, err := ClusterRouter{Cluster: s.Cluster()}.Route(context.Background(), path)
			if err != nil || (id == o.NodeID) != (u == nil) || (u != nil && u.String() != "http://127.0.0.1:1") {
				t.Fatalf("node %s: Route(%q) = %v, %v; owner %s", id, path, u, err, o.NodeID)
			}
		}
		httpcall.Do(t, http.MethodPut, base[o.NodeID]+path, "", "Content-Type", "text/plain").Want(t, http.StatusCreated)
		httpcall.Do(t, http.MethodPost, base[o.NodeID]+path, "x", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
		r := httpcall.Do(t, http.MethodPost, base[other[o.NodeID]]+path, "y", "Content-Type", "text/plain").Want(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("503 of the node not owning %q has no Retry-After", path)
		}
		httpcall.Do(t, http.MethodGet, base[other[o.NodeID]]+path, "").Want(t, http.StatusServiceUnavailable)
	}
	if ofB == "" || len(b.Cluster().LiveNodes()) != 2 {
		t.Fatalf("b owns none of the streams (%v)", owner)
	}
	ofA := ""
	for p, n := range owner {
		if n == "a" {
			ofA = p
		}
	}

	// Cut b from PostgreSQL while appending to one of its streams: every
	// append sent later than the lease time after the cut is refused.
	acked := "x"
	cut := time.Now()
	link.cut()
	var firstRefused time.Duration
	for time.Since(cut) < 3*ttl {
		sent := time.Now()
		r := httpcall.Do(t, http.MethodPost, urlB+ofB, "b", "Content-Type", "text/plain")
		switch r.Status {
		case http.StatusNoContent:
			acked += "b"
			if sent.Sub(cut) >= ttl {
				t.Fatalf("b acknowledged an append sent %v after it was cut off, past the lease time %v", sent.Sub(cut), ttl)
			}
		case http.StatusServiceUnavailable:
			if firstRefused == 0 {
				firstRefused = time.Since(cut)
			}
		default:
			t.Fatalf("append to b while cut off: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("b refused appends %v after the cut (lease time %v)", firstRefused, ttl)
	if r := httpcall.Do(t, http.MethodGet, strings.Replace(urlB, "/v1/stream/", "/readyz", 1), "").Want(t, http.StatusServiceUnavailable); !strings.Contains(r.Body, `"cluster":"unreachable`) {
		t.Errorf("/readyz of the fenced node = %s, want the cluster check failing", r.Body)
	}
	if firstRefused == 0 {
		t.Fatal("b never refused an append while cut off from PostgreSQL")
	}
	httpcall.Do(t, http.MethodPost, urlA+ofA, "a", "Content-Type", "text/plain").Want(t, http.StatusNoContent)
	httpcall.Do(t, http.MethodPost, urlA+ofB, "a", "Content-Type", "text/plain").Want(t, http.StatusServiceUnavailable)

	// Healed, b takes its streams back (a new epoch: its leases expired)
	// and continues them.
	link.heal()
	healed := time.Now()
	waitUntil(t, "b to acknowledge again", func() bool {
		return httpcall.Do(t, http.MethodPost, urlB+ofB, "c", "Content-Type", "text/plain").Status == http.StatusNoContent
	})
	acked += "c"
	httpcall.Do(t, http.MethodGet, strings.Replace(urlB, "/v1/stream/", "/readyz", 1), "").Want(t, http.StatusOK)
	t.Logf("b acknowledged again %v after healing", time.Since(healed))
	if got := httpcall.Do(t, http.MethodGet, urlB+ofB, "").Want(t, http.StatusOK).Body; got != acked {
		t.Errorf("b's stream after healing = %q, want every acknowledged append once: %q", got, acked)
	}
	httpcall.Do(t, http.MethodPost, urlA+ofB, "a", "Content-Type", "text/plain").Want(t, http.StatusServiceUnavailable)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpProxy forwards loopback connections to a target until cut: then it
// drops every connection and holds new ones without forwarding a byte, as
// a network partition does, until healed.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.heal()
		wg.Wait()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// track registers c to be closed by cut or heal; false if it must not be
// used (cut, for an upstream connection).
func (p *tcpProxy) track(c net.Conn, upstream bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if upstream && p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) serve(c net.Conn) {
	defer c.Close()
	p.track(c, false)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up, true) {
		io.Copy(io.Discard, c) // held, unanswered, until healed
		return
	}
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
}

func (p *tcpProxy) closeAll() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.closeAll()
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	p.closeAll()
}
