// Package metrics exports the server's metrics in the Prometheus format.
//
// Every server has its own prometheus.Registry (no global state), with the
// Go runtime and process collectors, the HTTP instruments the api package
// updates per request, and collectors that read the counters other packages
// already keep (sequencer.Registry.Stats, rotation.Rotator.Stats, ...) at
// scrape time, so those packages need not know about Prometheus and their
// hot paths pay nothing for it. docs/operations.md lists every metric.
//
// In cluster mode every metric carries the node's id as the label node
// (see NewNode and docs/cluster.md), and the cluster's own metrics
// (cluster.go) are exported.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name of the server.
const Namespace = "durable_streams"

// Live modes of a read, the values of the live label.
const (
	LiveNone     = "none"
	LiveLongPoll = "long-poll"
	LiveSSE      = "sse"
)

// RouteUnmatched is the route label of requests that matched no route.
const RouteUnmatched = "unmatched"

// durationBuckets span sub-millisecond cached reads to the longest live
// reads (long-polls wait 30 s and SSE connections last 60 s by default).
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NodeLabel is the name of the label that carries the node id in cluster
// mode.
const NodeLabel = "node"

// Metrics holds a server's registry and its HTTP instruments.
type Metrics struct {
	reg *prometheus.Registry
	// rr registers into reg, adding the node label in cluster mode; every
	// collector is registered through it.
	rr prometheus.Registerer

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	liveReaders *prometheus.GaugeVec
	// Children of liveReaders, resolved once: they change on every live
	// request.
	liveLongPoll, liveSSE prometheus.Gauge
	// series caches the children of requests and duration per label set
	// (map[seriesKey]series): a struct-keyed map lookup is cheaper than
	// hashing the label values on every request, and the labels are
	// bounded, so the cache is too.
	series sync.Map

	// forwarded and forwardErrors count the requests this node forwarded
	// to the owners of their streams, by target node; sealedLocal the
	// reads of other nodes' streams it answered from the cold tier instead.
	forwarded, forwardErrors *prometheus.CounterVec
	sealedLocal              prometheus.Counter
}

type seriesKey struct {
	route, method, live string
	code                int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// New returns Metrics with a fresh registry holding the Go runtime and
// process collectors and the HTTP instruments, for a single node. Add the
// server's sources with Watch.
func New() *Metrics { return NewNode("") }

// NewNode is New for node id of a cluster: every metric registered
// through it, the runtime's included, carries the constant label
// node="<id>", so that series of different nodes stay apart wherever they
// end up (federation, remote write, a dashboard summing over the
// cluster) independently of the scraper's instance label. An empty id
// adds no label.
func NewNode(id string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.rr = m.reg
	if id != "" {
		m.rr = prometheus.WrapRegistererWith(prometheus.Labels{NodeLabel: id}, m.reg)
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests answered, by route template, method and status code.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time to answer HTTP requests, by route template, method and live mode (none, long-poll, sse); live reads include their wait.",
		Buckets: durationBuckets,
	}, []string{"route", "method", "live"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "http", Name: "requests_in_flight",
		Help: "HTTP requests being served, live reads included.",
	})
	m.liveReaders = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "live_readers",
		Help: "Open live reads, by mode (long-poll, sse).",
	}, []string{"mode"})
	m.liveLongPoll = m.liveReaders.WithLabelValues(LiveLongPoll)
	m.liveSSE = m.liveReaders.WithLabelValues(LiveSSE)
	m.forwarded, m.forwardErrors, m.sealedLocal = forwardCounters()
	m.rr.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.inFlight, m.liveReaders,
		m.forwarded, m.forwardErrors, m.sealedLocal,
	)
	return m
}

// Registry returns the registry, for embedders that add their own metrics.
// Metrics registered directly on it do not carry the node label; use
// Registerer for that.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Registerer registers into Registry, adding the node label in cluster
// mode.
func (m *Metrics) Registerer() prometheus.Registerer { return m.rr }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector should not hide all the others.
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.rr, // adds promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// Request describes an answered HTTP request.
type Request struct {
	Route    string // the route template, e.g. "/v1/stream/*"; "" if none matched
	Method   string
	Code     int
	Live     string // LiveNone (or ""), LiveLongPoll or LiveSSE
	Duration time.Duration
}

// StartRequest counts a request in flight; live is its live mode. Every
// call must be followed by EndRequest with the same live mode.
func (m *Metrics) StartRequest(live string) {
	m.inFlight.Inc()
	if g := m.liveGauge(live); g != nil {
		g.Inc()
	}
}

// EndRequest records an answered request.
func (m *Metrics) EndRequest(r Request) {
	m.inFlight.Dec()
	live := r.Live
	if g := m.liveGauge(live); g != nil {
		g.Dec()
	} else {
		live = LiveNone
	}
	route := r.Route
	if route == "" {
		route = RouteUnmatched
	}
	method := methodLabel(r.Method)
	key := seriesKey{route: route, method: method, live: live, code: r.Code}
	s, ok := m.series.Load(key)
	if !ok {
		s, _ = m.series.LoadOrStore(key, series{
			requests: m.requests.WithLabelValues(route, method, codeLabel(r.Code)),
			duration: m.duration.WithLabelValues(route, method, live),
		})
	}
	ser := s.(series)
	ser.requests.Inc()
	ser.duration.Observe(r.Duration.Seconds())
}

func (m *Metrics) liveGauge(live string) prometheus.Gauge {
	switch live {
	case LiveLongPoll:
		return m.liveLongPoll
	case LiveSSE:
		return m.liveSSE
	}
	return nil
}

// methodLabel keeps the method label bounded: clients may send any token
// as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodOptions, http.MethodPatch:
		return m
	}
	return "OTHER"
}

// codes holds the labels of common status codes, so that counting a
// request does not format a number.
var codes = func() map[int]string {
	m := map[int]string{}
	for c := 100; c < 600; c++ {
		if http.StatusText(c) != "" || c == 499 {
			m[c] = strconv.Itoa(c)
		}
	}
	return m
}()

func codeLabel(c int) string {
	if s, ok := codes[c]; ok {
		return s
	}
	if c < 100 || c > 599 {
		return "other"
	}
	return strconv.Itoa(c)
}
