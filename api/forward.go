package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
)

// Router decides, per request, whether a stream is served here or
// forwarded (cluster mode). Implementations must be safe for concurrent
// use and cheap: Route runs for every stream request.
type Router interface {
	// Route returns nil when this node serves the stream at path (the
	// stream's name, without StreamsRoute), or the base URL of the node
	// to forward to: the URL under which that node's API is mounted, such
	// as its advertise URL. An error wrapping ErrUnavailable means the
	// stream cannot be served anywhere now (its owner is gone with
	// unsealed data); any error is answered 503 with Retry-After.
	Route(ctx context.Context, path string) (*url.URL, error)
}

// PeerRouter is a Router that also knows the addresses of the cluster's
// nodes. The server then believes the X-Forwarded-For of requests they
// forward, as it does a trusted proxy's (ratelimit.Config.Peers), so that
// the owner's per-client limits count the client, not the forwarding node.
type PeerRouter interface {
	Router
	// IsPeer reports whether addr is one of the cluster's nodes. It is
	// called for requests from proxies and peers, so it must be cheap.
	IsPeer(addr netip.Addr) bool
}

// ErrUnavailable is wrapped by a Router's error when a stream's owner is
// unavailable and no other node may serve it; the client gets 503 with
// Retry-After.
var ErrUnavailable = errors.New("stream owner unavailable")

// ForwardedByHeader marks a request one node forwarded to another; its
// value is the forwarding node's id. A request that carries it is never
// forwarded again: it is served here, or refused with 503 when this node
// does not serve the stream either (ownership moved in between), so a
// request makes at most one hop and two nodes that disagree about an
// owner cannot bounce it between them.
const ForwardedByHeader = "DS-Forwarded-By"

// Forwarding bounds. A forwarded request holds one connection to the
// owner for its whole life (a long-poll or SSE response included), so
// the per-peer bound is generous; requests past it wait for a connection
// in their own handler goroutine, whose number the server's connection
// limits bound.
const (
	// DefaultForwardConnsPerPeer bounds the connections to each peer.
	DefaultForwardConnsPerPeer = 4096
	forwardIdleConnsPerPeer    = 256
	forwardDialTimeout         = 5 * time.Second
	forwardIdleTimeout         = 90 * time.Second
	// forwardHeaderGrace is added to the long-poll timeout for the wait
	// for the owner's response headers: a long-poll's headers come only
	// when it ends.
	forwardHeaderGrace = 30 * time.Second
	forwardCopyBuf     = 32 << 10
)

// forwardBufs recycles the buffers answers are copied through.
var forwardBufs = sync.Pool{New: func() any { b := make([]byte, forwardCopyBuf); return &b }}

// hopHeaders are the hop-by-hop headers (RFC 9110 section 7.6.1): they
// describe one connection, so a proxy never passes them on.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forwarder sends stream requests to the node that serves their stream.
// It keeps one pooled transport per peer, so connections to a peer are
// reused and bounded; the peers are the cluster's nodes, a short list.
type forwarder struct {
	router Router
	nodeID string
	lg     *slog.Logger
	// headerTimeout bounds the wait for the owner's response headers.
	headerTimeout time.Duration
	connsPerPeer  int
	maxBody       int64            // the append limit, applied here as on the owner
	metrics       *metrics.Metrics // nil: not counted

	mu    sync.Mutex
	peers map[string]*http.Transport // by scheme://host
}

func newForwarder(opt Options) *forwarder {
	if opt.Router == nil {
		return nil
	}
	id := opt.NodeID
	if id == "" {
		id = "unnamed"
	}
	conns := opt.ForwardConnsPerPeer
	if conns <= 0 {
		conns = DefaultForwardConnsPerPeer
	}
	return &forwarder{router: opt.Router, nodeID: id, lg: opt.Logger, connsPerPeer: conns, maxBody: opt.MaxAppendBytes, metrics: opt.Metrics,
		headerTimeout: opt.LongPollTimeout + forwardHeaderGrace, peers: make(map[string]*http.Transport)}
}

