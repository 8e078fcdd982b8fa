// Package ratelimit limits the request rate of each client with a token
// bucket per client key, in bounded memory.
package ratelimit

import (
	"errors"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config configures a Limiter. A zero Rate disables rate limiting.
type Config struct {
	// Rate is the sustained number of requests per second per client.
	Rate float64
	// Burst is how many requests a client may make at once; 0 means
	// Rate rounded up (at least 1).
	Burst int
	// MaxClients bounds how many client buckets are kept (default 65536).
	MaxClients int
	// TrustProxyHeaders takes the client address from the last entry of
	// X-Forwarded-For, the one the proxy in front of the server added.
	// Only set it when every request comes through such a proxy: clients
	// can write any X-Forwarded-For themselves.
	TrustProxyHeaders bool
	// TrustedProxies are the networks of the proxies in front of the
	// server, whose X-Forwarded-For entries are believed; requests from
	// other peers are taken at their address. The narrower, safer form
	// of TrustProxyHeaders, for servers reached both directly and
	// through proxies.
	TrustedProxies []netip.Prefix
	// Peers, if set, reports whether an address is one of the nodes of
	// this server's cluster. A node that forwards a request to another
	// appends the client's address to X-Forwarded-For, so peers are
	// trusted like TrustedProxies; it is called for every request from a
	// proxy or peer and must be cheap and safe for concurrent use.
	Peers func(netip.Addr) bool
	// Now returns the current time (nil: time.Now); for tests.
	Now func() time.Time
}

// Proxies returns the trusted proxies of c.
func (c Config) Proxies() Proxies {
	return Proxies{All: c.TrustProxyHeaders, Nets: c.TrustedProxies, Peers: c.Peers}
}

// Enabled reports whether c limits anything.
func (c Config) Enabled() bool { return c.Rate > 0 }

// DefaultMaxClients is the default bound of Config.MaxClients.
const DefaultMaxClients = 1 << 16

// sweepEvery is how often idle buckets are dropped when the bound is not
// reached.
const sweepEvery = time.Minute

// Limiter hands out per-client token buckets. A nil *Limiter allows
// everything.
type Limiter struct {
	cfg  Config
	now  func() time.Time
	idle time.Duration // a bucket untouched this long is full again

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New checks cfg and builds a Limiter; it returns nil (allow everything)
// when cfg is not Enabled.
func New(cfg Config) (*Limiter, error) {
	switch {
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0):
		return nil, errors.New("ratelimit: the rate must be a non-negative number of requests per second")
	case cfg.Burst < 0:
		return nil, errors.New("ratelimit: the burst must not be negative")
	case cfg.MaxClients < 0:
		return nil, errors.New("ratelimit: the client bound must not be negative")
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	idle := time.Duration(float64(cfg.Burst) / cfg.Rate * float64(time.Second))
	return &Limiter{cfg: cfg, now: now, idle: idle, buckets: make(map[string]*bucket), lastSweep: now()}, nil
}

// Allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long until a token is available.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.buckets[key] = b
	} else if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / l.cfg.Rate * float64(time.Second))
}

// makeRoom keeps the number of buckets below the bound before one is
// added.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.cfg.MaxClients && now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	// Sweeping costs a pass over all buckets; at the bound, sweep at most
	// once a second and otherwise evict at random, so that a flood of new
	// clients costs O(1) per request.
	if len(l.buckets) < l.cfg.MaxClients || now.Sub(l.lastSweep) >= time.Second {
		l.sweep(now)
	}
	for k := range l.buckets {
		if len(l.buckets) < l.cfg.MaxClients {
			break
		}
		// An evicted client that was still active gets a fresh bucket:
		// at most one extra burst, the price of bounded memory.
		delete(l.buckets, k)
	}
}

// sweep drops the buckets idle long enough to have refilled completely:
// such a bucket behaves exactly like a new one, so dropping it changes no
// decision.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.idle {
			delete(l.buckets, k)
		}
	}
}

// Len returns the number of client buckets held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// ClientIP returns the address of the client of r (see ClientAddr).
func (l *Limiter) ClientIP(r *http.Request) string {
	if l == nil {
		return ClientAddr(r, Proxies{})
	}
	return ClientAddr(r, l.cfg.Proxies())
}
