package connlimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	type step struct {
		release bool
		client  string
		n       int64
		want    error
	}
	tests := []struct {
		name           string
		max, perClient int64
		steps          []step
	}{
		{"per client", 0, 100, []step{
			{false, "a", 60, nil}, {false, "a", 50, ErrClientBusy}, {false, "b", 100, nil},
			{true, "a", 60, nil}, {false, "a", 100, nil},
		}},
		{"total", 100, 0, []step{
			{false, "a", 60, nil}, {false, "b", 50, ErrBusy}, {true, "a", 60, nil}, {false, "b", 50, nil},
		}},
		{"total before client", 100, 80, []step{
			{false, "a", 70, nil}, {false, "a", 40, ErrBusy}, {false, "b", 30, nil}, {false, "b", 1, ErrBusy},
		}},
		{"oversized request alone is admitted", 100, 50, []step{
			{false, "a", 500, nil}, {false, "b", 1, ErrBusy}, {true, "a", 500, nil}, {false, "b", 500, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.max, tt.perClient)
			for i, s := range tt.steps {
				if s.release {
					b.Release(s.client, s.n)
					continue
				}
				if err := b.Acquire(s.client, s.n); err != s.want {
					t.Fatalf("step %d: Acquire(%s, %d) = %v, want %v", i, s.client, s.n, err, s.want)
				}
			}
		})
	}
	if NewBudget(0, 0) != nil || NewBudget(0, 0).Acquire("x", 1<<40) != nil {
		t.Error("a budget without bounds limits something")
	}
	b := NewBudget(10, 10)
	b.Acquire("a", 5)
	b.Release("a", 5)
	if total, a := b.InUse("a"); total != 0 || a != 0 || len(b.c.perKey) != 0 {
		t.Errorf("after release: total %d, a %d, %d keys", total, a, len(b.c.perKey))
	}
}

// serveHTTP serves a handler that answers 200 on l until the test ends.
func serveHTTP(t *testing.T, l net.Listener) {
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
}

func dialHTTP(t *testing.T, addr string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, resp
}

func TestListener(t *testing.T) {
	tests := []struct {
		name   string
		cfg    ConnsConfig
		status int // of the connection past the bound
		code   string
	}{
		{"total", ConnsConfig{MaxConns: 3}, http.StatusServiceUnavailable, "SERVER_BUSY"},
		{"per client", ConnsConfig{MaxConns: 10, MaxConnsPerClient: 3}, http.StatusTooManyRequests, "TOO_MANY_CONNECTIONS"},
		{"trusted proxies are exempt from the per-client bound", ConnsConfig{MaxConns: 4, MaxConnsPerClient: 3,
			Exempt: func(ip string) bool { return ip == "127.0.0.1" }}, http.StatusOK, ""},
		{"others are not", ConnsConfig{MaxConns: 10, MaxConnsPerClient: 3,
			Exempt: func(ip string) bool { return ip == "10.0.0.1" }}, http.StatusTooManyRequests, "TOO_MANY_CONNECTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := NewConns(tt.cfg)
			serveHTTP(t, l.Listen(ln))
			var held []net.Conn
			for range 3 {
				c, resp := dialHTTP(t, ln.Addr().String())
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("connection within the bound: %d", resp.StatusCode)
				}
				held = append(held, c)
			}
			_, resp := dialHTTP(t, ln.Addr().String())
			if resp.StatusCode != tt.status {
				t.Fatalf("connection past the bound: %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusOK {
				return
			}
			if resp.Header.Get("Retry-After") != "1" || !resp.Close {
				t.Errorf("refusal header %v, close %v", resp.Header, resp.Close)
			}
			if l.Refused() != 1 {
				t.Errorf("Refused() = %d", l.Refused())
			}
			// Closing a held connection makes room.
			held[0].Close()
			deadline := time.Now().Add(5 * time.Second)
			for l.Open() >= 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if _, resp := dialHTTP(t, ln.Addr().String()); resp.StatusCode != http.StatusOK {
				t.Fatalf("after a close: %d", resp.StatusCode)
			}
		})
	}
}

// TestListenerRefusalFlood: refusals past maxRefusing are plain closes,
// and the count returns to zero when the connections are gone.
func TestListenerRefusalFlood(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewConns(ConnsConfig{MaxConns: 1})
	serveHTTP(t, l.Listen(ln))
	first, _ := dialHTTP(t, ln.Addr().String())
	var wg sync.WaitGroup
	for range 2 * maxRefusing {
		wg.Go(func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			data, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Errorf("refused connection: %v", err)
			}
			if len(data) > 0 && !strings.HasPrefix(string(data), "HTTP/1.1 503") {
				t.Errorf("refusal %q", data)
			}
		})
	}
	wg.Wait()
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for (l.Open() != 0 || l.refusing.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l.Open() != 0 || l.refusing.Load() != 0 {
		t.Fatalf("open %d, refusing %d after every connection closed", l.Open(), l.refusing.Load())
	}
}
