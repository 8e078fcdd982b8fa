package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/internal/offset"
)

// Options configure a Manager. Zero values mean defaults.
type Options struct {
	// Path is the database file (required unless PostgresDSN is set).
	Path string
	// PostgresDSN, if set, keeps the subscriptions in this PostgreSQL
	// database, shared by the nodes of a cluster, instead of Path (see
	// cluster.go).
	PostgresDSN string
	// Streams gives access to the server's streams (required).
	Streams Streams
	Logger  *slog.Logger
	// Webhooks enables webhook subscriptions and their deliveries; without
	// it creating one is refused (pull-wake works either way).
	Webhooks bool
	// AllowLoopback admits loopback webhook targets (localhost,
	// 127.0.0.0/8, ::1), the protocol's development exception.
	AllowLoopback bool
	// PublicURL, if set, is the stream root URL (e.g.
	// https://streams.example/v1/stream) used in callback_url and
	// jwks_url; otherwise they derive from the request that created the
	// subscription or reads it.
	PublicURL string
	// Workers is the number of delivery workers (default 8); QueueSize
	// bounds the deliveries waiting for one (default 1024).
	Workers   int
	QueueSize int
	// Timeout bounds one webhook request (default 10s).
	Timeout time.Duration
	// RetryBase and RetryMax shape the backoff of failed deliveries:
	// RetryBase·2^(n-1) up to RetryMax, ±20% jitter (defaults 1s, 60s).
	RetryBase, RetryMax time.Duration
	// Resolver checks webhook host names at subscribe time (default
	// net.DefaultResolver).
	Resolver Resolver
	// MaxSubscriptions bounds the number of subscriptions (default
	// 10000); creating more answers 400.
	MaxSubscriptions int
	// WatchInterval is how often a node of a cluster checks the shared
	// store for changed definitions and overdue wakes (default 1s).
	WatchInterval time.Duration
}

// maxResponseBytes bounds how much of a webhook's response is read.
const maxResponseBytes = 64 << 10

// Manager owns every subscription. It is safe for concurrent use.
type Manager struct {
	opt    Options
	lg     *slog.Logger
	st     store
	shared bool // st is shared with other nodes (cluster.go)
	keys   *keyring
	client *http.Client

	createMu sync.Mutex // serializes creations, so one id is created once
	mu       sync.Mutex // guards subs and unresumed
	subs     map[string]*sub
	// unresumed are the subscriptions another node created that this one
	// cached but has not resumed yet (cluster.go).
	unresumed map[string]*sub
	count     atomic.Int64 // len(subs), read without mu by Appended

	drainMu sync.Mutex // one drain at a time, so a stream's tails are handled in order
	pendMu  sync.Mutex
	pend    map[string]string // stream path → newest tail notified, not yet dispatched
	kick    chan struct{}

	tailMu sync.Mutex
	tails  map[string]string // tails of linked streams, from notifications and lookups

	jobs   chan job
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	rndMu sync.Mutex
	rnd   *mrand.Rand

	targetsMu sync.Mutex
	targets   map[string]*target // webhook hosts with failed deliveries

	wakes, delivered, wakeEvents, failures atomic.Uint64 // see Stats
}

// Stats are the manager's counters, for metrics.
type Stats struct {
	Subscriptions int    // subscriptions now
	Failing       int    // of those, with a delivery being retried
	Queued        int    // deliveries waiting for a worker
	Wakes         uint64 // wakes issued (generations)
	Delivered     uint64 // webhook deliveries accepted by their receivers
	WakeEvents    uint64 // wake events appended to wake streams
	Failures      uint64 // failed delivery attempts (each is retried)
}

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	st := Stats{Queued: len(m.jobs), Wakes: m.wakes.Load(), Delivered: m.delivered.Load(),
		WakeEvents: m.wakeEvents.Load(), Failures: m.failures.Load()}
	for _, s := range m.list() {
		st.Subscriptions++
		s.mu.Lock()
		if s.st.Status == "failed" {
			st.Failing++
		}
		s.mu.Unlock()
	}
	return st
}

// sub is one subscription. Its fields are guarded by mu; Manager.mu is
// never taken while holding it.
type sub struct {
	mu      sync.Mutex
	id      string
	cfg     Config
	hash    string
	base    string // stream root URL seen at creation
	created time.Time
	st      state
	links   map[string]*link
	gone    bool        // deleted: every request and delivery for it fails
	lease   *time.Timer // lease expiry of the current wake
	retry   *time.Timer // next delivery attempt
	sending bool        // a delivery attempt is running (at most one at a time)
	// unlockStore lets the store lock go (Manager.lock); nil when not held.
	unlockStore func()
}

// state is a subscription's persisted delivery state.
type state struct {
	Status     string            `json:"status"` // "active" or "failed"
	Generation int64             `json:"generation"`
	WakeID     string            `json:"wake_id,omitempty"`
	Holder     string            `json:"holder,omitempty"`
	Snapshot   map[string]string `json:"snapshot,omitempty"`  // tails when the wake was issued
	Delivered  bool              `json:"delivered,omitempty"` // the wake reached its target or wake stream
	RetryCount int               `json:"retry_count,omitempty"`
	NextTry    int64             `json:"next_attempt_at,omitempty"`  // Unix ms
	LeaseUntil int64             `json:"lease_expires_at,omitempty"` // Unix ms
	// SendingUntil claims the wake's delivery for a running attempt in a
	// shared store (Unix ms): other nodes leave it alone until then.
	SendingUntil int64 `json:"sending_until,omitempty"`
}

// link is a stream cursor.
type link struct {
	path     string
	explicit bool
	glob     bool
	acked    string
}

func (l *link) linkType() string {
	if l.explicit {
		return "explicit"
	}
	return "glob"
}

