// Package client is a Go client for the Durable Streams protocol: create,
// append to, read, tail, close and delete streams over HTTP.
//
// A Client talks to one server; Client.Stream returns a handle for one
// stream path. Reads follow a stream from any offset, catch up, and then
// tail it live with long-polling or Server-Sent Events, reconnecting on
// network errors. A Producer appends with exactly-once semantics using the
// protocol's idempotent producer headers, with several batches in flight.
// Stream.Consume calls a handler per batch and commits its offset to an
// OffsetStore, resuming there after a restart; Stream.ReadAll returns
// everything up to the current end.
//
//	c := client.New("http://127.0.0.1:4437")
//	s := c.Stream("logs/app")
//	_, err := s.Create(ctx, client.CreateOptions{ContentType: "application/json"})
//	_, err = s.AppendJSON(ctx, map[string]any{"level": "info"}, client.AppendOptions{})
//	r := s.Read(ctx, client.ReadOptions{Live: client.LiveAuto})
//	defer r.Close()
//	for msg, err := range r.Messages() { ... }
//
// The package depends only on the standard library.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Protocol header names.
const (
	hdrStreamTTL           = "Stream-TTL"
	hdrStreamExpiresAt     = "Stream-Expires-At"
	hdrStreamSeq           = "Stream-Seq"
	hdrStreamCursor        = "Stream-Cursor"
	hdrStreamNextOffset    = "Stream-Next-Offset"
	hdrStreamUpToDate      = "Stream-Up-To-Date"
	hdrStreamClosed        = "Stream-Closed"
	hdrProducerID          = "Producer-Id"
	hdrProducerEpoch       = "Producer-Epoch"
	hdrProducerSeq         = "Producer-Seq"
	hdrProducerExpectedSeq = "Producer-Expected-Seq"
	hdrProducerReceivedSeq = "Producer-Received-Seq"
	hdrForkedFrom          = "Stream-Forked-From"
	hdrForkOffset          = "Stream-Fork-Offset"
	hdrSSEDataEncoding     = "Stream-SSE-Data-Encoding"
)

// DefaultStreamPrefix is the URL path under which the server serves streams.
const DefaultStreamPrefix = "/v1/stream/"

// defaultUserAgent identifies this client in server logs.
const defaultUserAgent = "durable-streams-go-client/1"

// Client talks to one Durable Streams server. It is safe for concurrent
// use; create it once and share it.
type Client struct {
	base      string // scheme://host[:port][/mount], no trailing slash
	prefix    string // stream prefix, with leading and trailing slash
	hc        *http.Client
	token     string
	userAgent string
	retry     RetryPolicy
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client used for every request. The default
// has no overall timeout, since live reads hold requests open (use
// contexts for deadlines), and keeps enough idle connections per host for
// a producer's pipelined requests. A client's Timeout, if any, must exceed
// the server's long-poll timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends "Authorization: Bearer <token>" with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithRetry sets the retry policy for requests, reads and producers.
func WithRetry(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithStreamPrefix sets the URL path under which the server serves streams
// (default DefaultStreamPrefix, "/v1/stream/").
func WithStreamPrefix(prefix string) Option {
	return func(c *Client) { c.prefix = prefix }
}

// New returns a client for the server at baseURL, such as
// "http://127.0.0.1:4437". A path in baseURL (a mount point behind a
// proxy) is kept in front of the stream prefix.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		prefix:    DefaultStreamPrefix,
		hc:        defaultHTTPClient(),
		userAgent: defaultUserAgent,
	}
	for _, o := range opts {
		o(c)
	}
	c.prefix = "/" + strings.Trim(c.prefix, "/") + "/"
	if c.prefix == "//" {
		c.prefix = "/"
	}
	c.retry = c.retry.withDefaults()
	return c
}

// defaultHTTPClient is like http.DefaultClient, but keeps more idle
// connections per host: the default of 2 would make every pipelined
// producer request beyond two open a new connection.
func defaultHTTPClient() *http.Client {
	dt, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultClient // replaced by the program: respect that
	}
	tr := dt.Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr}
}

// Stream returns a handle for the stream at path (such as "logs/app"; a
// leading slash is ignored). It does no I/O; the stream need not exist.
func (c *Client) Stream(path string) *Stream {
	path = strings.TrimLeft(path, "/")
	return &Stream{c: c, path: path, url: c.base + c.prefix + escapePath(path)}
}

// escapePath escapes each segment of a stream path, keeping the slashes.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// request is one logical HTTP exchange, which do may send several times.
type request struct {
	method string
	url    string
	header http.Header
	body   []byte
	// idempotent requests are retried after failures that leave it unknown
	// whether the server applied them (a dropped connection, a 502);
	// others only when the server certainly did not apply them.
	idempotent bool
}

// send performs one attempt of req.
func (c *Client) send(ctx context.Context, req *request) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return nil, fmt.Errorf("building %s request: %w", req.method, err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		hr.Header.Set("User-Agent", c.userAgent)
	}
	return c.hc.Do(hr)
}

// do sends req, retrying transient failures under the retry policy, and
// returns the first 2xx response (body open) or the final error.
func (c *Client) do(ctx context.Context, req *request) (*http.Response, error) {
	pol := c.retry
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, req)
		var wait retryDecision
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			err = fmt.Errorf("%s %s: %w", req.method, req.url, err)
			wait = decideNetwork(err, req.idempotent)
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		default:
			err = responseError(resp)
			wait = decideStatus(resp, req.idempotent)
		}
		if !wait.retry || !pol.allows(attempt+1) {
			return nil, err
		}
		if serr := sleep(ctx, pol.delay(attempt, wait.after)); serr != nil {
			return nil, serr
		}
	}
}

// retryDecision says whether a failed attempt may be retried, and how
// long the server asked to wait (0: use the backoff).
type retryDecision struct {
	retry bool
	after retryAfter
}

// decideNetwork decides on a transport error. A failed dial never reached
// the server, so any request may be retried; other errors may have
// happened after the server applied the request.
func decideNetwork(err error, idempotent bool) retryDecision {
	if idempotent {
		return retryDecision{retry: true}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return retryDecision{retry: true}
	}
	return retryDecision{}
}

// decideStatus decides on an error status. 429 and 503 mean the server
// did not process the request, so even non-idempotent requests are
// retried; other 5xx may come from a proxy after the server applied it.
func decideStatus(resp *http.Response, idempotent bool) retryDecision {
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		return retryDecision{retry: true, after: parseRetryAfter(resp.Header.Get("Retry-After"))}
	case s >= 500 && idempotent:
		return retryDecision{retry: true}
	}
	return retryDecision{}
}

// drain discards the rest of a body so its connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 256<<10))
	_ = resp.Body.Close()
}
