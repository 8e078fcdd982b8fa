// Package api is the HTTP face of the server: routing, header parsing and
// validation, response headers, and the long-poll and SSE writers. The
// handler can be mounted under any prefix (for example with
// http.StripPrefix); streams live under /v1/stream/ below that prefix.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/faults"
	"github.com/streamtier/durable-streams/health"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/connlimit"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
	"github.com/streamtier/durable-streams/sequencer"
)

// StreamsRoute is the path prefix of stream URLs.
const StreamsRoute = "/v1/stream/"

// Options configure the HTTP layer.
type Options struct {
	Registry        *sequencer.Registry
	Logger          *slog.Logger
	LongPollTimeout time.Duration // default 30s
	SSEMaxDuration  time.Duration // SSE connections are closed after this (default 60s) so CDNs can collapse them
	MaxAppendBytes  int64         // default 8 MiB; larger bodies get 413
	MaxReadChunk    int           // default 1 MiB
	// ReadResponseMax bounds catch-up responses: 0 (the default) streams
	// everything from the offset to the tail in one response, reading
	// MaxReadChunk bytes at a time; a positive value answers with one read
	// of at most that many bytes that never crosses a segment boundary
	// (see catchUp).
	ReadResponseMax int
	// DisableCompression never compresses responses; otherwise read
	// responses of compressible content types are compressed with the
	// coding the client accepts (gzip, zstd), see encodingFor.
	DisableCompression bool
	// DisableZeroCopy sends bytes of cached cold segments through memory
	// like all others, instead of from the file with sendfile.
	DisableZeroCopy bool
	CacheMode       cache.Mode
	// EdgeSecret, if set, lets a trusted edge that presents it in
	// X-Edge-Secret pick the cache mode of a request with X-Cache-Mode.
	EdgeSecret string
	// Ready reports readiness for /readyz (nil: always ready) when Health
	// is nil.
	Ready func(ctx context.Context) error
	// Health runs the checks behind /readyz.
	Health *health.Checker
	// Metrics, if set, records the HTTP metrics and is served at /metrics.
	Metrics *metrics.Metrics
	// Admin serves the segment administration API under /v1/admin/ (nil:
	// not served); see AdminRoute.
	Admin *admin.Service
	// Auth checks credentials and scopes (nil or disabled: everything is
	// allowed); see auth.go for the rules per route.
	Auth *auth.Authenticator
	// RateLimit limits requests per client (nil: no limit).
	RateLimit *ratelimit.Limiter
	// Hooks are the embedding application's append callbacks (see
	// package hooks); lifecycle hooks are run by package server.
	Hooks hooks.Hooks
	// BodyMinRate is the average rate, in bytes per second, at which a
	// request body must arrive once BodyReadGrace has passed; slower
	// bodies get 408 and their connection is closed. 0 means
	// DefaultBodyMinRate, negative no minimum.
	BodyMinRate int64
	// BodyReadGrace is how long a body may take before BodyMinRate
	// applies (default DefaultBodyReadGrace).
	BodyReadGrace time.Duration
	// BodyBudget bounds the request body bytes received at once, in total
	// and per client address (nil: unbounded).
	BodyBudget *connlimit.Budget
	// Proxies are the trusted proxies whose X-Forwarded-For names the
	// client of the per-client body budget (see ratelimit.ClientAddr).
	Proxies ratelimit.Proxies
	// ReadOnlyStream, if set, is the path of a stream only the server
	// writes (the registry stream): clients may read it, but appends,
	// closes, PUTs with data and DELETE get 403 READ_ONLY_STREAM.
	ReadOnlyStream string
	// Catalog serves the stream listing at ListRoute (nil: not served).
	Catalog *catalog.Catalog
	// Faults, if set, injects test faults and serves faults.ControlPath;
	// nil (production) leaves both out, so the control path is a 404.
	Faults *faults.Injector
	// Subscriptions serves the subscription APIs under ControlRoute and
	// hears of every acknowledged append (nil: ControlRoute answers 404).
	Subscriptions Subscriptions
	// CORS is the cross-origin policy (zero value: every origin).
	CORS CORS
	// CursorEpoch and CursorInterval set the Stream-Cursor clock of live
	// responses (protocol section 8.1); zero values take the protocol's
	// defaults, 2024-10-09T00:00:00Z and 20 s.
	CursorEpoch    time.Time
	CursorInterval time.Duration
	// Router, in cluster mode, names the node that serves each stream;
	// requests for streams served elsewhere are forwarded there (see
	// forward.go). Nil: this node serves every stream, at no cost.
	Router Router
	// NodeID names this node in the ForwardedByHeader of the requests it
	// forwards.
	NodeID string
	// ForwardConnsPerPeer bounds the connections to each node requests
	// are forwarded to (default DefaultForwardConnsPerPeer).
	ForwardConnsPerPeer int
}

