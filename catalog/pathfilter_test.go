package catalog

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
)

// TestPathFilterKnowsEveryRow reopens a catalog holding live,
// soft-deleted and hard-deleted streams and inserts more while the filter
// loads: once loaded, every path with a row may be there (Get finds it),
// and Get of a path never used answers ErrNotFound.
func TestPathFilterKnowsEveryRow(t *testing.T) {
	ctx := context.Background()
	c, path := openTemp(t)
	const n = 300
	var ids []int64
	for i := range n {
		ids = append(ids, create(t, c, Stream{Path: fmt.Sprintf("before/%d", i)}))
	}
	create(t, c, Stream{Path: "before/fork", ParentID: ids[0], ForkOffset: "x"})
	for _, id := range ids[:10] { // the first softly (it has a fork), the others for real
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var wg sync.WaitGroup
	for i := range 8 { // racing the load
		wg.Go(func() {
			for j := range n / 8 {
				id, err := c.AllocateID(ctx)
				if err == nil {
					err = c.Insert(ctx, Stream{ID: id, Path: fmt.Sprintf("during/%d/%d", i, j), CreatedAt: t0})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-c.paths.loaded
	if !c.paths.ready.Load() {
		t.Fatal("path filter not ready after its load")
	}
	all, err := c.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := n - 9 + 1 + 8*(n/8); len(all) != want {
		t.Fatalf("%d rows, want %d", len(all), want)
	}
	for _, s := range all {
		if !c.paths.mayHave(s.Path) {
			t.Errorf("filter says %q has no row", s.Path)
		}
		if got, err := c.Get(ctx, s.Path); err != nil || got.ID != s.ID {
			t.Errorf("Get(%q) = %d, %v; want %d", s.Path, got.ID, err, s.ID)
		}
	}
	if got := mustGet(t, c, ids[0]); got.DeletedAt.IsZero() || got.RefCount != 1 {
		t.Errorf("soft-deleted parent: %+v", got)
	}
	for i := range 100 {
		if _, err := c.Get(ctx, fmt.Sprintf("never/%d", i)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of an unused path: %v, want ErrNotFound", err)
		}
	}
	// A hard-deleted path can be used again.
	create(t, c, Stream{Path: "before/5"})
	if _, err := c.Get(ctx, "before/5"); err != nil {
		t.Errorf("Get of a path used again: %v", err)
	}

	// A closed catalog does not answer from memory.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "never/0"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Close = %v, want an error other than ErrNotFound", err)
	}
}

// TestPathFilterFalsePositives checks the filter's documented bound, under
// 1% false positives with 1.5 million paths, on a filter and a number of
// paths both scaled down by the same factor; and none with a few.
func TestPathFilterFalsePositives(t *testing.T) {
	const scale = 16
	f := &pathFilter{seed: maphash.MakeSeed(), bits: make([]atomic.Uint64, pathFilterBits/64/scale)}
	f.ready.Store(true)
	count := func(from, to int) int {
		fp := 0
		for i := from; i < to; i++ {
			if f.mayHave(fmt.Sprintf("/v1/stream/absent-%d", i)) {
				fp++
			}
		}
		return fp
	}
	for i := range 1000 / scale {
		f.add(fmt.Sprintf("/v1/stream/present-%d", i))
	}
	if fp := count(0, 10000); fp > 0 {
		t.Errorf("%d false positives in 10000 with %d paths", fp, 1000/scale)
	}
	for i := 1000 / scale; i < 1_500_000/scale; i++ {
		f.add(fmt.Sprintf("/v1/stream/present-%d", i))
	}
	for i := range 1_500_000 / scale {
		if p := fmt.Sprintf("/v1/stream/present-%d", i); !f.mayHave(p) {
			t.Fatalf("%q added but not found", p)
		}
	}
	if fp := count(0, 10000); fp >= 100 {
		t.Errorf("%d false positives in 10000 with 1.5 million / %d paths, want under 1%%", fp, scale)
	}
}
