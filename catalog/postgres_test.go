package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

func TestNumberPlaceholders(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ? AND c < ?", "SELECT a FROM t WHERE b = $1 AND c < $2"},
		{"UPDATE t SET n = n + ?1 WHERE id = 1 RETURNING n - ?1", "UPDATE t SET n = n + $1 WHERE id = 1 RETURNING n - $1"},
		{"SELECT ?2, ?, ?1", "SELECT $2, $3, $1"},
		{"SELECT '?', \"a?b\", ? FROM t", "SELECT '?', \"a?b\", $1 FROM t"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"SELECT 'open ?", "SELECT 'open ?"},
	}
	for _, tt := range tests {
		if got := numberPlaceholders(tt.in); got != tt.want {
			t.Errorf("numberPlaceholders(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestValidPrefixEnd is TestPrefixEnd for PostgreSQL's valid UTF-8 bounds.
func TestValidPrefixEnd(t *testing.T) {
	checkPrefixEnd(t, "validPrefixEnd", validPrefixEnd, []prefixEndCase{
		{"", "", false},
		{"a", "b", true},
		{"a/", "a0", true},
		{"a\u00bf", "a\u00c0", true},
		{"a\u00ff", "a\u0100", true},
		{"a\ud7ff", "a\ue000", true},
		{"a\U0010ffff", "b", true},
		{"\U0010ffff", "", false},
		{"a\xff", "b", true}, // not UTF-8: byte-wise, as on SQLite
	})
}

// TestPostgresTwoNodes runs creators and deleters on two catalogs sharing
// one database, as two nodes would: every path is created exactly once,
// ids are never handed out twice, refcounts match the forks that exist,
// and every stream ends up deleted for real exactly once and queued for
// GC exactly once.
func TestPostgresTwoNodes(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	nodes := []*Catalog{openPostgresTemp(t, dsn), openPostgresTemp(t, dsn)}
	ctx := context.Background()
	const workers = 4 // per node

	// Every worker of both nodes tries to create every path.
	const paths = 60
	var (
		mu      sync.Mutex
		created = map[string][]int64{}
		allIDs  = map[int64]bool{}
	)
	run := func(fn func(c *Catalog, rng *rand.Rand) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*workers)
		for n, c := range nodes {
			for w := range workers {
				rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				wg.Go(func() {
					if err := fn(c, rng); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	insert := func(c *Catalog, s Stream) error {
		id, err := c.AllocateID(ctx)
		if err != nil {
			return err
		}
		s.ID, s.ContentType = id, "text/plain"
		err = c.Insert(ctx, s)
		if err == nil {
			mu.Lock()
			if allIDs[id] {
				err = fmt.Errorf("id %d handed out twice", id)
			}
			allIDs[id] = true
			created[s.Path] = append(created[s.Path], id)
			mu.Unlock()
		}
		return err
	}
	run(func(c *Catalog, rng *rand.Rand) error {
		for _, i := range rng.Perm(paths) {
			if err := insert(c, Stream{Path: fmt.Sprintf("p/%02d", i)}); err != nil && !errors.Is(err, ErrExists) {
				return err
			}
		}
		return nil
	})
	for i := range paths {
		if ids := created[fmt.Sprintf("p/%02d", i)]; len(ids) != 1 {
			t.Errorf("path p/%02d created %d times", i, len(ids))
		}
	}

	// Forks of forks of the roots, each from a parent picked at random
	// among the streams that exist, while the other node deletes.
	run(func(c *Catalog, rng *rand.Rand) error {
		for range 40 {
			mu.Lock()
			ids := slices.Collect(maps.Keys(allIDs))
			mu.Unlock()
			parent := ids[rng.IntN(len(ids))]
			path := fmt.Sprintf("f/%d/%d", parent, rng.Int64())
			err := insert(c, Stream{Path: path, ParentID: parent, ForkOffset: "o"})
			if err != nil && !errors.Is(err, ErrParentGone) {
				return err
			}
			if rng.IntN(4) == 0 {
				victim := ids[rng.IntN(len(ids))]
				if _, err := c.Delete(ctx, victim); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrSoftDeleted) {
					return err
				}
			}
		}
		return nil
	})
	checkRefCounts(t, nodes[0])

	// Both nodes delete everything, in their own orders; the last fork of a
	// soft-deleted stream takes it along.
	mu.Lock()
	ids := slices.Collect(maps.Keys(allIDs))
	mu.Unlock()
	var hard []int64
	run(func(c *Catalog, rng *rand.Rand) error {
		for _, i := range rng.Perm(len(ids)) {
			res, err := c.Delete(ctx, ids[i])
			if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrSoftDeleted) {
				return err
			}
			mu.Lock()
			hard = append(hard, res.HardIDs...)
			mu.Unlock()
		}
		return nil
	})
	// Streams deleted for real by the mixed phase above count too.
	queued, err := nodes[1].PendingGC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	left, err := nodes[1].List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d streams left after deleting all, e.g. %+v", len(left), left[0])
	}
	slices.Sort(queued)
	slices.Sort(ids)
	if !slices.Equal(queued, ids) {
		t.Errorf("GC queue has %d ids, want the %d streams created", len(queued), len(ids))
	}
	slices.Sort(hard)
	if len(slices.Compact(slices.Clone(hard))) != len(hard) {
		t.Error("a stream was reported deleted for real twice")
	}
	t.Logf("%d streams created by two nodes, %d deleted for real in the final phase", len(ids), len(hard))
}

// checkRefCounts checks every stream's RefCount against the rows that
// name it as their parent.
func checkRefCounts(t *testing.T, c *Catalog) {
	t.Helper()
	all, err := c.List(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	forks := map[int64]int64{}
	for _, s := range all {
		if s.ParentID != 0 {
			forks[s.ParentID]++
		}
	}
	for _, s := range all {
		if s.RefCount != forks[s.ID] {
			t.Errorf("stream %d %q: RefCount %d, %d rows name it as parent", s.ID, s.Path, s.RefCount, forks[s.ID])
		}
		if !s.DeletedAt.IsZero() && s.RefCount == 0 {
			t.Errorf("stream %d %q soft-deleted without forks", s.ID, s.Path)
		}
	}
}