// job is one delivery of a wake.
type job struct {
	s   *sub
	gen int64
}

// Open opens (creating) the database, loads every subscription and
// starts the dispatcher and delivery workers. Close stops them.
func Open(ctx context.Context, opt Options) (*Manager, error) {
	if (opt.Path == "" && opt.PostgresDSN == "") || opt.Streams == nil {
		return nil, errors.New("subscriptions: Path (or PostgresDSN) and Streams are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 1024
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.RetryBase <= 0 {
		opt.RetryBase = time.Second
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = 60 * time.Second
	}
	if opt.Resolver == nil {
		opt.Resolver = net.DefaultResolver
	}
	if opt.MaxSubscriptions <= 0 {
		opt.MaxSubscriptions = 10000
	}
	if opt.WatchInterval <= 0 {
		opt.WatchInterval = time.Second
	}
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	if opt.PublicURL != "" {
		if u, err := url.Parse(opt.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("subscriptions: public URL %q is not an absolute http(s) URL", opt.PublicURL)
		}
	}
	var st store
	var err error
	if opt.PostgresDSN != "" {
		st, err = openPostgres(ctx, opt.PostgresDSN)
	} else {
		st, err = openSQLite(ctx, opt.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("subscriptions: open store: %w", err)
	}
	keys, err := loadKeys(ctx, st)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("subscriptions: keys: %w", err)
	}
	// The version before the load: a change made in between reloads.
	known, err := st.version(ctx)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("subscriptions: version: %w", err)
	}
	rows, err := st.load(ctx)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("subscriptions: load: %w", err)
	}
	m := &Manager{opt: opt, lg: opt.Logger.With("component", "subscriptions"), st: st, shared: st.shared(), keys: keys,
		subs: map[string]*sub{}, unresumed: map[string]*sub{}, pend: map[string]string{}, kick: make(chan struct{}, 1),
		tails: map[string]string{}, jobs: make(chan job, opt.QueueSize), targets: map[string]*target{},
		rnd: mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))}
	m.client = newClient(opt)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, r := range rows {
		m.subs[r.id] = newSub(r)
	}
	m.count.Store(int64(len(m.subs)))
	for i := 0; i < opt.Workers; i++ {
		m.wg.Add(1)
		go m.worker()
	}
	m.wg.Add(1)
	go m.dispatch()
	m.wg.Add(1)
	go m.resume(m.list())
	if m.shared {
		m.wg.Add(1)
		go m.watch(known)
	}
	return m, nil
}

// resume re-arms what a restart interrupted (steps 2 to 4 of the package
// comment).
func (m *Manager) resume(loaded []*sub) {
	defer m.wg.Done()
	for _, s := range loaded {
		m.resumeOne(s)
	}
}

// resumeOne links s's unlinked matching streams and re-arms its wake.
func (m *Manager) resumeOne(s *sub) {
	m.discover(s)
	if m.lock(m.ctx, s) != nil {
		return
	}
	defer m.unlock(s)
	m.rearm(s)
}

// rearm schedules what s's state calls for: the delivery of an
// undelivered wake, the end of a delivered one's lease, or a wake if it
// is idle with pending work. s is locked.
func (m *Manager) rearm(s *sub) {
	switch {
	case s.gone:
	case s.st.WakeID != "" && !s.st.Delivered:
		m.scheduleAt(s, time.UnixMilli(s.st.NextTry))
	case s.st.WakeID != "" && s.st.LeaseUntil != 0:
		m.armLease(s, time.Until(time.UnixMilli(s.st.LeaseUntil)))
	case s.st.WakeID == "":
		m.maybeWake(m.ctx, s)
	}
}

// discover links the streams that match s's pattern but are not linked,
// from their beginnings: streams created after s whose first append was
// not dispatched before a restart (or that have not been appended to).
func (m *Manager) discover(s *sub) {
	if s.cfg.Pattern == "" {
		return
	}
	var found []string
	err := m.opt.Streams.List(m.ctx, literalPrefix(s.cfg.Pattern), func(p string) bool {
		if Match(s.cfg.Pattern, p) && p != s.cfg.WakeStream {
			found = append(found, p)
		}
		return true
	})
	if err != nil {
		m.lg.Warn("pattern streams not listed", "subscription", s.id, "err", err)
		return
	}
	if m.lock(m.ctx, s) != nil {
		return
	}
	defer m.unlock(s)
	if s.gone {
		return
	}
	var added []link
	for _, p := range found {
		if l := s.links[p]; l == nil {
			l = &link{path: p, glob: true, acked: offset.Start}
			s.links[p] = l
			added = append(added, *l)
		} else if !l.glob {
			l.glob = true
			added = append(added, *l)
		}
	}
	if len(added) > 0 {
		_ = m.save(m.ctx, s, added, nil)
	}
}

// Close stops deliveries and timers and closes the database. Deliveries
// in flight are canceled; their wakes are delivered again after a
// restart.
func (m *Manager) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.cancel()
	for _, s := range m.list() {
		s.mu.Lock()
		stopTimer(&s.lease)
		stopTimer(&s.retry)
		s.mu.Unlock()
	}
	m.wg.Wait()
	m.client.CloseIdleConnections()
	return m.st.close()
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

func (m *Manager) list() []*sub {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*sub, 0, len(m.subs))
	for _, s := range m.subs {
		out = append(out, s)
	}
	return out
}

func (m *Manager) get(id string) *sub {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subs[id]
}

// JWKS returns the public signing keys.
func (m *Manager) JWKS() JWKS { return m.keys.jwks }

// root is the stream root URL for links handed out.
func (m *Manager) root(requestRoot string) string {
	if m.opt.PublicURL != "" {
		return m.opt.PublicURL
	}
	return strings.TrimSuffix(requestRoot, "/")
}