// API serves the protocol.
type API struct {
	opt  Options
	reg  *sequencer.Registry
	lg   *slog.Logger
	echo *echo.Echo

	cache   *cache.Policy
	reads   *cache.Collapser[readKey, sequencer.Chunk]
	waiters atomic.Int64 // live reads waiting for data
	// zeroCopied counts bytes sent from files with sendfile.
	zeroCopied atomic.Int64

	metrics *metrics.Metrics
	after   *afterQueue // nil without an AfterAppend hook
	fwd     *forwarder  // nil without a Router
	// sealedSlots bounds the reads of other nodes' streams answered here
	// (serveSealed); nil without a Router.
	sealedSlots chan struct{}

	cursorClock protocol.CursorClock
	rndMu       sync.Mutex
	rnd         *rand.Rand
}

// New builds the HTTP layer.
func New(opt Options) *API {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	// Lines logged with a request's context carry its id.
	opt.Logger = slog.New(requestid.NewHandler(opt.Logger.Handler()))
	if opt.LongPollTimeout <= 0 {
		opt.LongPollTimeout = 30 * time.Second
	}
	if opt.SSEMaxDuration <= 0 {
		opt.SSEMaxDuration = 60 * time.Second
	}
	if opt.MaxAppendBytes <= 0 {
		opt.MaxAppendBytes = 8 << 20
	}
	if opt.BodyMinRate == 0 {
		opt.BodyMinRate = DefaultBodyMinRate
	}
	if opt.BodyReadGrace <= 0 {
		opt.BodyReadGrace = DefaultBodyReadGrace
	}
	if opt.MaxReadChunk <= 0 {
		opt.MaxReadChunk = 1 << 20
	}
	a := &API{opt: opt, reg: opt.Registry, lg: opt.Logger, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		cache: cache.NewPolicy(opt.CacheMode, opt.EdgeSecret), reads: newReadCollapser(), metrics: opt.Metrics,
		cursorClock: protocol.CursorClock{Epoch: opt.CursorEpoch, Interval: opt.CursorInterval}}
	a.fwd = newForwarder(opt)
	if a.fwd != nil {
		a.sealedSlots = make(chan struct{}, maxLocalSealedReads)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.echoError
	e.Use(a.observe) // outermost: it sees every answer, errors included
	e.Use(securityHeaders, corsMiddleware(opt.CORS), checkRequestID, a.guardBody)
	if opt.Auth.Enabled() || opt.RateLimit != nil {
		e.Use(a.guard)
	}
	if opt.Faults != nil {
		e.Use(faultMiddleware(opt.Faults))
		e.Any(faults.ControlPath, faultControl(opt.Faults))
	}
	if opt.Hooks.AfterAppend != nil {
		a.after = newAfterQueue(opt.Hooks.AfterAppend, opt.Logger)
	}
	e.GET(HealthRoute, func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET(ReadyRoute, a.readyz)
	if opt.Metrics != nil {
		e.GET(MetricsRoute, echo.WrapHandler(opt.Metrics.Handler()))
	}
	e.Any(StreamsRoute+"*", a.stream)
	e.Any(ControlRoute+"*", a.control) // reserved: routed before streams
	if opt.Admin != nil {
		e.Any(AdminRoute+"*", a.admin)
	}
	if opt.Catalog != nil {
		e.GET(ListRoute, a.listStreams)
	}
	a.echo = e
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.echo.ServeHTTP(w, r) }

// Close releases the idle connections to the nodes requests were
// forwarded to; requests still running keep theirs.
func (a *API) Close() {
	if a != nil {
		a.fwd.close()
	}
}

// routeKey is the stream path whose node serves a request for name: its
// own, except for a fork's creation, which goes to its source's node. A
// fork reads what it inherits through its source, so the two live on one
// node; the fork's lease, taken there at creation, keeps it there. A bad
// Stream-Forked-From is refused where the request is served.
func routeKey(r *http.Request, name string) string {
	if r.Method != http.MethodPut {
		return name
	}
	if vs := r.Header.Values(protocol.HeaderForkedFrom); len(vs) == 1 {
		if src, err := forkSource(r, vs[0]); err == nil {
			return src
		}
	}
	return name
}

func (a *API) stream(c echo.Context) error {
	r := c.Request()
	name := strings.TrimPrefix(r.URL.Path, StreamsRoute)
	if err := protocol.ValidateStreamPath(name); err != nil {
		return badRequest(err.Error())
	}
	if isControlPath(name) {
		return a.control(c)
	}
	if a.fwd != nil {
		target, err := a.fwd.route(r, routeKey(r, name))
		if err != nil {
			return err
		}
		if target != nil {
			if served, err := a.serveSealed(c, name); served {
				return err
			}
			return a.fwd.forward(c, target)
		}
	}
	switch r.Method {
	case http.MethodPut:
		return a.put(c, name)
	case http.MethodPost:
		return a.post(c, name)
	case http.MethodGet:
		return a.get(c, name)
	case http.MethodHead:
		return a.head(c, name)
	case http.MethodDelete:
		return a.delete(c, name)
	}
	c.Response().Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	return &httpError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", msg: "method not allowed on a stream"}
}

func (a *API) cursor(client string) string {
	a.rndMu.Lock()
	defer a.rndMu.Unlock()
	return a.cursorClock.Cursor(time.Now(), client, a.rnd)
}

// securityHeaders adds the browser hardening headers of protocol section
// 10.7 to every response, errors included.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		return next(c)
	}
}

