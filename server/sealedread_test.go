package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/sequencer"
)

// sealedNode is one node of TestClusterSealedReads: its server and the
// base URL of its streams.
type sealedNode struct {
	s    *Server
	base string
}

// startSealedNode runs a cluster node on a loopback listener it
// advertises, so that the other nodes forward to it, with cfg's read and
// rotation settings and the shared cold store in coldDir.
func startSealedNode(t testing.TB, id, dsn, coldDir string, cfg Config) sealedNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Logger = t.TempDir(), discard()
	cfg.ColdStore = coldstore.Config{Kind: coldstore.KindLocal, Dir: coldDir}
	cfg.Cluster = Cluster{DSN: dsn, NodeID: id, AdvertiseURL: "http://" + ln.Addr().String(),
		Heartbeat: 100 * time.Millisecond, TTL: 2 * time.Second}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() {
		if err := closeServer(s, hs); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
	})
	return sealedNode{s: s, base: hs.URL + "/v1/stream/"}
}

// readCounts is what a node's metrics say about reads of other nodes'
// streams: answered locally, forwarded.
func readCounts(t testing.TB, n sealedNode) (local, forwarded float64) {
	t.Helper()
	fams, err := n.s.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "durable_streams_sealed_reads_local_total":
				local += m.GetCounter().GetValue()
			case "durable_streams_forwarded_requests_total":
				forwarded += m.GetCounter().GetValue()
			}
		}
	}
	return local, forwarded
}

// TestClusterSealedReads checks that a node answers catch-up reads of
// sealed data of a stream another node owns itself, with the owner's
// bytes and headers, and forwards everything else: for every offset of a
// raw and a JSON stream (chunk starts and positions inside chunks), plain,
// gzip and If-None-Match, the non-owner's answer equals the owner's, and
// the non-owner's metrics show a local answer exactly for chunks in an
// uploaded segment before the last indexed one; a node without bounded
// responses forwards every catch-up read. A deleted stream is not
// served from its old segments, and a stream created again at its path
// gets its own bytes.
func TestClusterSealedReads(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	coldDir := t.TempDir()
	cfg := Config{ReadResponseMax: 100, Rotation: sequencer.RotationPolicy{Enabled: true, SealBytes: 300}}
	a := startSealedNode(t, "a", dsn, coldDir, cfg)
	b := startSealedNode(t, "b", dsn, coldDir, cfg)
	// c answers catch-up reads to the tail (no ReadResponseMax): those
	// reach hot data, so it forwards every one.
	unbounded := cfg
	unbounded.ReadResponseMax = 0
	c := startSealedNode(t, "c", dsn, coldDir, unbounded)
	waitUntil(t, "the nodes live", func() bool {
		return len(a.s.Cluster().LiveNodes()) == 3 && len(b.s.Cluster().LiveNodes()) == 3 && len(c.s.Cluster().LiveNodes()) == 3
	})
	ownedByA := func(prefix string) string {
		for i := range 64 {
			p := fmt.Sprintf("%s/%d", prefix, i)
			if o, err := a.s.Cluster().OwnerOf(context.Background(), p); err == nil && o.NodeID == "a" {
				return p
			}
		}
		t.Fatalf("a owns no path under %s", prefix)
		return ""
	}

	for _, tt := range []struct {
		name, contentType string
		msg               func(i int) string
	}{
		{"text", "text/plain", func(i int) string { return fmt.Sprintf("line %03d of a sealed stream, compressible text\n", i) }},
		{"json", "application/json", func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("j", 40+i%7)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := ownedByA("sealed/" + tt.name)
			fillStream(t, a, path, tt.contentType, tt.msg, 40)
			rows := waitIndexed(t, a.s.Catalog(), path, 4)
			offsets := readOffsets(t, a.base+path, rows)
			if len(offsets) < 20 {
				t.Fatalf("only %d offsets", len(offsets))
			}
			var locals, forwards int
			for _, off := range offsets {
				for _, h := range [][]string{nil, {"Accept-Encoding", "gzip"}} {
					url := a.base + path + "?offset=" + off.String()
					owner := httpcall.Do(t, http.MethodGet, url, "", h...)
					// A JSON read inside a message is the owner's 400.
					wantLocal := servedLocally(rows, off) && owner.Status == http.StatusOK
					l0, f0 := readCounts(t, b)
					got := httpcall.Do(t, http.MethodGet, b.base+path+"?offset="+off.String(), "", h...)
					l1, f1 := readCounts(t, b)
					sameAnswer(t, "GET "+off.String()+" "+strings.Join(h, ": "), owner, got)
					if local := l1 > l0; local != wantLocal || (f1 > f0) == local {
						t.Errorf("offset %s %v: local %v (%v→%v), forwarded %v→%v; want local %v", off, h, local, l0, l1, f0, f1, wantLocal)
					}
					if wantLocal {
						locals++
					} else {
						forwards++
					}
					if etag := owner.Header.Get("ETag"); etag != "" && owner.Status == http.StatusOK {
						h := append(slices.Clone(h), "If-None-Match", etag)
						sameAnswer(t, "revalidate "+off.String(), httpcall.Do(t, http.MethodGet, url, "", h...),
							httpcall.Do(t, http.MethodGet, b.base+path+"?offset="+off.String(), "", h...).Want(t, http.StatusNotModified))
					}
				}
			}
			l0, f0 := readCounts(t, c)
			for _, off := range offsets[:3] {
				got := httpcall.Do(t, http.MethodGet, c.base+path+"?offset="+off.String(), "")
				sameAnswer(t, "unbounded GET "+off.String(), httpcall.Do(t, http.MethodGet, a.base+path+"?offset="+off.String(), ""), got)
			}
			if l1, f1 := readCounts(t, c); l1 != l0 || f1-f0 != 3 {
				t.Errorf("unbounded node: %v reads answered locally, %v forwarded; want 0 and 3", l1-l0, f1-f0)
			}
			t.Logf("%d offsets, %d segments: %d reads answered locally, %d forwarded", len(offsets), len(rows), locals, forwards)
			if locals == 0 || forwards == 0 {
				t.Errorf("%d reads answered locally, %d forwarded: want both", locals, forwards)
			}
		})
	}

	t.Run("deleted and created again", func(t *testing.T) {
		path := ownedByA("sealed/again")
		msg := func(i int) string { return fmt.Sprintf("first life, message %03d ........................\n", i) }
		fillStream(t, a, path, "text/plain", msg, 30)
		rows := waitIndexed(t, a.s.Catalog(), path, 3)
		off := offset.Token{Segment: rows[0].Seg, Position: rows[0].EndPos}
		first := httpcall.Do(t, http.MethodGet, b.base+path+"?offset="+off.String(), "").Want(t, http.StatusOK)
		httpcall.Do(t, http.MethodDelete, a.base+path, "").Want(t, http.StatusNoContent)
		l0, _ := readCounts(t, b)
		httpcall.Do(t, http.MethodGet, b.base+path+"?offset="+off.String(), "").Want(t, http.StatusNotFound)
		if l1, _ := readCounts(t, b); l1 != l0 {
			t.Errorf("a read of a deleted stream was answered locally")
		}
		msg = func(i int) string { return fmt.Sprintf("second life, message %03d .......................\n", i) }
		fillStream(t, a, path, "text/plain", msg, 30)
		again := waitIndexed(t, a.s.Catalog(), path, 3)
		if again[0].StreamID == rows[0].StreamID {
			t.Fatalf("the stream created again has the old id %d", rows[0].StreamID)
		}
		off = offset.Token{Segment: again[0].Seg, Position: again[0].EndPos}
		second := httpcall.Do(t, http.MethodGet, b.base+path+"?offset="+off.String(), "").Want(t, http.StatusOK)
		if second.Body == first.Body || !strings.HasPrefix(second.Body, "second life") {
			t.Errorf("after the stream was created again, b answered %q (before: %q)", second.Body, first.Body)
		}
		sameAnswer(t, "created again", httpcall.Do(t, http.MethodGet, a.base+path+"?offset="+off.String(), ""), second)
	})
}

