package admin_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/servertest"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

type env struct {
	t     *testing.T
	dir   string // the server's data directory
	srv   *server.Server
	ts    *httptest.Server
	svc   *admin.Service // the server's own, on the real clock
	store coldstore.Store
}

// newEnv starts a server whose streams seal a segment every two messages,
// with the default local cold store under its data directory.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	srv, ts := servertest.Start(t, server.Config{DataDir: dir, Rotation: sequencer.RotationPolicy{SealMessages: 2}})
	return &env{t: t, dir: dir, srv: srv, ts: ts, svc: srv.Admin(), store: srv.ColdStore()}
}

// at returns a service over the same server whose clock is shifted by d.
func (e *env) at(d time.Duration) *admin.Service {
	e.t.Helper()
	svc, err := admin.New(admin.Config{Catalog: e.srv.Catalog(), Store: e.store, Registry: e.srv.Registry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Now().Add(d) }})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func (e *env) do(method, path, body string, want int) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.ts.URL+"/v1/stream/"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
	}
}

// stream creates path and appends n messages of 10 bytes.
func (e *env) stream(path string, n int) {
	e.t.Helper()
	e.do(http.MethodPut, path, "", http.StatusCreated)
	for i := range n {
		e.do(http.MethodPost, path, strings.Repeat(string(rune('a'+i)), 10), http.StatusNoContent)
	}
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; rotator %+v; totals %+v", what, e.srv.Rotator().Stats(), e.totals())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitUploaded waits until the index has n uploaded segments and the hot
// logs of paths are trimmed accordingly (the index says uploaded just
// before the trim).
func (e *env) awaitUploaded(n int64, paths ...string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d uploaded segments", n), func() bool {
		return e.totals().Cold.ByState[admin.StateUploaded] == n && e.trimmed(paths)
	})
}

// trimmed reports whether the hot logs of paths hold only the messages of
// their open segments (fewer than SealMessages = 2).
func (e *env) trimmed(paths []string) bool {
	for _, p := range paths {
		st, err := e.svc.StreamStats(e.t.Context(), p)
		if err != nil || st.Hot == nil || st.Hot.Rows >= 2 {
			return false
		}
	}
	return true
}

