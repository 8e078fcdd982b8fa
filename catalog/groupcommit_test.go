package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestGroupCommit runs many concurrent writes, every third of which fails
// after writing: each caller gets its own outcome, failed writes leave
// nothing behind, and the others are all stored.
func TestGroupCommit(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	if _, err := c.db.Exec("CREATE TABLE gc_test (k INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	const n = 300
	errBoom := errors.New("boom")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = c.write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO gc_test (k) VALUES (?)", i); err != nil {
					return err
				}
				if i%3 == 0 {
					return fmt.Errorf("write %d: %w", i, errBoom)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if want := i%3 == 0; errors.Is(err, errBoom) != want || (!want && err != nil) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	rows, err := c.db.Query("SELECT k FROM gc_test ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	var want []int
	for i := range n {
		if i%3 != 0 {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %v\nwant %v", got, want)
	}
}

// TestGroupCommitSeesEarlierWrites: writes in one group run in order, each
// seeing the ones before it, like separate transactions would.
func TestGroupCommitSeesEarlierWrites(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	if _, err := c.db.Exec("CREATE TABLE gc_counter (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO gc_counter VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			err := c.write(ctx, func(tx *sql.Tx) error {
				var v int
				if err := tx.QueryRowContext(ctx, "SELECT v FROM gc_counter WHERE id = 1").Scan(&v); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "UPDATE gc_counter SET v = ? WHERE id = 1", v+1)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var v int
	if err := c.db.QueryRow("SELECT v FROM gc_counter WHERE id = 1").Scan(&v); err != nil || v != 200 {
		t.Fatalf("counter = %d, %v; want 200", v, err)
	}
}

// TestWriteCanceledWhileQueued: a write whose context ends while it waits
// for the lock returns the context's error and is never run.
func TestWriteCanceledWhileQueued(t *testing.T) {
	c, _ := openTemp(t)
	c.wlock <- struct{}{} // a group commit in progress
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	done := make(chan error)
	go func() {
		done <- c.write(ctx, func(*sql.Tx) error { ran = true; return nil })
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("write = %v, want context.Canceled", err)
	}
	<-c.wlock
	if err := c.write(context.Background(), func(*sql.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("the canceled write ran")
	}
}

// TestGroupCommitInsertsWithConflicts: concurrent creations, many in one
// group and several on one path, share the group's statements; each gets
// its own outcome (one per path succeeds, the others ErrExists, forks of a
// taken path too), and exactly the successful ones are stored.
func TestGroupCommitInsertsWithConflicts(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	parent := create(t, c, Stream{Path: "parent"})
	const paths, tries = 40, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]int64{}
	for i := range paths * tries {
		wg.Go(func() {
			p := fmt.Sprintf("p/%d", i%paths)
			id, err := c.AllocateID(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			s := Stream{ID: id, Path: p, ContentType: "text/plain", CreatedAt: t0}
			if i%tries == 1 {
				s.ParentID, s.ForkOffset = parent, "f"
			}
			switch err := c.Insert(ctx, s); {
			case err == nil:
				mu.Lock()
				defer mu.Unlock()
				if prev, ok := won[p]; ok {
					t.Errorf("%s inserted twice (ids %d and %d)", p, prev, id)
				}
				won[p] = id
			case !errors.Is(err, ErrExists):
				t.Errorf("Insert(%s) = %v, want nil or ErrExists", p, err)
			}
		})
	}
	wg.Wait()
	all, err := c.List(ctx, "p/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != paths {
		t.Errorf("%d rows stored, want %d", len(all), paths)
	}
	forks := int64(0)
	for _, s := range all {
		if won[s.Path] != s.ID {
			t.Errorf("%s stored with id %d, the insert that succeeded had %d", s.Path, s.ID, won[s.Path])
		}
		if s.ParentID == parent {
			forks++
		}
	}
	if got := mustGet(t, c, parent).RefCount; got != forks {
		t.Errorf("parent's refcount %d, want %d (its stored forks)", got, forks)
	}
}

// TestGroupCommitCanceledWriteSharesNoStatement: a creation whose context
// ends while its group runs fails alone. The group binds each statement
// to its transaction once, for every write of the group; bound with the
// ended context, the statement carried that error to the creations after
// it in the group.
func TestGroupCommitCanceledWriteSharesNoStatement(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	var ids [2]int64
	for i := range ids {
		id, err := c.AllocateID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	canceled, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := inOneGroup(t, c,
		func() error { return c.write(ctx, func(*sql.Tx) error { cancel(); return nil }) },
		func() error {
			return c.Insert(canceled, Stream{ID: ids[0], Path: "canceled", ContentType: "text/plain", CreatedAt: t0})
		},
		func() error {
			return c.Insert(ctx, Stream{ID: ids[1], Path: "innocent", ContentType: "text/plain", CreatedAt: t0})
		})
	if errs[0] != nil {
		t.Errorf("the write that cancels: %v", errs[0])
	}
	if !errors.Is(errs[1], context.Canceled) {
		t.Errorf("the canceled creation = %v, want context.Canceled", errs[1])
	}
	if errs[2] != nil {
		t.Errorf("the creation after the canceled one in its group = %v, want nil", errs[2])
	}
	if _, err := c.Get(ctx, "innocent"); err != nil {
		t.Errorf("Get(innocent): %v", err)
	}
}

// TestGroupCommitInterruptedWriteFailsAlone: a write whose context ends
// while its statement runs is interrupted, and SQLite then rolls the
// group's whole transaction back; the other writes of the group must
// still succeed, not fail with the lost savepoint.
func TestGroupCommitInterruptedWriteFailsAlone(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	if _, err := c.db.Exec("CREATE TABLE gc_test (k INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	insert := func(k int) func(*sql.Tx) error {
		return func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO gc_test (k) VALUES (?)", k)
			return err
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	defer cancel()
	long := func(tx *sql.Tx) error {
		// An insert that runs until its context ends.
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := tx.ExecContext(canceled, `INSERT INTO gc_test (k) WITH RECURSIVE n(i) AS
			(SELECT 100 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT i FROM n`)
		return err
	}
	errs := inOneGroup(t, c,
		func() error { return c.write(ctx, insert(1)) },
		func() error { return c.write(canceled, long) },
		func() error { return c.write(ctx, insert(2)) })
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the writes beside the interrupted one: %v, %v; want nil", errs[0], errs[2])
	}
	if !errors.Is(errs[1], context.Canceled) {
		t.Errorf("the interrupted write = %v, want context.Canceled", errs[1])
	}
	var keys []int
	rows, err := c.db.Query("SELECT k FROM gc_test ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if fmt.Sprint(keys) != "[1 2]" {
		t.Errorf("stored %v, want [1 2]", keys)
	}
}

// inOneGroup makes calls, each of which queues one write, in order, and
// has the writes run as one group commit; it returns the calls' outcomes.
func inOneGroup(t *testing.T, c *Catalog, calls ...func() error) []error {
	t.Helper()
	c.wlock <- struct{}{} // a group commit in progress: the next group takes them all
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Go(func() { errs[i] = call() })
		for {
			c.pendMu.Lock()
			n := len(c.pending)
			c.pendMu.Unlock()
			if n == i+1 {
				break
			}
			runtime.Gosched()
		}
	}
	<-c.wlock
	wg.Wait()
	return errs
}
