package connlimit

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/cache"
)

// ConnsConfig bounds the connections of the listeners of a Conns.
type ConnsConfig struct {
	// MaxConns bounds open connections in total; <= 0: unbounded.
	MaxConns int
	// MaxConnsPerClient bounds open connections per peer IP address;
	// <= 0: unbounded.
	MaxConnsPerClient int
	// Exempt, if set, reports the peer IP addresses MaxConnsPerClient does
	// not apply to: trusted proxies, whose connections carry many clients
	// (the per-client byte budget, which sees the forwarded address, still
	// applies to those).
	Exempt func(ip string) bool
}

// refuseTimeout bounds writing a refusal and waiting for the peer to read
// it; maxRefusing bounds the refusals under way, beyond which connections
// are closed without a word (a flood must not turn into goroutines).
const (
	refuseTimeout = time.Second
	maxRefusing   = 64
)

// Conns counts the open connections of its listeners (see Listen)
// against one set of bounds. A nil *Conns bounds nothing.
type Conns struct {
	conns     *counter
	perClient bool
	exempt    func(ip string) bool
	refusing  atomic.Int64
	refused   atomic.Int64
}

// NewConns returns the bounds of cfg, or nil when it sets none.
func NewConns(cfg ConnsConfig) *Conns {
	if cfg.MaxConns <= 0 && cfg.MaxConnsPerClient <= 0 {
		return nil
	}
	return &Conns{conns: newCounter(int64(cfg.MaxConns), int64(cfg.MaxConnsPerClient)),
		perClient: cfg.MaxConnsPerClient > 0, exempt: cfg.Exempt}
}

// Listen wraps ln so that its connections count against c's bounds; a
// nil c returns ln itself.
func (c *Conns) Listen(ln net.Listener) net.Listener {
	if c == nil {
		return ln
	}
	return &Listener{Listener: ln, conns: c}
}

// Open returns the number of connections open through c's listeners.
func (c *Conns) Open() int64 {
	if c == nil {
		return 0
	}
	total, _ := c.conns.inUse("")
	return total
}

// Refused returns the number of connections refused so far.
func (c *Conns) Refused() int64 {
	if c == nil {
		return 0
	}
	return c.refused.Load()
}

// Listener wraps a net.Listener, refusing connections past its Conns'
// bounds: such a connection gets a complete HTTP/1.1 503 (total bound) or
// 429 (per-client bound) with Retry-After and is closed; Accept moves on
// to the next one. Connections it returns count until they are closed.
type Listener struct {
	net.Listener
	conns *Conns
}

// Accept returns the next connection within the bounds.
func (ln *Listener) Accept() (net.Conn, error) {
	l := ln.conns
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// Exempt peers share the key "", which only the total bounds.
		key := ""
		if l.perClient {
			if ip := ratelimit.PeerIP(c.RemoteAddr().String()); l.exempt == nil || !l.exempt(ip) {
				key = ip
			}
		}
		switch err := l.conns.acquire(key, 1); err {
		case nil:
			return &conn{Conn: c, l: l, key: key}, nil
		case ErrBusy:
			l.refuse(c, "503 Service Unavailable", "SERVER_BUSY", "the server holds as many connections as it allows; retry shortly")
		default:
			l.refuse(c, "429 Too Many Requests", "TOO_MANY_CONNECTIONS", "this client holds as many connections as the server allows per client; retry shortly")
		}
	}
}

// refuse answers c with a canned HTTP response and closes it, off the
// accept loop.
func (l *Conns) refuse(c net.Conn, status, code, msg string) {
	l.refused.Add(1)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		body := `{"error":"` + code + `","message":"` + msg + `"}` + "\n"
		c.SetDeadline(time.Now().Add(refuseTimeout))
		_, err := io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Type: application/json\r\nRetry-After: "+RetryAfter+
			"\r\nCache-Control: "+cache.CacheControl(cache.Request{Kind: cache.NoStore})+"\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		if err != nil {
			return
		}
		// Closing with the request unread would make the kernel send a
		// reset, which can destroy the response before the client reads
		// it; shut the write side and drain instead until the client
		// hangs up or the deadline passes.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// conn is an accepted connection, released from the count once closed.
type conn struct {
	net.Conn
	l    *Conns
	key  string
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.conns.release(c.key, 1) })
	return c.Conn.Close()
}

// CloseWrite shuts the write side down when the connection supports it,
// as net/http does before closing a connection it answered with
// Connection: close.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
