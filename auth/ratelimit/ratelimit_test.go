package ratelimit_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/auth/ratelimit"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLimiter(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestDisabled(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{})
	if err != nil || l != nil {
		t.Fatalf("zero config: %v %v", l, err)
	}
	if ok, _ := l.Allow("x"); !ok {
		t.Fatal("a nil limiter refuses")
	}
	for _, cfg := range []ratelimit.Config{{Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, MaxClients: -1}} {
		if _, err := ratelimit.New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestBucket(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Config{Rate: 2, Burst: 3})
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("over the burst: %v, retry after %v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client shares the bucket")
	}
	c.t = c.t.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("no token after refilling one")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("two tokens after refilling one")
	}
}

func TestDefaultBurst(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{0.5, 1}, {1, 1}, {2.5, 3}, {10, 10}} {
		l, _ := newLimiter(t, ratelimit.Config{Rate: tc.rate})
		n := 0
		for {
			if ok, _ := l.Allow("k"); !ok {
				break
			}
			n++
		}
		if n != tc.burst {
			t.Errorf("rate %v: burst %d, want %d", tc.rate, n, tc.burst)
		}
	}
}

func TestBoundedMemory(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, MaxClients: 100})
	for i := range 1000 {
		l.Allow(fmt.Sprint("client-", i))
		if l.Len() > 100 {
			t.Fatalf("%d buckets after %d clients", l.Len(), i+1)
		}
	}
	// Buckets idle long enough to be full again go at the next sweep.
	c.t = c.t.Add(2 * time.Minute)
	l.Allow("fresh")
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets after the idle ones expired", n)
	}
}

func TestIdleSweepKeepsActiveBuckets(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Config{Rate: 0.01, Burst: 1}) // refills in 100s
	l.Allow("slow")
	c.t = c.t.Add(61 * time.Second)
	l.Allow("other") // triggers a sweep; "slow" is not full yet
	if ok, _ := l.Allow("slow"); ok {
		t.Fatal("a sweep reset a bucket that was still refilling")
	}
}

func TestClientIP(t *testing.T) {
	trusting, _ := newLimiter(t, ratelimit.Config{Rate: 1, TrustProxyHeaders: true})
	plain, _ := newLimiter(t, ratelimit.Config{Rate: 1})
	for _, tc := range []struct {
		xff            []string
		plain, trusted string
	}{
		{nil, "192.0.2.1", "192.0.2.1"},
		{[]string{"203.0.113.9"}, "192.0.2.1", "203.0.113.9"},
		{[]string{"spoofed, 203.0.113.9"}, "192.0.2.1", "203.0.113.9"},
		{[]string{"spoofed", "203.0.113.7 "}, "192.0.2.1", "203.0.113.7"},
		{[]string{" "}, "192.0.2.1", "192.0.2.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:5555"
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := plain.ClientIP(r); got != tc.plain {
			t.Errorf("%q untrusted: %q", tc.xff, got)
		}
		if got := trusting.ClientIP(r); got != tc.trusted {
			t.Errorf("%q trusted: %q", tc.xff, got)
		}
	}
}

// TestClientAddrTrustedProxies: X-Forwarded-For counts only from trusted
// proxies, and is walked from the right past further trusted hops.
func TestClientAddrTrustedProxies(t *testing.T) {
	nets, err := ratelimit.ParsePrefixes("10.0.0.0/8, 192.0.2.1,::1")
	if err != nil {
		t.Fatal(err)
	}
	// 192.0.2.7 is a cluster peer, known by Peers only.
	peer := netip.MustParseAddr("192.0.2.7")
	p := ratelimit.Proxies{Nets: nets, Peers: func(a netip.Addr) bool { return a == peer }}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct client, header ignored", "203.0.113.5:1", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy", "10.1.2.3:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted single address", "192.0.2.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"ipv6 proxy", "[::1]:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:1", []string{"spoofed, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"spoofed entries left of the client", "10.1.2.3:1", []string{"10.0.0.1", "198.51.100.1"}, "198.51.100.1"},
		{"only proxies in the header", "10.1.2.3:1", []string{"10.2.2.2"}, "10.2.2.2"},
		{"no header", "10.1.2.3:1", nil, "10.1.2.3"},
		{"mapped ipv4 peer", "[::ffff:10.1.2.3]:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"cluster peer", "192.0.2.7:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"cluster peer behind a trusted proxy", "192.0.2.7:1", []string{"198.51.100.1, 10.1.1.1"}, "198.51.100.1"},
		{"not a cluster peer", "192.0.2.8:1", []string{"198.51.100.1"}, "192.0.2.8"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ratelimit.ClientAddr(r, p); got != tc.want {
			t.Errorf("%s: ClientAddr = %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.1/x"} {
		if _, err := ratelimit.ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}
