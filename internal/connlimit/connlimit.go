// Package connlimit bounds what clients can hold on the server at once:
// open connections (Listener) and request body bytes being received
// (Budget), each in total and per client address.
//
// Past a total bound the server is busy for everyone and answers 503;
// past a per-client bound only that client is refused, with 429. Both
// carry Retry-After. Counting is exact and costs a mutex and a map entry
// per client with something in use; entries are dropped when their count
// returns to zero, so memory follows what is in use, never what was seen.
package connlimit

import (
	"errors"
	"strconv"
	"sync"
)

// ErrBusy is returned when a total bound is reached.
var ErrBusy = errors.New("connlimit: server busy")

// ErrClientBusy is returned when a client's own bound is reached.
var ErrClientBusy = errors.New("connlimit: client over its share")

// RetryAfterSeconds is the Retry-After of refusals: what is held is
// released within a request's time, so clients may retry soon.
const RetryAfterSeconds = 1

// RetryAfter is RetryAfterSeconds as a header value.
var RetryAfter = strconv.Itoa(RetryAfterSeconds)

// counter counts units in use in total and per key, within bounds; the
// key "" is bounded by the total only.
//
// Invariant: total is the sum of perKey's values, and perKey holds no
// zero entries.
type counter struct {
	max, maxPerKey int64 // <= 0: unbounded

	mu     sync.Mutex
	total  int64
	perKey map[string]int64
}

func newCounter(max, maxPerKey int64) *counter {
	return &counter{max: max, maxPerKey: maxPerKey, perKey: map[string]int64{}}
}

// acquire takes n units for key, or none with ErrBusy or ErrClientBusy.
// A single request larger than a bound is still admitted when nothing
// else is held against that bound, so that a bound below the largest
// allowed request cannot refuse it forever.
func (c *counter) acquire(key string, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.perKey[key]
	if c.max > 0 && c.total > 0 && c.total+n > c.max {
		return ErrBusy
	}
	if c.maxPerKey > 0 && key != "" && held > 0 && held+n > c.maxPerKey {
		return ErrClientBusy
	}
	c.total += n
	c.perKey[key] = held + n
	return nil
}

// release returns n units of key.
func (c *counter) release(key string, n int64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total -= n
	if left := c.perKey[key] - n; left > 0 {
		c.perKey[key] = left
	} else {
		delete(c.perKey, key)
	}
}

// inUse returns the units held in total and by key.
func (c *counter) inUse(key string) (total, byKey int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.perKey[key]
}

// Budget bounds the request body bytes being received at once, in total
// and per client. A nil *Budget allows everything.
type Budget struct{ c *counter }

// NewBudget returns a Budget of max bytes in total and maxPerClient per
// client; a bound <= 0 is off. It returns nil when both are off.
func NewBudget(max, maxPerClient int64) *Budget {
	if max <= 0 && maxPerClient <= 0 {
		return nil
	}
	return &Budget{c: newCounter(max, maxPerClient)}
}

// Acquire reserves n bytes for client, or nothing with ErrBusy or
// ErrClientBusy.
func (b *Budget) Acquire(client string, n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	return b.c.acquire(client, n)
}

// Release returns n bytes reserved for client.
func (b *Budget) Release(client string, n int64) {
	if b != nil {
		b.c.release(client, n)
	}
}

// InUse returns the bytes reserved in total and by client.
func (b *Budget) InUse(client string) (total, byClient int64) {
	if b == nil {
		return 0, 0
	}
	return b.c.inUse(client)
}