// fillStream creates the stream at path on n and appends n messages to it.
func fillStream(t testing.TB, n sealedNode, path, contentType string, msg func(int) string, count int) {
	t.Helper()
	httpcall.Do(t, http.MethodPut, n.base+path, "", "Content-Type", contentType).Want(t, http.StatusCreated)
	for i := range count {
		httpcall.Do(t, http.MethodPost, n.base+path, msg(i), "Content-Type", contentType).Want(t, http.StatusNoContent)
	}
}

// waitIndexed waits until the stream at path has at least min segments
// in the index, all uploaded and no more coming (the count stayed the
// same for a while: rows are recorded as uploads start), and returns its
// rows.
func waitIndexed(t testing.TB, cat *catalog.Catalog, path string, min int) []catalog.Segment {
	t.Helper()
	var rows []catalog.Segment
	stable := time.Now()
	done := func() bool {
		es, err := cat.ListSegments(context.Background(), catalog.SegmentFilter{StreamPath: path})
		if err != nil || len(es) < min {
			return false
		}
		if len(es) != len(rows) {
			stable = time.Now()
		}
		rows = rows[:0]
		for _, e := range es {
			if e.State != segment.Uploaded {
				return false
			}
			rows = append(rows, e.Segment)
		}
		return time.Since(stable) > 300*time.Millisecond
	}
	for deadline := time.Now().Add(15 * time.Second); !done(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s to be uploaded", path)
		}
	}
	return rows
}

