package health

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckStatus(t *testing.T) {
	fail := func(context.Context) error { return errors.New("boom") }
	pass := func(context.Context) error { return nil }
	tests := []struct {
		name       string
		checks     []Check
		status     string
		httpStatus int
	}{
		{"no checks", nil, StatusOK, http.StatusOK},
		{"all pass", []Check{{Name: "a", Critical: true, Probe: pass}, {Name: "b", Probe: pass}}, StatusOK, http.StatusOK},
		{"optional fails", []Check{{Name: "a", Critical: true, Probe: pass}, {Name: "b", Probe: fail}}, StatusDegraded, http.StatusOK},
		{"critical fails", []Check{{Name: "a", Critical: true, Probe: fail}, {Name: "b", Probe: pass}}, StatusUnavailable, http.StatusServiceUnavailable},
		{"both fail", []Check{{Name: "b", Probe: fail}, {Name: "a", Critical: true, Probe: fail}}, StatusUnavailable, http.StatusServiceUnavailable},
		{"no probe is ignored", []Check{{Name: "a", Critical: true}}, StatusOK, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := New(tc.checks...).Check(context.Background())
			if rep.Status != tc.status || rep.HTTPStatus() != tc.httpStatus {
				t.Errorf("status %q (%d), want %q (%d): %+v", rep.Status, rep.HTTPStatus(), tc.status, tc.httpStatus, rep)
			}
			for _, c := range tc.checks {
				if c.Probe == nil {
					if _, ok := rep.Checks[c.Name]; ok {
						t.Errorf("check %q without a probe reported", c.Name)
					}
					continue
				}
				want := "ok"
				if c.Probe(context.Background()) != nil {
					want = "unreachable: boom"
				}
				if rep.Checks[c.Name] != want {
					t.Errorf("check %q = %q, want %q", c.Name, rep.Checks[c.Name], want)
				}
			}
		})
	}
}

func TestCheckCachesResults(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	now := time.Unix(1000, 0)
	c := New(Check{Name: "s3", CacheFor: 5 * time.Second, Probe: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return nil
	}})
	c.now = func() time.Time { return now }
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { c.Check(context.Background()) })
	}
	wg.Wait()
	if calls != 1 {
		t.Fatalf("%d probes for 50 concurrent checks, want 1", calls)
	}
	now = now.Add(5 * time.Second)
	c.Check(context.Background())
	if calls != 2 {
		t.Fatalf("%d probes after the cache period, want 2", calls)
	}
}

func TestCheckTimeoutAndCancel(t *testing.T) {
	slow := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	c := New(Check{Name: "slow", Timeout: 20 * time.Millisecond, CacheFor: time.Hour, Probe: slow})
	rep := c.Check(context.Background())
	if rep.Status != StatusDegraded || !strings.Contains(rep.Checks["slow"], "deadline exceeded") {
		t.Fatalf("slow probe: %+v", rep)
	}

	// A caller that gives up does not poison the cache for others.
	calls := 0
	c = New(Check{Name: "x", CacheFor: time.Hour, Probe: func(ctx context.Context) error {
		calls++
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Check(ctx)
	if rep := c.Check(context.Background()); rep.Status != StatusOK || calls != 2 {
		t.Fatalf("after a canceled check: %+v, %d calls", rep, calls)
	}
}

func TestCheckBoundsReason(t *testing.T) {
	long := strings.Repeat("x", 10000)
	rep := New(Check{Name: "a", Probe: func(context.Context) error { return errors.New(long) }}).Check(context.Background())
	if n := len(rep.Checks["a"]); n > maxReason+50 {
		t.Fatalf("reason of %d bytes", n)
	}
}