// transport returns the pooled transport of the peer at u.
func (f *forwarder) transport(u *url.URL) *http.Transport {
	key := u.Scheme + "://" + u.Host
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.peers[key]; ok {
		return t
	}
	d := &net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   forwardDialTimeout,
		ResponseHeaderTimeout: f.headerTimeout,
		MaxConnsPerHost:       f.connsPerPeer,
		MaxIdleConnsPerHost:   forwardIdleConnsPerPeer,
		IdleConnTimeout:       forwardIdleTimeout,
		// Content codings pass through untouched: the owner negotiated
		// them with the client's Accept-Encoding.
		DisableCompression: true,
	}
	f.peers[key] = t
	return t
}

// close drops the idle connections to every peer.
func (f *forwarder) close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.peers {
		t.CloseIdleConnections()
	}
}

// route asks the Router where the stream at name is served: nil target
// means here. A request another node already forwarded is never
// forwarded again.
func (f *forwarder) route(r *http.Request, name string) (*url.URL, error) {
	target, err := f.router.Route(r.Context(), name)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		if !errors.Is(err, ErrUnavailable) {
			f.lg.WarnContext(r.Context(), "routing a stream request failed", "path", name, "err", err)
		}
		return nil, &httpError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE",
			msg: "the stream's node is unavailable; retry shortly", header: map[string]string{"Retry-After": "1"}}
	}
	if target != nil && r.Header.Get(ForwardedByHeader) != "" {
		return nil, &httpError{status: http.StatusServiceUnavailable, code: "NOT_OWNER",
			msg:    "this node does not serve the stream and the request was already forwarded once; retry shortly",
			header: map[string]string{"Retry-After": "1"}}
	}
	return target, nil
}

// forward sends the request to the node at target and streams its answer
// back: status, headers and body, each chunk of the body flushed as it
// arrives, so long-polls and SSE behave as if the client were talking to
// the owner. The request body is streamed too (still under guardBody's
// bounds). The client's identity travels in X-Forwarded-For (the owner
// believes it from its trusted proxies and the nodes its PeerRouter
// knows), its credentials in Authorization for the owner to check again.
func (f *forwarder) forward(c echo.Context, target *url.URL) error {
	in := c.Request()
	ctx := in.Context()
	out, err := f.outRequest(ctx, c.Response(), in, target)
	if err != nil {
		return err
	}
	body, _ := out.Body.(*forwardBody)
	if f.metrics != nil {
		f.metrics.Forwarded(target.Host)
	}
	// Once the whole request reached the owner it may have acted on it
	// (an append stored, its answer lost): only a request that never got
	// that far may be answered "not done, retry" (503). A write of the
	// request that failed means the owner never got all of it (a node
	// killed between two writes of a request on a pooled connection
	// resets it), so it cannot have acted on it either.
	var sent, cut atomic.Bool
	out = out.WithContext(httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{
		WroteHeaders: func() { sent.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) { cut.Store(i.Err != nil) },
	}))
	res, err := f.transport(target).RoundTrip(out)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the client left
		}
		if berr := body.failed(); berr != nil {
			return bodyReadError(berr) // the client's side, as for a local request
		}
		if f.metrics != nil {
			f.metrics.ForwardFailed(target.Host)
		}
		// RoundTrip returns only after its write loop is done with the
		// request, so cut is final here.
		delivered := sent.Load() && !cut.Load()
		f.lg.WarnContext(ctx, "forwarding to the stream's node failed", "node", target.Host, "delivered", delivered, "err", err)
		if delivered {
			return &httpError{status: http.StatusBadGateway, code: "FORWARD_FAILED",
				msg: "the stream's node failed after it got the request; its outcome is unknown"}
		}
		return &httpError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE",
			msg: "the stream's node cannot be reached; retry shortly", header: map[string]string{"Retry-After": "1"}}
	}
	defer res.Body.Close()

	w := c.Response()
	h := w.Header()
	removeHopHeaders(res.Header)
	// The owner's answer replaces the headers this node's middleware
	// already set (security, CORS, request id), which it sets as well.
	for k, vs := range res.Header {
		h[k] = vs
	}
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", publicLocation(in, target, loc))
	}
	w.WriteHeader(res.StatusCode)
	if in.Method == http.MethodHead {
		return nil
	}
	return f.copyBody(ctx, w, res.Body)
}

