// Package proctest is the plumbing shared by the test helpers that run a
// real server process (internal/miniotest, internal/pgtest): its output,
// stopping it, a free loopback port, random names and a TCP relay.
package proctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Output collects a process's output; exec writes to it from goroutines.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far; "" for a nil Output.
func (o *Output) String() string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Stop sends sig to p and waits for done (closed once p has exited and
// been waited for); after timeout it kills p and waits for done.
func Stop(p *os.Process, done <-chan struct{}, sig os.Signal, timeout time.Duration) {
	_ = p.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = p.Kill()
		<-done
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago:
// another process may take it before the caller does, so callers retry.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// RandomHex returns n random bytes as 2n hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Forward accepts TCP connections on listen (host:port; port 0 picks one)
// and relays each, both ways, to target, until the test ends. It returns
// the address it listens on. It makes a server that listens on one
// address only (MinIO) reachable on another as well.
func Forward(t testing.TB, listen, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("proctest: forwarding %s to %s: %v", listen, target, err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
		conns  = map[net.Conn]struct{}{}
	)
	// track adds (or removes) a relay's connections; false once the test
	// has ended, when the relay must not start.
	track := func(add bool, cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			if add {
				conns[c] = struct{}{}
			} else {
				delete(conns, c)
			}
		}
		return !closed
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return // the target is down: the client sees the connection close
				}
				defer out.Close()
				defer track(false, in, out)
				if !track(true, in, out) {
					return
				}
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(out, in)
					// The client finished sending: pass the half-close on.
					if tc, ok := out.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					close(done)
				}()
				_, _ = io.Copy(in, out)
				in.Close()
				<-done
			}()
		}
	}()
	return l.Addr().String()
}
