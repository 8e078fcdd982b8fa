// Package health runs the readiness checks behind /readyz.
//
// A check is critical when the server cannot do its job without the
// dependency (the catalog): its failure makes the server unavailable (503).
// Other checks (the cold store) only degrade it: appends still succeed and
// rotation retries later, so the server stays in rotation (200) and says
// that it is degraded.
package health

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Statuses of a Report.
const (
	StatusOK          = "ok"          // every check passed
	StatusDegraded    = "degraded"    // a non-critical check failed
	StatusUnavailable = "unavailable" // a critical check failed
)

// DefaultTimeout bounds one probe when Check.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// maxReason bounds the error text in a report, so that a chatty dependency
// cannot blow up probe answers.
const maxReason = 300

// Check is one named readiness probe.
type Check struct {
	Name string
	// Critical checks make the server unavailable when they fail; others
	// only degrade it.
	Critical bool
	// CacheFor reuses a result this long, so that floods of /readyz
	// requests do not turn into floods of requests to a remote dependency.
	// Zero probes every time.
	CacheFor time.Duration
	// Timeout bounds one probe (default DefaultTimeout).
	Timeout time.Duration
	// Probe returns nil when the dependency works.
	Probe func(ctx context.Context) error
}

// Report is the outcome of all checks, as served by /readyz.
type Report struct {
	Status string `json:"status"`
	// Checks maps each check's name to "ok" or "unreachable: <reason>".
	Checks map[string]string `json:"checks"`
}

// HTTPStatus is 503 for an unavailable server and 200 otherwise, since a
// degraded server still accepts traffic.
func (r Report) HTTPStatus() int {
	if r.Status == StatusUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// Checker runs a fixed set of checks.
type Checker struct {
	checks []*check
	now    func() time.Time
}

type check struct {
	Check
	// mu is held during a probe, so concurrent callers wait for its result
	// instead of probing again.
	mu  sync.Mutex
	at  time.Time // when err was observed; zero: never
	err error
}

// New returns a Checker running checks in order. Checks without a Probe are
// ignored.
func New(checks ...Check) *Checker {
	c := &Checker{now: time.Now}
	for _, ch := range checks {
		if ch.Probe == nil {
			continue
		}
		if ch.Timeout <= 0 {
			ch.Timeout = DefaultTimeout
		}
		c.checks = append(c.checks, &check{Check: ch})
	}
	return c
}

// Check runs (or reuses the cached results of) every check.
func (c *Checker) Check(ctx context.Context) Report {
	rep := Report{Status: StatusOK, Checks: make(map[string]string, len(c.checks))}
	for _, ch := range c.checks {
		err := c.run(ctx, ch)
		if err == nil {
			rep.Checks[ch.Name] = "ok"
			continue
		}
		reason := err.Error()
		if len(reason) > maxReason {
			reason = reason[:maxReason] + "..."
		}
		rep.Checks[ch.Name] = "unreachable: " + reason
		switch {
		case ch.Critical:
			rep.Status = StatusUnavailable
		case rep.Status == StatusOK:
			rep.Status = StatusDegraded
		}
	}
	return rep
}

func (c *Checker) run(ctx context.Context, ch *check) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	now := c.now()
	if !ch.at.IsZero() && now.Sub(ch.at) < ch.CacheFor {
		return ch.err
	}
	pctx, cancel := context.WithTimeout(ctx, ch.Timeout)
	defer cancel()
	err := ch.Probe(pctx)
	if err != nil && ctx.Err() != nil {
		// The caller gave up; that says nothing about the dependency, so
		// the result is not cached for others.
		return errors.Join(err, ctx.Err())
	}
	ch.at, ch.err = now, err
	return err
}