// outRequest is the request to send to target for in.
func (f *forwarder) outRequest(ctx context.Context, w http.ResponseWriter, in *http.Request, target *url.URL) (*http.Request, error) {
	u := *target
	u.Path = strings.TrimSuffix(target.Path, "/") + in.URL.Path
	u.RawPath = ""
	if in.URL.RawPath != "" {
		u.RawPath = strings.TrimSuffix(target.EscapedPath(), "/") + in.URL.RawPath
	}
	u.RawQuery = in.URL.RawQuery
	var body io.ReadCloser = http.NoBody
	if in.Body != nil && in.Body != http.NoBody && in.ContentLength != 0 {
		if in.ContentLength > f.maxBody {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge, code: "PAYLOAD_TOO_LARGE", msg: "request body exceeds the server's append limit"}
		}
		body = &forwardBody{body: http.MaxBytesReader(w, in.Body, f.maxBody)}
	}
	out, err := http.NewRequestWithContext(ctx, in.Method, u.String(), body)
	if err != nil {
		return nil, badRequest("cannot forward the request: " + err.Error())
	}
	if body != http.NoBody {
		out.ContentLength = in.ContentLength
	}
	out.Header = in.Header.Clone()
	removeHopHeaders(out.Header)
	// The Host the client used, so that the owner builds the Location
	// the client expects (see publicLocation for another mount prefix).
	out.Host = in.Host
	// A fork's source as a path the owner reads the same whatever prefix
	// either node is mounted under.
	if vs := in.Header.Values(protocol.HeaderForkedFrom); len(vs) == 1 {
		src, err := forkSource(in, vs[0])
		if err != nil {
			return nil, err
		}
		out.Header.Set(protocol.HeaderForkedFrom, (&url.URL{Path: StreamsRoute + src}).EscapedPath())
	}
	if out.Header.Get("X-Forwarded-Proto") == "" {
		scheme := "http"
		if in.TLS != nil {
			scheme = "https"
		}
		out.Header.Set("X-Forwarded-Proto", scheme)
	}
	peer := ratelimit.PeerIP(in.RemoteAddr)
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		peer = strings.Join(prior, ", ") + ", " + peer
	}
	out.Header.Set("X-Forwarded-For", peer)
	out.Header.Set(ForwardedByHeader, f.nodeID)
	if id := requestid.FromContext(ctx); id != "" {
		out.Header.Set(requestid.Header, id)
	}
	return out, nil
}

// copyBody copies the owner's body to the client, flushing after every
// read so that nothing the owner sent waits here.
func (f *forwarder) copyBody(ctx context.Context, w http.ResponseWriter, body io.Reader) error {
	rc := http.NewResponseController(w)
	bp := forwardBufs.Get().(*[]byte)
	defer forwardBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the client left
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // the client left
			}
			// The status and headers are gone: break the connection
			// rather than end a response that looks complete.
			f.lg.WarnContext(ctx, "forwarded response cut by the stream's node", "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// removeHopHeaders deletes the hop-by-hop headers of h, those that its
// Connection header names included.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// publicLocation rewrites a Location the owner answered with to the URL
// the client used when it points into the owner's API: the owner builds it
// from the forwarded Host and its own mount prefix, which may differ from
// this node's.
func publicLocation(in *http.Request, target *url.URL, loc string) string {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || (u.Host != target.Host && u.Host != in.Host) {
		return loc
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), strings.TrimSuffix(target.EscapedPath(), "/"))
	if !ok || (rest != "" && rest[0] != '/') {
		return loc
	}
	public := strings.TrimSuffix(externalURL(in), in.URL.EscapedPath()) // scheme://host and this node's mount prefix
	if u.RawQuery != "" {
		rest += "?" + u.RawQuery
	}
	return public + rest
}

// forwardBody is a request body on its way to the owner; it remembers
// a read error, so that a failed forward can tell the client's fault (a
// slow or oversized body) from the owner's.
type forwardBody struct {
	body io.ReadCloser
	mu   sync.Mutex
	err  error
}

func (b *forwardBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *forwardBody) Close() error { return b.body.Close() }

// failed is the error reading the body met, if any (nil for no body).
func (b *forwardBody) failed() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
