package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSegmentGC checks that the objects of deleted streams are collected,
// and only those: a DELETEd stream's objects disappear within seconds, an
// expired stream's (Stream-TTL: 2) too, while a soft-deleted source keeps
// its objects as long as a fork of it exists — the fork reading its
// inherited data byte-identically from the cold tier — and deleting the
// fork collects both. A control stream keeps all its objects throughout.
func TestSegmentGC(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	env := startCold(t)
	srv, c := env.srv, env.client
	rng := rand.New(rand.NewPCG(4, 2))
	const ct = "application/octet-stream"

	del := newModel("cold/gc/del", srv.StreamURL("cold/gc/del"), ct)
	keep := newModel("cold/gc/keep", srv.StreamURL("cold/gc/keep"), ct)
	src := newModel("cold/gc/src", srv.StreamURL("cold/gc/src"), ct)
	ttl := newModel("cold/gc/ttl", srv.StreamURL("cold/gc/ttl"), ct)
	all := []*streamModel{del, keep, src, ttl}
	for _, m := range all {
		var hdr map[string]string
		if m == ttl {
			hdr = map[string]string{"Stream-TTL": "2"}
		}
		createStream(t, c, m.url, m.ct, hdr)
	}
	ids := map[*streamModel]int64{}
	for _, m := range all {
		ids[m] = streamID(t, c, m.url)
	}
	// The TTL stream is kept alive (every read renews it) until the test
	// lets it expire. lastTouch is when the last renewing read was sent.
	keepAlive := make(chan struct{})
	var (
		kaWG      sync.WaitGroup
		lastTouch time.Time
	)
	kaWG.Add(1)
	go func() {
		defer kaWG.Done()
		kc := loopbackClient(5 * time.Second)
		for {
			select {
			case <-keepAlive:
				return
			case <-time.After(300 * time.Millisecond):
			}
			sent := time.Now()
			resp, body, err := tryDo(context.Background(), kc, http.MethodGet, ttl.url+"?offset=now", nil, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("keeping %s alive: %s %s", ttl.name, statusOrErr(resp, err), body)
				return
			}
			lastTouch = sent
		}
	}()
	stopKeepAlive := sync.OnceFunc(func() { close(keepAlive); kaWG.Wait() })
	defer stopKeepAlive()

	fill := func(m *streamModel, segs int64) {
		for m.tail().seg < segs {
			b := make([]byte, 512+rng.IntN(1536))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			m.appendMsgs(t, c, [][]byte{b})
		}
	}
	for _, m := range all {
		fill(m, 12)
	}
	want := map[int64]int64{}
	for _, m := range all {
		want[ids[m]] = m.tail().seg
	}
	l := env.awaitUploads(t, want, 20*time.Second)
	counts := func(l listing) string {
		var parts []string
		for _, m := range all {
			parts = append(parts, fmt.Sprintf("%s=%d", m.name, len(l.byID[ids[m]])))
		}
		return strings.Join(parts, " ")
	}
	t.Logf("uploaded: %s (%d objects)", counts(l), l.count())

	// Fork the source at its tail (the end of its last, sealed segment)
	// and give the fork a few segments of its own.
	fork := newModel("cold/gc/fork", srv.StreamURL("cold/gc/fork"), ct)
	createStream(t, c, fork.url, ct, map[string]string{"Stream-Forked-From": "/v1/stream/cold/gc/src"})
	ids[fork] = streamID(t, c, fork.url)
	if ids[fork] == ids[src] {
		t.Fatalf("fork has its source's id %d", ids[src])
	}
	src.mu.Lock()
	fork.data = append([]byte(nil), src.data...)
	fork.starts = append([]int64(nil), src.starts...)
	fork.tokens = append([]string(nil), src.tokens...)
	src.mu.Unlock()
	srcLast := src.tail().seg
	fill(fork, srcLast+4)
	forkOwn := [2]int64{srcLast + 1, fork.tail().seg}
	env.awaitUploadRanges(t, map[int64][2]int64{ids[fork]: forkOwn}, 20*time.Second)
	if got := mustList(t, env.bucket).byID[ids[fork]]; !hasRange(got, forkOwn[0], forkOwn[1]) {
		t.Fatalf("fork's objects: %s, want only its own segments %d..%d", segRange(got), forkOwn[0], forkOwn[1])
	}

	// 1. DELETE: the stream's objects go, nobody else's.
	stopKeepAlive() // the TTL stream's 2 s run from its last renewal
	ttlLastAccess := lastTouch
	mustStatus(t, do(t, http.MethodDelete, del.url, nil, ""), http.StatusNoContent)
	start := time.Now()
	eventually(t, 10*time.Second, 100*time.Millisecond, "objects of the deleted stream collected", func() string {
		if n := len(mustList(t, env.bucket).byID[ids[del]]); n > 0 {
			return fmt.Sprintf("%d objects left", n)
		}
		return ""
	})
	t.Logf("deleted stream's %d objects collected in %v", want[ids[del]]+1, time.Since(start).Round(time.Millisecond))
	mustStatus(t, do(t, http.MethodGet, del.url+"?offset=-1", nil, ""), http.StatusNotFound)

	// 2. TTL: without access the stream expires and its objects go. (No
	// request touches it meanwhile: a read would renew it.)
	eventually(t, 12*time.Second, 100*time.Millisecond, "objects of the expired stream collected", func() string {
		if n := len(mustList(t, env.bucket).byID[ids[ttl]]); n > 0 {
			return fmt.Sprintf("%d objects left", n)
		}
		return ""
	})
	// The server renewed the stream after lastTouch, so it may only expire
	// two seconds after that (access times are kept in milliseconds).
	if age := time.Since(ttlLastAccess); age < 2*time.Second-10*time.Millisecond {
		t.Errorf("the TTL stream's objects were collected %v after its last renewal was sent, before its 2 s TTL ran out", age)
	}
	t.Logf("expired stream's %d objects collected %v after its last access", want[ids[ttl]]+1, time.Since(ttlLastAccess).Round(time.Millisecond))
	mustStatus(t, do(t, http.MethodGet, ttl.url+"?offset=-1", nil, ""), http.StatusNotFound)

	// 3. A source with a fork: DELETE is soft (410 from then on) and its
	// objects stay while the fork exists.
	mustStatus(t, do(t, http.MethodDelete, src.url, nil, ""), http.StatusNoContent)
	mustStatus(t, do(t, http.MethodGet, src.url+"?offset=-1", nil, ""), http.StatusGone)
	srcObjects := want[ids[src]] + 1
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if n := len(mustList(t, env.bucket).byID[ids[src]]); int64(n) != srcObjects {
			t.Fatalf("soft-deleted source has %d objects, want all %d while its fork exists", n, srcObjects)
		}
	}
	// A restart empties the segment cache and the tail caches: the fork
	// now reads its inherited segments from MinIO.
	srv.Restart(t)
	mustStatus(t, do(t, http.MethodGet, src.url+"?offset=-1", nil, ""), http.StatusGone)
	rc := fork.checker(t)
	n := rc.readWhole(t, c, true)
	rc.randomReads(t, c, 100, rng.IntN)
	t.Logf("fork read back byte-identical after the source's soft delete and a restart (%d chunks, %d bytes, %d inherited)",
		n, fork.tail().pos, src.tail().pos)
	if n := len(mustList(t, env.bucket).byID[ids[src]]); int64(n) != srcObjects {
		t.Fatalf("soft-deleted source has %d objects after the restart, want %d", n, srcObjects)
	}

	// 4. Deleting the fork deletes the source for real: both are collected.
	mustStatus(t, do(t, http.MethodDelete, fork.url, nil, ""), http.StatusNoContent)
	start = time.Now()
	eventually(t, 10*time.Second, 100*time.Millisecond, "objects of the fork and its source collected", func() string {
		l := mustList(t, env.bucket)
		if a, b := len(l.byID[ids[fork]]), len(l.byID[ids[src]]); a+b > 0 {
			return fmt.Sprintf("fork has %d objects, source %d", a, b)
		}
		return ""
	})
	t.Logf("fork and source collected in %v", time.Since(start).Round(time.Millisecond))
	mustStatus(t, do(t, http.MethodGet, fork.url+"?offset=-1", nil, ""), http.StatusNotFound)
	mustStatus(t, do(t, http.MethodGet, src.url+"?offset=-1", nil, ""), http.StatusNotFound)

	// The control stream kept everything, and nothing else is left.
	l = mustList(t, env.bucket)
	if !hasAll(l.byID[ids[keep]], want[ids[keep]]) || len(l.byID) != 1 {
		t.Errorf("bucket at the end: %s (%d streams), want only %s's %d objects", counts(l), len(l.byID), keep.name, want[ids[keep]]+1)
	}
	keep.checker(t).readWhole(t, c, true)
}
