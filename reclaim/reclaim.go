// Package reclaim removes what a stream deleted for real leaves behind: its
// hot log files, its cold objects, its rows of the segment index and, last,
// its entry of the catalog's GC queue. It is the one owner of that
// deletion: the sequencer hands it the ids of every hard delete (and, at
// start, of deletions a crash interrupted), and the admin GC removes
// leftovers through it.
//
// The order makes it crash-safe:
//
//  1. the catalog commits the deletion and queues the id for GC (package
//     catalog, before the collector is involved);
//  2. the hot files are removed at once, since the stream's actor has
//     stopped and ids are never reused;
//  3. every object under the stream's key prefix is deleted (and dropped
//     from the disk cache);
//  4. the stream's index rows are deleted;
//  5. the GC entry is finished.
//
// A crash or failure anywhere leaves the GC entry, so the next start (or
// the admin GC) repeats the steps; each of them is idempotent.
package reclaim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/retry"
)

// Config configures a Collector.
type Config struct {
	Catalog *catalog.Catalog // required
	// HotPath returns where the hot log of a stream id lives; required.
	HotPath func(id int64) string
	// Store is the cold store; without one there are no objects to
	// collect and Collect finishes every id at once.
	Store coldstore.Store
	// Cache, if set, forgets the local copies of deleted objects.
	Cache  interface{ Forget(key string) }
	Logger *slog.Logger
	// RetryMin and RetryMax bound the backoff after a failed collection
	// (defaults 200ms and 30s).
	RetryMin, RetryMax time.Duration
}

// Stats are the collector's counters.
type Stats struct {
	Collected int64 // streams whose objects and index rows were removed
	Failures  int64 // failed collection attempts (each is retried)
	Queued    int64 // streams waiting for their cold collection
}

// Collector deletes the remains of deleted streams. With a cold store it
// collects objects in a background goroutine, started by the first
// Collect, retrying with backoff; Close stops it, and what is left resumes
// from the GC queue at the next start.
type Collector struct {
	cfg Config
	lg  *slog.Logger

	mu     sync.Mutex
	queue  []int64
	queued map[int64]bool
	wake   chan struct{}

	collected, failures atomic.Int64

	startOnce sync.Once
	stop      chan struct{}
	done      chan struct{} // nil until the worker starts
	// runCtx ends at Close, cutting short store calls in progress.
	runCtx context.Context
	halt   context.CancelFunc
}

// New returns a collector.
func New(cfg Config) (*Collector, error) {
	if cfg.Catalog == nil || cfg.HotPath == nil {
		return nil, errors.New("reclaim: Catalog and HotPath are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	c := &Collector{cfg: cfg, lg: cfg.Logger, queued: map[int64]bool{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{})}
	c.runCtx, c.halt = context.WithCancel(context.Background())
	return c, nil
}

// Close stops the worker; streams not collected yet stay in the GC queue.
func (c *Collector) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.halt()
	c.startOnce.Do(func() {}) // no worker starts after Close
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Stats returns the current counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Collected: c.collected.Load(), Failures: c.failures.Load(), Queued: int64(len(c.queue))}
}

// Collect removes the hot files of the streams ids, deleted for real and
// with their actors stopped, and queues their cold remains for the worker
// (without a cold store it finishes them at once). A stream whose hot files
// cannot be removed is left in the GC queue for the next start.
func (c *Collector) Collect(ctx context.Context, ids []int64) {
	for _, id := range ids {
		if err := c.RemoveHot(id); err != nil {
			c.lg.Warn("reclaim: remove hot log", "id", id, "err", err)
			continue
		}
		if c.cfg.Store == nil {
			if err := c.finish(ctx, id); err != nil {
				c.lg.Warn("reclaim: finish", "id", id, "err", err)
			}
			continue
		}
		c.enqueue(id)
	}
}

func (c *Collector) enqueue(id int64) {
	c.startOnce.Do(func() {
		c.mu.Lock()
		c.done = make(chan struct{})
		c.mu.Unlock()
		go c.worker()
	})
	c.mu.Lock()
	if !c.queued[id] {
		c.queued[id] = true
		c.queue = append(c.queue, id)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// HotFiles returns the files of stream id's hot log that exist.
func (c *Collector) HotFiles(id int64) ([]string, error) {
	out, err := hotlog.Existing(c.cfg.HotPath(id))
	if err != nil {
		return nil, fmt.Errorf("reclaim: %w", err)
	}
	return out, nil
}

// RemoveHot deletes the hot log files of stream id.
func (c *Collector) RemoveHot(id int64) error {
	if err := hotlog.Remove(c.cfg.HotPath(id)); err != nil {
		return fmt.Errorf("reclaim: remove hot log of %d: %w", id, err)
	}
	return nil
}

// DeleteObject deletes one cold object and its cached copy.
func (c *Collector) DeleteObject(ctx context.Context, key string) error {
	if err := c.cfg.Store.Delete(ctx, key); err != nil {
		return fmt.Errorf("reclaim: delete %s: %w", key, err)
	}
	if c.cfg.Cache != nil {
		c.cfg.Cache.Forget(key)
	}
	return nil
}

// DeleteRows deletes the segment index rows of stream id if the stream is
// not in the catalog any more, and returns how many there were.
func (c *Collector) DeleteRows(ctx context.Context, id int64) (int64, error) {
	n, err := c.cfg.Catalog.DeleteSegments(ctx, id, true)
	if err != nil {
		return 0, fmt.Errorf("reclaim: %w", err)
	}
	return n, nil
}

// Finish removes stream id's GC queue entry, once nothing of it is left.
func (c *Collector) Finish(ctx context.Context, id int64) error {
	if err := c.cfg.Catalog.DoneGC(ctx, id); err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	return nil
}

// finish deletes the index rows of stream id and finishes its GC entry.
func (c *Collector) finish(ctx context.Context, id int64) error {
	if _, err := c.DeleteRows(ctx, id); err != nil {
		return err
	}
	return c.Finish(ctx, id)
}

// collectCold deletes every object of stream id, then its index rows,
// then finishes its GC entry.
func (c *Collector) collectCold(ctx context.Context, id int64) error {
	prefix := segment.StreamPrefix(id)
	for obj, err := range c.cfg.Store.List(ctx, prefix) {
		if err != nil {
			return fmt.Errorf("reclaim: list %s: %w", prefix, err)
		}
		if err := c.DeleteObject(ctx, obj.Key); err != nil {
			return err
		}
	}
	if err := c.finish(ctx, id); err != nil {
		return err
	}
	c.collected.Add(1)
	return nil
}

func (c *Collector) worker() {
	defer close(c.done)
	var cur int64
	loop := retry.Loop{Stop: c.stop, Wake: c.wake, Min: c.cfg.RetryMin, Max: c.cfg.RetryMax}
	loop.Run(func() (bool, error) {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return false, nil
		}
		cur = c.queue[0]
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.runCtx, 2*time.Minute)
		err := c.collectCold(ctx, cur)
		cancel()
		c.mu.Lock()
		c.queue = c.queue[1:]
		if err != nil {
			c.queue = append(c.queue, cur) // retried after the others
		} else {
			delete(c.queued, cur)
		}
		c.mu.Unlock()
		return true, err
	}, func(err error, retryIn time.Duration) {
		c.failures.Add(1)
		c.lg.Warn("reclaim: will retry", "id", cur, "retry_in", retryIn, "err", err)
	})
}
