package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy controls how failed requests are retried: network errors,
// 429 and 5xx answers. Waits grow exponentially from InitialBackoff to
// MaxBackoff with random jitter, so that many clients do not reconnect in
// lockstep after an outage; a Retry-After header of a 429 or 503 answer is
// honoured instead (up to MaxRetryAfter). The zero value of each field
// selects its default.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one request, including the first
	// (default 10; 1 disables retries; negative retries forever). Readers
	// and producers count attempts since their last successful response.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry (default 100ms).
	InitialBackoff time.Duration
	// MaxBackoff caps the exponential wait (default 5s).
	MaxBackoff time.Duration
	// Multiplier is the growth factor of the wait (default 2).
	Multiplier float64
	// MaxRetryAfter caps a server's Retry-After (default 1m), so that a
	// misconfigured server cannot park a client for hours.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 10
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Minute
	}
	return p
}

// allows reports whether attempt number n (0-based) may be made.
func (p RetryPolicy) allows(n int) bool { return p.MaxAttempts < 0 || n < p.MaxAttempts }

// backoff is the wait after the failure of attempt number n (0-based): an
// exponential ceiling with "equal jitter", uniform in [ceiling/2, ceiling],
// which keeps waits growing while spreading clients apart.
func (p RetryPolicy) backoff(n int) time.Duration {
	ceil := float64(p.InitialBackoff)
	for i := 0; i < n && ceil < float64(p.MaxBackoff); i++ {
		ceil *= p.Multiplier
	}
	if ceil > float64(p.MaxBackoff) {
		ceil = float64(p.MaxBackoff)
	}
	half := ceil / 2
	return time.Duration(half + rand.Float64()*half)
}

// delay is the wait after the failure of attempt n, honouring ra.
func (p RetryPolicy) delay(n int, ra retryAfter) time.Duration {
	if ra.ok {
		return min(ra.d, p.MaxRetryAfter)
	}
	return p.backoff(n)
}

// retryAfter is a parsed Retry-After header.
type retryAfter struct {
	d  time.Duration
	ok bool
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date.
func parseRetryAfter(v string) retryAfter {
	v = strings.TrimSpace(v)
	if v == "" {
		return retryAfter{}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return retryAfter{}
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return retryAfter{d: time.Duration(n) * time.Second, ok: true}
	}
	if t, err := http.ParseTime(v); err == nil {
		return retryAfter{d: max(time.Until(t), 0), ok: true}
	}
	return retryAfter{}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