func (e *env) totals() admin.Totals {
	e.t.Helper()
	tot, err := e.svc.Totals(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return tot
}

func (e *env) list(f admin.Filter) admin.Page {
	e.t.Helper()
	p, err := e.svc.ListSegments(e.t.Context(), f)
	if err != nil {
		e.t.Fatalf("ListSegments(%+v): %v", f, err)
	}
	return p
}

func (e *env) verify() admin.Report {
	e.t.Helper()
	rep, err := e.svc.Verify(e.t.Context())
	if err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
	return rep
}

func keys[T any](list []T, key func(T) string) []string {
	var out []string
	for _, v := range list {
		out = append(out, key(v))
	}
	slices.Sort(out)
	return out
}

func problemKeys(ps []admin.Problem) []string {
	return keys(ps, func(p admin.Problem) string { return p.Key })
}

func gcKeys(os []admin.GCObject) []string {
	return keys(os, func(o admin.GCObject) string { return o.Key + " " + o.Reason })
}

func TestAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.stream("logs/a", 6)  // segments 0, 1, 2
	e.stream("logs/b", 4)  // segments 0, 1
	e.stream("other/c", 3) // segment 0, one message in the open segment
	e.awaitUploaded(6, "logs/a", "logs/b", "other/c")

	// ---- list ----
	all := e.list(admin.Filter{})
	if len(all.Segments) != 6 || all.Next != "" {
		t.Fatalf("list all: %d segments, next %q", len(all.Segments), all.Next)
	}
	if !slices.IsSortedFunc(all.Segments, func(a, b admin.Segment) int {
		if a.StreamID != b.StreamID {
			return int(a.StreamID - b.StreamID)
		}
		return int(a.Seg - b.Seg)
	}) {
		t.Fatalf("list is not in (stream, segment) order: %+v", all.Segments)
	}
	byPath := map[string][]admin.Segment{}
	for _, g := range all.Segments {
		byPath[g.Stream] = append(byPath[g.Stream], g)
		if g.State != admin.StateUploaded || g.StreamState != admin.StreamLive || g.Checksum == 0 ||
			g.ObjectKey != segment.ObjectKey(g.StreamID, g.Seg) || g.Messages != 2 || g.EndPos-g.FirstPos != 20 {
			t.Fatalf("unexpected row %+v", g)
		}
	}
	if len(byPath["logs/a"]) != 3 || len(byPath["logs/b"]) != 2 || len(byPath["other/c"]) != 1 {
		t.Fatalf("segments per stream: %v", byPath)
	}

	var paged []admin.Segment
	pages := 0
	for after := ""; ; pages++ {
		p := e.list(admin.Filter{Limit: 4, After: after})
		paged = append(paged, p.Segments...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if pages != 1 || !slices.Equal(paged, all.Segments) {
		t.Fatalf("paging by 4: %d extra pages, %d segments", pages, len(paged))
	}
	if p := e.list(admin.Filter{Limit: 3}); len(p.Segments) != 3 || p.Next == "" {
		t.Fatalf("page of 3 of 6: %d segments, next %q", len(p.Segments), p.Next)
	} else if p2 := e.list(admin.Filter{Limit: 3, After: p.Next}); len(p2.Segments) != 3 || p2.Next != "" {
		// Keyset paging may end with an empty page; with exactly 6 rows and
		// limit+1 look-ahead it must not.
		t.Fatalf("second page of 3: %d segments, next %q", len(p2.Segments), p2.Next)
	}
	if p := e.list(admin.Filter{StreamPath: "logs/a"}); len(p.Segments) != 3 || p.Segments[0].Stream != "logs/a" {
		t.Fatalf("stream filter: %+v", p.Segments)
	}
	if p := e.list(admin.Filter{Prefix: "logs/"}); len(p.Segments) != 5 {
		t.Fatalf("prefix filter: %d segments", len(p.Segments))
	}
	if p := e.list(admin.Filter{Prefix: "logs/", Limit: 2, After: e.list(admin.Filter{Prefix: "logs/", Limit: 2}).Next}); len(p.Segments) != 2 {
		t.Fatalf("prefix filter, second page: %d segments", len(p.Segments))
	}
	if p := e.list(admin.Filter{State: string(admin.StateSealed)}); len(p.Segments) != 0 {
		t.Fatalf("sealed: %+v", p.Segments)
	}
	if p := e.list(admin.Filter{State: string(admin.StateUploaded), Prefix: "other/"}); len(p.Segments) != 1 {
		t.Fatalf("uploaded in other/: %+v", p.Segments)
	}
	for _, f := range []admin.Filter{{State: "bogus"}, {After: "not a cursor"}, {After: "czE6eA"}, {Limit: -1}} {
		if _, err := e.svc.ListSegments(ctx, f); !errors.Is(err, admin.ErrInvalid) {
			t.Errorf("ListSegments(%+v): %v, want ErrInvalid", f, err)
		}
	}
	if p := e.list(admin.Filter{Limit: 5000}); len(p.Segments) != 6 {
		t.Fatalf("limit above the maximum: %d", len(p.Segments))
	}

	// ---- stats ----
	st, err := e.svc.StreamStats(ctx, "logs/a")
	if err != nil {
		t.Fatal(err)
	}
	var coldA int64
	for _, g := range byPath["logs/a"] {
		coldA += g.Bytes
	}
	if st.StreamID != byPath["logs/a"][0].StreamID || st.Path != "logs/a" || st.State != admin.StreamLive ||
		st.Cold.Segments != 3 || st.Cold.ByState[admin.StateUploaded] != 3 || st.Cold.Bytes != coldA ||
		st.Tail == nil || *st.Tail != 60 || st.TailOffset == "" || st.Hot == nil || st.Hot.FileBytes == 0 {
		t.Fatalf("stats of logs/a: %+v (hot %+v)", st, st.Hot)
	}
	if c, err := e.svc.StreamStats(ctx, "other/c"); err != nil || c.Hot.Rows != 1 || c.Hot.DataBytes != 10 {
		t.Fatalf("stats of other/c: %+v, %v", c, err)
	}
	if _, err := e.svc.StreamStats(ctx, "nope"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("stats of a missing stream: %v", err)
	}
	if tot := e.totals(); tot.Streams != 3 || tot.Cold.Segments != 6 || tot.DeletedStreams != 0 || tot.Cold.Bytes == 0 {
		t.Fatalf("totals: %+v", tot)
	}

	// ---- verify ----
	if rep := e.verify(); !rep.Clean || rep.Objects != 6 || rep.Verified != 6 || rep.IndexRows != 6 {
		t.Fatalf("verify of a healthy store: %+v", rep)
	}

	corrupt := byPath["logs/a"][1]
	missing := byPath["logs/b"][0]
	stray := segment.ObjectKey(999999, 0)
	rc, err := e.store.Get(ctx, corrupt.ObjectKey, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	data[len(data)/2] ^= 0xff
	if err := e.store.Put(ctx, corrupt.ObjectKey, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(ctx, missing.ObjectKey); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Put(ctx, stray, strings.NewReader("stray"), 5); err != nil {
		t.Fatal(err)
	}
	rep := e.verify()
	if rep.Clean || !slices.Equal(problemKeys(rep.Missing), []string{missing.ObjectKey}) ||
		!slices.Equal(problemKeys(rep.Orphaned), []string{stray}) ||
		!slices.Equal(problemKeys(rep.Mismatched), []string{corrupt.ObjectKey}) ||
		rep.MissingCount != 1 || rep.OrphanedCount != 1 || rep.MismatchedCount != 1 {
		t.Fatalf("verify after damage: %+v", rep)
	}
	if p := rep.Orphaned[0]; p.StreamID != 999999 || p.Seg == nil || *p.Seg != 0 || p.Bytes != 5 {
		t.Fatalf("orphan: %+v", p)
	}
	if !strings.Contains(rep.Mismatched[0].Reason, "corrupt") {
		t.Fatalf("mismatch reason: %q", rep.Mismatched[0].Reason)
	}

	// ---- gc ----
	// On the real clock the stray object is too young to collect.
	g, err := e.svc.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.ObjectCount != 0 || !slices.Equal(gcKeys(g.Skipped), []string{stray + " " + admin.ReasonTooYoung}) {
		t.Fatalf("gc of a young stray object: %+v", g)
	}
	later := e.at(11 * time.Minute)
	g, err = later.GC(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !g.DryRun || g.ObjectCount != 1 || g.Bytes != 5 || !slices.Equal(gcKeys(g.Objects), []string{stray + " " + admin.ReasonOrphaned}) ||
		g.IndexRowCount != 0 || g.QueueCount != 0 {
		t.Fatalf("gc dry run: %+v", g)
	}
	if _, err := e.store.Head(ctx, stray); err != nil {
		t.Fatalf("dry run deleted the stray object: %v", err)
	}
	g, err = later.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.DryRun || g.ObjectCount != 1 || !slices.Equal(gcKeys(g.Objects), []string{stray + " " + admin.ReasonOrphaned}) {
		t.Fatalf("gc: %+v", g)
	}
	if _, err := e.store.Head(ctx, stray); !errors.Is(err, coldstore.ErrNotFound) {
		t.Fatalf("stray object after gc: %v", err)
	}
	if _, err := e.store.Head(ctx, corrupt.ObjectKey); err != nil {
		t.Fatalf("gc deleted an indexed object: %v", err)
	}
	rep = e.verify()
	if rep.OrphanedCount != 0 || rep.MissingCount != 1 || rep.MismatchedCount != 1 {
		t.Fatalf("verify after gc: %+v", rep)
	}

	// ---- deleting the damaged streams: the rotator collects them ----
	e.do(http.MethodDelete, "logs/a", "", http.StatusNoContent)
	e.do(http.MethodDelete, "logs/b", "", http.StatusNoContent)
	e.eventually("collection of deleted streams", func() bool {
		tot := e.totals()
		return tot.Cold.Segments == 1 && tot.PendingGC == 0 && tot.Streams == 1
	})
	if rep := e.verify(); !rep.Clean || rep.Objects != 1 || rep.Verified != 1 {
		t.Fatalf("verify after deleting the damaged streams: %+v", rep)
	}
}

// TestGCLeftovers covers what GC collects besides orphans: objects and rows
// of streams deleted for real and stale GC queue entries, and what it
// leaves alone: uploads in progress and rowless objects of live streams.
func TestGCLeftovers(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.stream("live", 2)
	e.awaitUploaded(1, "live")
	live := e.list(admin.Filter{}).Segments[0]
	cat := e.srv.Catalog()
	old := time.Now().Add(-time.Hour)

	// An upload in progress: a sealed row and its object.
	inProgress := segment.ObjectKey(live.StreamID, 7)
	if err := cat.RecordSealed(ctx, catalog.Segment{StreamID: live.StreamID, Seg: 7, ObjectKey: inProgress, CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	put(t, e.store, inProgress, "partial")
	// A rowless object of the live stream.
	rowless := segment.ObjectKey(live.StreamID, 8)
	put(t, e.store, rowless, "rowless")
	// Leftovers of a stream deleted for real (id 500000, not in the catalog):
	// an indexed object, a row without an object, a key not in the format.
	const gone = 500000
	goneKey := segment.ObjectKey(gone, 0)
	for seg, key := range []string{goneKey, segment.ObjectKey(gone, 1)} {
		if err := cat.RecordSealed(ctx, catalog.Segment{StreamID: gone, Seg: int64(seg), ObjectKey: key, CreatedAt: old}); err != nil {
			t.Fatal(err)
		}
		if err := cat.MarkUploaded(ctx, gone, int64(seg), 4, 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	put(t, e.store, goneKey, "gone")
	junk := "junk/file.txt"
	put(t, e.store, junk, "junk")
	// A stale GC queue entry whose hot file was left behind.
	const queued = 600000
	// The catalog queues only ids it deletes: write the entry behind its
	// back, as a crash between the steps of a deletion would leave it.
	exec(t, filepath.Join(e.dir, "catalog.db"), `INSERT INTO gc_queue (stream_id, queued_at) VALUES (?, ?)`, queued, old.UnixMilli())
	hot := e.srv.Registry().StreamPath(queued)
	if err := os.MkdirAll(filepath.Dir(hot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hot, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	rep := e.verify()
	if rep.InProgress != 1 || !slices.Equal(problemKeys(rep.Orphaned), []string{rowless, junk}) ||
		!slices.Equal(problemKeys(rep.Missing), []string{segment.ObjectKey(gone, 1)}) ||
		!slices.Equal(problemKeys(rep.Mismatched), []string{goneKey}) {
		t.Fatalf("verify: %+v", rep)
	}
	if tot := e.totals(); tot.DeletedStreams != 1 || tot.PendingGC != 1 {
		t.Fatalf("totals: %+v", tot)
	}
	if p := e.list(admin.Filter{StreamPath: ""}); p.Segments[len(p.Segments)-1].StreamState != admin.StreamDeleted {
		t.Fatalf("rows of a deleted stream: %+v", p.Segments)
	}

	later := e.at(time.Hour)
	for _, dry := range []bool{true, false} {
		g, err := later.GC(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gcKeys(g.Objects), []string{goneKey + " " + admin.ReasonDeletedStream, junk + " " + admin.ReasonOrphaned}) ||
			!slices.Equal(gcKeys(g.Skipped), []string{rowless + " " + admin.ReasonStreamExists}) ||
			len(g.IndexRows) != 1 || g.IndexRows[0] != (admin.GCRows{StreamID: gone, Rows: 2}) ||
			len(g.Queue) != 1 || g.Queue[0].StreamID != queued || len(g.Queue[0].HotFiles) != 1 {
			t.Fatalf("gc (dry run %t): %+v", dry, g)
		}
		_, err = os.Stat(hot)
		if dry != (err == nil) {
			t.Fatalf("hot file after gc (dry run %t): %v", dry, err)
		}
	}
	for _, k := range []string{inProgress, rowless, live.ObjectKey} {
		if _, err := e.store.Head(ctx, k); err != nil {
			t.Fatalf("gc deleted %s: %v", k, err)
		}
	}
	if tot := e.totals(); tot.DeletedStreams != 0 || tot.PendingGC != 0 || tot.Cold.Segments != 2 {
		t.Fatalf("totals after gc: %+v", tot)
	}
	if g, err := later.GC(ctx, false); err != nil || g.ObjectCount != 0 || g.IndexRowCount != 0 || g.QueueCount != 0 {
		t.Fatalf("second gc: %+v, %v", g, err)
	}
}

func put(t *testing.T, s coldstore.Store, key, data string) {
	t.Helper()
	if err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// exec runs one statement on the SQLite database at path, next to the
// server's own connections.
func exec(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatal(err)
	}
}
