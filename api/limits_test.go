package api_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/server"
)

// partial is a request whose headers and first body bytes were sent, the
// rest held back.
type partial struct {
	t    testing.TB
	conn net.Conn
}

// startPartial sends a POST announcing length bytes (-1: chunked) and
// the first bytes of its body.
func (s *testServer) startPartial(path string, length int, first string, h hdr) *partial {
	s.t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("dial: %v", err)
	}
	s.t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST /v1/stream/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n", path, s.addr)
	for i := 0; i+1 < len(h); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", h[i], h[i+1])
	}
	if length < 0 {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if first != "" {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(first), first)
		}
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", length, first)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		s.t.Fatalf("write: %v", err)
	}
	return &partial{t: s.t, conn: conn}
}

func (p *partial) send(data string) error {
	_, err := io.WriteString(p.conn, data)
	return err
}

// response reads the answer, waiting at most d.
func (p *partial) response(d time.Duration) *response {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(p.conn), &http.Request{Method: "POST"})
	if err != nil {
		p.t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

// closedWithin reports whether the server closed the connection within d.
func (p *partial) closedWithin(d time.Duration) bool {
	p.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, p.conn)
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestSlowBody: a body trickling below the minimum rate gets 408 once the
// grace period has passed and its connection is closed; a slow but steady
// body above the rate goes through however long it takes.
func TestSlowBody(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := newServer(t, func(c *server.Config) {
		c.Limits.BodyMinRate, c.Limits.BodyReadGrace = 1000, grace
	}, nil)
	s.create("slow", "text/plain", "")

	t.Run("trickle", func(t *testing.T) {
		start := time.Now()
		p := s.startPartial("slow", 1<<20, "x", nil)
		go func() { // a byte now and then, far below 1000 bytes/s
			for i := 0; i < 20 && p.send("y") == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}()
		r := p.response(5 * time.Second)
		if r.status != http.StatusRequestTimeout || !strings.Contains(string(r.body), "slower than 1000 bytes per second") {
			t.Fatalf("trickling body: %s, want 408", r)
		}
		if took := time.Since(start); took < grace || took > grace+time.Second {
			t.Errorf("cut after %v, want just past the %v grace period", took, grace)
		}
		if !p.closedWithin(2 * time.Second) {
			t.Error("connection still open after the 408")
		}
	})
	t.Run("steady above the rate", func(t *testing.T) {
		const chunk, chunks = 150, 10 // 1500 bytes over ~1 s: 1500 bytes/s
		p := s.startPartial("slow", chunk*chunks, "", nil)
		for range chunks {
			time.Sleep(100 * time.Millisecond)
			if err := p.send(strings.Repeat("z", chunk)); err != nil {
				t.Fatal(err)
			}
		}
		if r := p.response(5 * time.Second); r.status != http.StatusNoContent {
			t.Fatalf("steady body: %s, want 204", r)
		}
	})
	t.Run("headers only, body never sent", func(t *testing.T) {
		p := s.startPartial("slow", 100, "", nil)
		if r := p.response(5 * time.Second); r.status != http.StatusRequestTimeout {
			t.Fatalf("%s, want 408", r)
		}
	})
	t.Run("long-poll outlives the grace period", func(t *testing.T) {
		lp := newServer(t, func(c *server.Config) {
			c.Limits.BodyMinRate, c.Limits.BodyReadGrace = 1000, 100*time.Millisecond
			c.LongPollTimeout = 600 * time.Millisecond
		}, nil)
		lp.create("lp", "text/plain", "a")
		r := lp.must(http.StatusNoContent, "GET", "/v1/stream/lp?offset=now&live=long-poll", nil, "")
		if r.header.Get("Stream-Up-To-Date") != "true" {
			t.Fatalf("long-poll: %s", r)
		}
	})
}

// TestBodyByteBudget: request bytes being received are bounded per client
// address (429) and in total (503), both with Retry-After; a request that
// ends returns its share.
func TestBodyByteBudget(t *testing.T) {
	s := newServer(t, func(c *server.Config) {
		c.Limits.MaxBodyBytes, c.Limits.MaxBodyBytesPerClient = 2000, 1000
		c.RateLimit.TrustProxyHeaders = true // clients named by X-Forwarded-For
	}, nil)
	s.create("b", "text/plain", "")
	from := func(client string) hdr { return hdr{"X-Forwarded-For", client} }
	post := func(client string, n int) *response {
		return s.do("POST", "/v1/stream/b", append(hdr{"Content-Type", "text/plain"}, from(client)...), strings.Repeat("x", n))
	}
	wantRefused := func(r *response, status int, code string) {
		t.Helper()
		if r.status != status || r.header.Get("Retry-After") != "1" || !strings.Contains(string(r.body), code) {
			t.Fatalf("%s, want %d %s with Retry-After", r, status, code)
		}
	}

	a := s.startPartial("b", 800, "x", from("10.0.0.1"))
	time.Sleep(50 * time.Millisecond) // let the server reserve it
	wantRefused(post("10.0.0.1", 800), http.StatusTooManyRequests, "TOO_MANY_BYTES")
	// A request refused anyway is refused for its own reason: the budget
	// is reserved only when the handler reads the body.
	if r := s.do("POST", "/v1/stream/b", hdr{"Content-Type", "not a type", "X-Forwarded-For", "10.0.0.1"}, strings.Repeat("x", 800)); r.status != http.StatusBadRequest {
		t.Fatalf("invalid request over the budget: %s, want 400", r)
	}
	if r := post("10.0.0.1", 100); r.status != http.StatusNoContent {
		t.Fatalf("within the client's share: %s", r)
	}
	b := s.startPartial("b", 800, "x", from("10.0.0.2"))
	time.Sleep(50 * time.Millisecond)
	wantRefused(post("10.0.0.3", 800), http.StatusServiceUnavailable, "SERVER_BUSY")

	// A chunked body reserves as it arrives (64 KiB at a time).
	c := s.startPartial("b", -1, "x", from("10.0.0.4"))
	if r := c.response(5 * time.Second); r.status != http.StatusServiceUnavailable {
		t.Fatalf("chunked body past the total: %s", r)
	}

	// Finishing the held requests returns their shares.
	for _, p := range []*partial{a, b} {
		if err := p.send(strings.Repeat("x", 799)); err != nil {
			t.Fatal(err)
		}
		if r := p.response(5 * time.Second); r.status != http.StatusNoContent {
			t.Fatalf("held request: %s", r)
		}
	}
	if r := post("10.0.0.3", 800); r.status != http.StatusNoContent {
		t.Fatalf("after the others ended: %s", r)
	}
}
