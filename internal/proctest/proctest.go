// Package proctest is the plumbing shared by the test helpers that run a
// real server process (internal/miniotest, internal/pgtest): its output,
// stopping it, a free loopback port and random names.
package proctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