// httpError is an error answered with a status and a JSON body.
type httpError struct {
	status int
	code   string
	msg    string
	header map[string]string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) *httpError {
	return &httpError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: msg}
}

// fromStreamErr maps a sequencer error to an HTTP error.
func fromStreamErr(err error) *httpError {
	var se *sequencer.Error
	if !errors.As(err, &se) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &httpError{status: 499, code: "CANCELED", msg: "request canceled"}
		}
		return &httpError{status: http.StatusInternalServerError, code: "INTERNAL", msg: "internal error"}
	}
	switch se.Kind {
	case sequencer.KindNotFound:
		return &httpError{status: http.StatusNotFound, code: "NOT_FOUND", msg: se.Msg}
	case sequencer.KindGone:
		return &httpError{status: http.StatusGone, code: "GONE", msg: se.Msg}
	case sequencer.KindBadRequest:
		return &httpError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: se.Msg}
	case sequencer.KindConflict:
		return &httpError{status: http.StatusConflict, code: "CONFLICT", msg: se.Msg}
	case sequencer.KindClosed:
		return &httpError{status: http.StatusConflict, code: "STREAM_CLOSED", msg: se.Msg,
			header: map[string]string{protocol.HeaderStreamClosed: "true", protocol.HeaderStreamNextOffset: se.Tail}}
	case sequencer.KindStaleEpoch:
		return &httpError{status: http.StatusForbidden, code: "STALE_EPOCH", msg: se.Msg,
			header: map[string]string{protocol.HeaderProducerEpoch: itoa(se.Epoch)}}
	case sequencer.KindSeqGap:
		return &httpError{status: http.StatusConflict, code: "SEQUENCE_GAP", msg: se.Msg,
			header: map[string]string{protocol.HeaderProducerExpectedSeq: itoa(se.ExpectedSeq), protocol.HeaderProducerReceivedSeq: itoa(se.ReceivedSeq)}}
	case sequencer.KindUnavailable:
		return &httpError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", msg: se.Msg,
			header: map[string]string{"Retry-After": "1"}}
	case sequencer.KindStorageFull:
		// Nothing was written, so a retry is safe; it succeeds once an
		// operator frees space, which takes longer than a 503's second.
		return &httpError{status: http.StatusInsufficientStorage, code: "INSUFFICIENT_STORAGE", msg: se.Msg,
			header: map[string]string{"Retry-After": "30"}}
	}
	return &httpError{status: http.StatusInternalServerError, code: "INTERNAL", msg: "internal error"}
}

// echoError writes every error as a JSON body with a short reason.
func (a *API) echoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *httpError
	var ee *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = &httpError{status: http.StatusRequestEntityTooLarge, code: "PAYLOAD_TOO_LARGE", msg: "request body exceeds the server's append limit"}
	case errors.As(err, &ee):
		he = &httpError{status: ee.Code, code: strings.ToUpper(strings.ReplaceAll(http.StatusText(ee.Code), " ", "_")), msg: http.StatusText(ee.Code)}
	default:
		he = fromStreamErr(err)
	}
	if he.status >= 500 {
		a.lg.ErrorContext(c.Request().Context(), "request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	h := c.Response().Header()
	for k, v := range he.header {
		h.Set(k, v)
	}
	cache.SetNoStore(h)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(he.status)
		return
	}
	body, _ := json.Marshal(struct {
		Code    string `json:"error"`
		Message string `json:"message"`
	}{he.code, he.msg})
	_ = c.Blob(he.status, "application/json", append(body, '\n'))
}