// readOffsets reads the stream at url from the start to its tail,
// following Stream-Next-Offset, and returns every offset it was handed
// plus, for raw streams, a position inside each chunk of the index rows.
func readOffsets(t *testing.T, url string, rows []catalog.Segment) []offset.Token {
	t.Helper()
	offs := []offset.Token{offset.Zero}
	for {
		r := httpcall.Do(t, http.MethodGet, url+"?offset="+offs[len(offs)-1].String(), "").Want(t, http.StatusOK)
		next, err := offset.Parse(r.Header.Get("Stream-Next-Offset"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Get("Stream-Up-To-Date") == "true" {
			break
		}
		offs = append(offs, next)
	}
	for _, g := range rows {
		// Inside a segment: a raw stream's chunk may start anywhere, a
		// JSON stream's read there is a 400 from either node.
		offs = append(offs, offset.Token{Segment: g.Seg, Position: g.FirstPos + 7})
	}
	// A token naming the wrong segment for its position.
	offs = append(offs, offset.Token{Segment: rows[len(rows)-1].Seg, Position: rows[0].FirstPos + 3})
	return offs
}

// servedLocally is the expectation for a read at off: in an uploaded
// segment of rows that is not the last one, and off names the segment of
// the byte before it, as the owner's tokens do.
func servedLocally(rows []catalog.Segment, off offset.Token) bool {
	for i, g := range rows[:len(rows)-1] {
		if g.FirstPos <= off.Position && off.Position < g.EndPos {
			before := g.Seg
			if off.Position == g.FirstPos && i > 0 {
				before = rows[i-1].Seg
			}
			return off.Position == 0 || off.Segment == before
		}
	}
	return false
}

// sameAnswer fails unless got has the status, body and headers of want,
// except those that differ between any two answers (Date) or nodes.
func sameAnswer(t *testing.T, what string, want, got httpcall.Response) {
	t.Helper()
	if got.Status != want.Status || got.Body != want.Body {
		t.Errorf("%s: got %d %q, want %d %q", what, got.Status, got.Body, want.Status, want.Body)
	}
	skip := map[string]bool{"Date": true, "X-Request-Id": true}
	for k := range want.Header {
		if !skip[k] && !slices.Equal(got.Header.Values(k), want.Header.Values(k)) {
			t.Errorf("%s: header %s = %q, want %q", what, k, got.Header.Values(k), want.Header.Values(k))
		}
	}
	for k := range got.Header {
		if !skip[k] && want.Header.Values(k) == nil {
			t.Errorf("%s: extra header %s = %q", what, k, got.Header.Values(k))
		}
	}
}

// BenchmarkClusterSealedRead compares a bounded catch-up read of a sealed
// chunk of a stream node a owns, sent to a itself, to node b, which
// answers it from the cold tier, and to node c, which forwards it to a
// (c has no bounded responses, so it forwards as every node did before
// it could answer sealed reads). Each read's object is in the reading
// node's disk cache after the first.
func BenchmarkClusterSealedRead(b *testing.B) {
	pg := pgtest.Start(b)
	dsn := pg.NewDatabase(b)
	coldDir := b.TempDir()
	cfg := Config{ReadResponseMax: 4096, Rotation: sequencer.RotationPolicy{Enabled: true, SealBytes: 16 << 10}}
	nodes := map[string]sealedNode{"a": startSealedNode(b, "a", dsn, coldDir, cfg), "b": startSealedNode(b, "b", dsn, coldDir, cfg)}
	unbounded := cfg
	unbounded.ReadResponseMax = 0
	nodes["c"] = startSealedNode(b, "c", dsn, coldDir, unbounded)
	for deadline := time.Now().Add(15 * time.Second); len(nodes["b"].s.Cluster().LiveNodes()) != 3 || len(nodes["c"].s.Cluster().LiveNodes()) != 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the nodes do not see each other live")
		}
	}
	path := ""
	for i := 0; path == ""; i++ {
		p := fmt.Sprintf("bench/%d", i)
		if o, err := nodes["a"].s.Cluster().OwnerOf(context.Background(), p); err == nil && o.NodeID == "a" {
			path = p
		}
	}
	line := strings.Repeat("x", 1023) + "\n"
	fillStream(b, nodes["a"], path, "application/octet-stream", func(int) string { return line }, 64)
	rows := waitIndexed(b, nodes["a"].s.Catalog(), path, 3)
	query := "?offset=" + offset.Token{Segment: rows[0].Seg, Position: rows[0].EndPos}.String()
	for _, via := range []string{"a", "b", "c"} {
		b.Run("via="+via, func(b *testing.B) {
			url := nodes[via].base + path + query
			for b.Loop() {
				if status, n := httpcall.Drain(b, http.DefaultClient, url); status != http.StatusOK || n != 4096 {
					b.Fatalf("GET through %s: %d, %d bytes", via, status, n)
				}
			}
		})
	}
}
