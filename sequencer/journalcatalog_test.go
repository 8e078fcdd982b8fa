package sequencer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/sequencer"
)

// catalogCrash stops e the way a crash would and puts the catalog's files
// back as snap holds them: the catalog commits the journal carries are
// not synced, so a crash may lose every one since the last synced commit.
func catalogCrash(t *testing.T, e *env, snap map[string][]byte) {
	t.Helper()
	sequencer.Abandon(e.reg)
	if err := e.cat.Close(); err != nil {
		t.Fatal(err)
	}
	restoreFiles(t, filepath.Join(e.dir, "catalog.db"), snap)
}

// catalogSnapshot copies the catalog's files (without its shared-memory
// index, which the next open rebuilds from the WAL).
func catalogSnapshot(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	path := filepath.Join(e.dir, "catalog.db")
	snap := snapshotFiles(t, path)
	delete(snap, path+"-shm")
	return snap
}

// catalogPaths lists every catalog row, live or soft-deleted, by path.
func catalogPaths(t *testing.T, cat *catalog.Catalog) map[string]catalog.Stream {
	t.Helper()
	rows, err := cat.List(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]catalog.Stream{}
	for _, r := range rows {
		if _, dup := out[r.Path]; dup {
			t.Errorf("path %q twice in the catalog", r.Path)
		}
		out[r.Path] = r
	}
	return out
}

// TestJournalReplaysLostCatalog loses the catalog's unsynced commits, as a
// power loss may, and checks that the next start redoes them from the
// journal: creations (a fork with its parent's reference), deletions
// (soft while a fork exists, hard otherwise) and a close, each exactly
// once.
func TestJournalReplaysLostCatalog(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir, nil)
	const ct = "text/plain"
	e.createStream("base", ct)
	e.create(&sequencer.CreateRequest{Path: "parent", ContentType: ctPtr(t, ct), Initial: byteMsgs("par")})
	// From here on no catalog commit syncs: the id block is reserved and
	// no checkpoint is due.
	snap := catalogSnapshot(t, e)
	e.create(&sequencer.CreateRequest{Path: "a", ContentType: ctPtr(t, ct), Initial: byteMsgs("aa")})
	e.appendMsgs("a", ct, "a")
	e.fork("f", "parent", nil, 0)
	e.appendMsgs("f", ct, "f")
	for _, p := range []string{"base", "parent"} {
		if err := e.reg.Delete(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	e.createStream("tmp", ct)
	if err := e.reg.Delete(t.Context(), "tmp"); err != nil {
		t.Fatal(err)
	}
	e.createStream("tmp", ct) // a new stream at a deleted one's path
	if res, err := e.tryAppend("a", &sequencer.AppendRequest{Close: true}); err != nil || !res.Closed {
		t.Fatalf("close a: %v %+v", err, res)
	}
	want := catalogPaths(t, e.cat)
	if !want["a"].Closed || want["parent"].DeletedAt.IsZero() || want["parent"].RefCount != 1 {
		t.Fatalf("catalog before the crash: %+v", want)
	}
	catalogCrash(t, e, snap)

	check := func(e *env) {
		t.Helper()
		got := catalogPaths(t, e.cat)
		for p, w := range want {
			g, ok := got[p]
			switch {
			case !ok:
				t.Errorf("%q missing after replay", p)
			case g.ID != w.ID || g.ParentID != w.ParentID || g.RefCount != w.RefCount || g.Closed != w.Closed ||
				g.DeletedAt.IsZero() != w.DeletedAt.IsZero() || !g.CreatedAt.Equal(w.CreatedAt):
				t.Errorf("%q after replay: %+v, want %+v", p, g, w)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%q in the catalog after replay, deleted before the crash", p)
			}
		}
		if got := e.content("a"); got != "aaa" {
			t.Errorf("a = %q", got)
		}
		if got := e.content("f"); got != "parf" {
			t.Errorf("f = %q", got)
		}
		if _, err := e.reg.Acquire(t.Context(), "parent", false); kindOf(err) != sequencer.KindGone {
			t.Errorf("soft-deleted parent after replay: %v", err)
		}
		if _, err := e.reg.Acquire(t.Context(), "base", false); kindOf(err) != sequencer.KindNotFound {
			t.Errorf("deleted stream after replay: %v", err)
		}
	}
	e2 := openEnv(t, dir, nil)
	check(e2)
	// Replaying again (another crash, nothing lost) changes nothing.
	snap = catalogSnapshot(t, e2)
	catalogCrash(t, e2, snap)
	e3 := openEnv(t, dir, nil)
	check(e3)
	// The fork was the parent's last reference: the parent goes for real.
	if err := e3.reg.Delete(t.Context(), "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := e3.cat.Get(t.Context(), "parent"); err == nil {
		t.Error("parent still in the catalog after its last fork was deleted")
	}
}

// TestJournalCatalogCrashPoints runs random creations, forks, deletions,
// closes and appends, loses the catalog's commits since a random point
// (the unsynced ones a crash may take), and checks after each restart
// that the catalog holds every acknowledged change exactly once: the
// same rows, ids, forks, reference counts, closes and deletions as
// before the crash. Some rounds start after a graceful stop.
func TestJournalCatalogCrashPoints(t *testing.T) {
	const ct = "text/plain"
	rounds, ops := 6, 40
	if testing.Short() {
		rounds = 2
	}
	rng := rand.New(rand.NewPCG(12, uint64(rounds)))
	dir := t.TempDir()
	e := openEnv(t, dir, nil)
	paths := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	for round := range rounds {
		if rng.IntN(2) == 0 {
			// A graceful stop first: new streams are left in the journal
			// and the round forks, deletes and crashes them while they
			// live in memory only.
			e.close()
			e = openEnv(t, dir, nil)
		}
		e.createStream(fmt.Sprint("r", round), ct) // reserves the id block before the snapshot
		crashAt := rng.IntN(ops)
		var snap map[string][]byte
		for i := range ops {
			if i == crashAt {
				snap = catalogSnapshot(t, e)
			}
			p := paths[rng.IntN(len(paths))]
			ctx := t.Context()
			switch rng.IntN(5) {
			case 0:
				_, _ = e.reg.Create(ctx, &sequencer.CreateRequest{Path: p, ContentType: ctPtr(t, ct), Initial: byteMsgs("x")})
			case 1:
				if res, err := e.reg.Create(ctx, &sequencer.CreateRequest{Path: p,
					Fork: &sequencer.ForkRequest{Source: paths[rng.IntN(len(paths))]}}); err == nil {
					res.Handle.Release()
				}
			case 2, 3:
				_ = e.reg.Delete(ctx, p)
			case 4:
				_, _ = e.tryAppend(p, &sequencer.AppendRequest{Close: rng.IntN(2) == 0, ContentType: mustCT(t, ct), Messages: byteMsgs("y")})
			}
		}
		want := catalogPaths(t, e.cat)
		catalogCrash(t, e, snap)
		e = openEnv(t, dir, nil)
		got := catalogPaths(t, e.cat)
		for p, w := range want {
			g, ok := got[p]
			w.LastAccess, g.LastAccess = time.Time{}, time.Time{} // flushed in the background
			if !ok || g.ID != w.ID || g.ParentID != w.ParentID || g.RefCount != w.RefCount || g.Closed != w.Closed ||
				g.DeletedAt.IsZero() != w.DeletedAt.IsZero() {
				t.Errorf("round %d (crash at op %d): %q after replay: %+v (%v), want %+v", round, crashAt, p, g, ok, w)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("round %d (crash at op %d): %q in the catalog after replay, not before the crash", round, crashAt, p)
			}
		}
	}
}
