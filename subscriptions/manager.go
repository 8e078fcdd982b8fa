package subscriptions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// Options configure a Manager. Zero values mean defaults.
type Options struct {
	// Path is the database file (required).
	Path string
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
}

// maxResponseBytes bounds how much of a webhook's response is read.
const maxResponseBytes = 64 << 10

// Manager owns every subscription. It is safe for concurrent use.
type Manager struct {
	opt    Options
	lg     *slog.Logger
	st     *store
	keys   *keyring
	client *http.Client

	createMu sync.Mutex // serializes creations, so one id is created once
	mu       sync.Mutex // guards subs
	subs     map[string]*sub
	count    atomic.Int64 // len(subs), read without mu by Appended

	pendMu sync.Mutex
	pend   map[string]string // stream path → newest tail notified, not yet dispatched
	kick   chan struct{}

	tailMu sync.Mutex
	tails  map[string]string // tails of linked streams, from notifications and lookups

	jobs   chan job
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	rndMu sync.Mutex
	rnd   *mrand.Rand

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
	if opt.Path == "" || opt.Streams == nil {
		return nil, errors.New("subscriptions: Path and Streams are required")
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
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	st, err := openStore(ctx, opt.Path)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: open %s: %w", opt.Path, err)
	}
	keys, err := loadKeys(ctx, st)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("subscriptions: keys: %w", err)
	}
	rows, err := st.load(ctx)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("subscriptions: load: %w", err)
	}
	m := &Manager{opt: opt, lg: opt.Logger.With("component", "subscriptions"), st: st, keys: keys,
		subs: map[string]*sub{}, pend: map[string]string{}, kick: make(chan struct{}, 1),
		tails: map[string]string{}, jobs: make(chan job, opt.QueueSize),
		rnd: mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))}
	m.client = newClient(opt)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, r := range rows {
		s := &sub{id: r.id, cfg: r.cfg, hash: r.hash, base: r.baseURL, created: r.createdAt, st: r.state, links: map[string]*link{}}
		for _, l := range r.links {
			s.links[l.path] = &l
		}
		m.subs[s.id] = s
	}
	m.count.Store(int64(len(m.subs)))
	for i := 0; i < opt.Workers; i++ {
		m.wg.Add(1)
		go m.worker()
	}
	m.wg.Add(1)
	go m.dispatch()
	m.wg.Add(1)
	go m.resume()
	return m, nil
}

// newClient is the HTTP client of deliveries: every connection goes
// through the SSRF guard, no proxy (it would be what is dialed), no
// redirects (a redirect is a failed delivery).
func newClient(opt Options) *http.Client {
	d := guardedDialer(opt.AllowLoopback, opt.Timeout)
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   opt.Timeout,
		ResponseHeaderTimeout: opt.Timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: opt.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// resume re-arms what a restart interrupted (steps 2 to 4 of the package
// comment).
func (m *Manager) resume() {
	defer m.wg.Done()
	for _, s := range m.list() {
		m.discover(s)
		s.mu.Lock()
		switch {
		case s.st.WakeID != "" && !s.st.Delivered:
			m.scheduleAt(s, time.UnixMilli(s.st.NextTry))
		case s.st.WakeID != "" && s.st.LeaseUntil != 0:
			m.armLease(s, time.Until(time.UnixMilli(s.st.LeaseUntil)))
		case s.st.WakeID == "":
			m.maybeWake(m.ctx, s)
		}
		s.mu.Unlock()
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
	s.mu.Lock()
	defer s.mu.Unlock()
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

// ----- configuration -----

func validID(id string) *Error {
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) || strings.ContainsAny(id, "/\\") {
		return errf(CodeInvalidRequest, fmt.Sprintf("subscription id must be 1 to %d bytes of UTF-8 without slashes", maxIDLen))
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errf(CodeInvalidRequest, "subscription id must not contain control characters")
		}
	}
	return nil
}

// normPath checks a stream-root-relative stream path from a request body.
func normPath(field, p string) (string, *Error) {
	p = strings.Trim(p, "/")
	if err := protocol.ValidateStreamPath(p); err != nil {
		return "", errf(CodeInvalidRequest, field+": "+err.Error())
	}
	if p == ControlPrefix || strings.HasPrefix(p, ControlPrefix+"/") {
		return "", errf(CodeInvalidRequest, field+": paths under "+ControlPrefix+"/ are reserved")
	}
	return p, nil
}

// normalize validates a create request and returns its configuration.
func (m *Manager) normalize(ctx context.Context, req *CreateRequest) (Config, *Error) {
	var c Config
	switch Type(req.Type) {
	case TypeWebhook, TypePullWake:
		c.Type = Type(req.Type)
	default:
		return c, errf(CodeInvalidRequest, `type must be "webhook" or "pull-wake"`)
	}
	if req.Pattern != "" {
		p := strings.Trim(req.Pattern, "/")
		if err := protocol.ValidateStreamPath(p); err != nil {
			return c, errf(CodeInvalidRequest, "pattern: "+err.Error())
		}
		c.Pattern = p
	}
	if len(req.Streams) > maxStreamsPerCall {
		return c, errf(CodeInvalidRequest, fmt.Sprintf("at most %d streams per request", maxStreamsPerCall))
	}
	for _, s := range req.Streams {
		p, err := normPath("streams", s)
		if err != nil {
			return c, err
		}
		c.Streams = append(c.Streams, p)
	}
	slices.Sort(c.Streams)
	c.Streams = slices.Compact(c.Streams)
	if c.Pattern == "" && len(c.Streams) == 0 {
		return c, errf(CodeInvalidRequest, "at least one of pattern or streams is required")
	}
	c.LeaseTTLMS = DefaultLeaseTTLMS
	if req.LeaseTTLMS != nil {
		c.LeaseTTLMS = *req.LeaseTTLMS
		if c.LeaseTTLMS < MinLeaseTTLMS || c.LeaseTTLMS > MaxLeaseTTLMS {
			return c, errf(CodeInvalidRequest, fmt.Sprintf("lease_ttl_ms must be an integer from %d to %d", MinLeaseTTLMS, MaxLeaseTTLMS))
		}
	}
	if req.Description != nil {
		if len(*req.Description) > maxDescriptionLen {
			return c, errf(CodeInvalidRequest, fmt.Sprintf("description must be at most %d bytes", maxDescriptionLen))
		}
		d := *req.Description
		c.Description = &d
	}
	switch c.Type {
	case TypeWebhook:
		if !m.opt.Webhooks {
			return c, errf(CodeInvalidRequest, "webhook subscriptions are not enabled on this server (serve --webhooks)")
		}
		if req.Webhook == nil || req.Webhook.URL == "" {
			return c, errf(CodeInvalidRequest, "webhook subscriptions require webhook.url")
		}
		u, err := CheckWebhookURL(ctx, req.Webhook.URL, m.opt.AllowLoopback, m.opt.Resolver)
		if err != nil {
			return c, errf(CodeWebhookRejected, strings.TrimPrefix(err.Error(), ErrWebhookURL.Error()+": "))
		}
		c.WebhookURL = u
	case TypePullWake:
		if req.WakeStream == "" {
			return c, errf(CodeInvalidRequest, "pull-wake subscriptions require wake_stream")
		}
		p, err := normPath("wake_stream", req.WakeStream)
		if err != nil {
			return c, err
		}
		c.WakeStream = p
	}
	return c, nil
}

func hashConfig(c Config) string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Put creates a subscription, or re-confirms one with the same
// configuration (created false). root is the stream root URL as the
// client sees it.
func (m *Manager) Put(ctx context.Context, id string, req *CreateRequest, root string) (View, bool, error) {
	if err := validID(id); err != nil {
		return View{}, false, err
	}
	cfg, verr := m.normalize(ctx, req)
	if verr != nil {
		return View{}, false, verr
	}
	hash := hashConfig(cfg)
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if s := m.get(id); s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hash != hash {
			return View{}, false, errf(CodeAlreadyExists, "subscription exists with a different configuration")
		}
		return m.view(s, root), false, nil
	}
	if int(m.count.Load()) >= m.opt.MaxSubscriptions {
		return View{}, false, errf(CodeInvalidRequest, fmt.Sprintf("this server holds at most %d subscriptions", m.opt.MaxSubscriptions))
	}
	s := &sub{id: id, cfg: cfg, hash: hash, base: strings.TrimSuffix(root, "/"), created: time.Now().UTC().Truncate(time.Millisecond),
		st: state{Status: "active"}, links: map[string]*link{}}
	for _, p := range cfg.Streams {
		tail, err := m.tailOrStart(ctx, p)
		if err != nil {
			return View{}, false, err
		}
		s.links[p] = &link{path: p, explicit: true, acked: tail}
	}
	if cfg.Pattern != "" {
		var matched []string
		err := m.opt.Streams.List(ctx, literalPrefix(cfg.Pattern), func(p string) bool {
			if Match(cfg.Pattern, p) && p != cfg.WakeStream {
				matched = append(matched, p)
			}
			return true
		})
		if err != nil {
			return View{}, false, fmt.Errorf("subscriptions: list streams: %w", err)
		}
		for _, p := range matched {
			if l := s.links[p]; l != nil {
				l.glob = true
				continue
			}
			tail, err := m.tailOrStart(ctx, p)
			if err != nil {
				return View{}, false, err
			}
			s.links[p] = &link{path: p, glob: true, acked: tail}
		}
	}
	row := &subRow{id: id, cfg: cfg, hash: hash, baseURL: s.base, createdAt: s.created, state: s.st}
	for _, l := range s.links {
		row.links = append(row.links, *l)
	}
	if err := m.st.create(ctx, row); err != nil {
		return View{}, false, fmt.Errorf("subscriptions: store: %w", err)
	}
	m.mu.Lock()
	m.subs[id] = s
	m.count.Store(int64(len(m.subs)))
	m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	// An append dispatched between reading the tails above and adding s
	// was not seen by s; its tail is in the cache by now.
	m.maybeWake(m.ctx, s)
	return m.view(s, root), true, nil
}

// Get returns a subscription.
func (m *Manager) Get(ctx context.Context, id string, root string) (View, error) {
	s := m.get(id)
	if s == nil {
		return View{}, errNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return View{}, errNotFound
	}
	return m.view(s, root), nil
}

// Delete removes a subscription; deleting an absent one succeeds. Requests
// and deliveries in flight for it fail and advance nothing.
func (m *Manager) Delete(ctx context.Context, id string) error {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	s := m.get(id)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := m.st.remove(ctx, id); err != nil {
		return fmt.Errorf("subscriptions: store: %w", err)
	}
	s.gone = true
	stopTimer(&s.lease)
	stopTimer(&s.retry)
	m.mu.Lock()
	delete(m.subs, id)
	m.count.Store(int64(len(m.subs)))
	m.mu.Unlock()
	return nil
}

// AddStreams links streams explicitly, at their current tails; linking a
// linked stream is a no-op.
func (m *Manager) AddStreams(ctx context.Context, id string, paths []string) error {
	if len(paths) == 0 || len(paths) > maxStreamsPerCall {
		return errf(CodeInvalidRequest, fmt.Sprintf("streams must be a non-empty array of at most %d paths", maxStreamsPerCall))
	}
	norm := make([]string, 0, len(paths))
	for _, p := range paths {
		n, err := normPath("streams", p)
		if err != nil {
			return err
		}
		norm = append(norm, n)
	}
	s, err := m.locked(id)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if explicit := countExplicit(s.links); explicit+len(norm) > maxExplicitLinks {
		return errf(CodeInvalidRequest, fmt.Sprintf("a subscription has at most %d explicit streams", maxExplicitLinks))
	}
	var changed []link
	for _, p := range norm {
		if l := s.links[p]; l != nil {
			if !l.explicit {
				l.explicit = true
				changed = append(changed, *l)
			}
			continue
		}
		tail, err := m.tailOrStart(ctx, p)
		if err != nil {
			return err
		}
		l := &link{path: p, explicit: true, acked: tail}
		s.links[p] = l
		changed = append(changed, *l)
	}
	return m.save(ctx, s, changed, nil)
}

func countExplicit(links map[string]*link) int {
	n := 0
	for _, l := range links {
		if l.explicit {
			n++
		}
	}
	return n
}

// RemoveStream removes an explicit link; a glob link of the same stream
// stays while the pattern matches. Removing an absent link succeeds.
func (m *Manager) RemoveStream(ctx context.Context, id string, path string) error {
	path = strings.Trim(path, "/")
	s, err := m.locked(id)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	l := s.links[path]
	if l == nil || !l.explicit {
		return nil
	}
	l.explicit = false
	if l.glob {
		return m.save(ctx, s, []link{*l}, nil)
	}
	delete(s.links, path)
	return m.save(ctx, s, nil, []string{path})
}

// locked returns the live subscription id with its mutex held.
func (m *Manager) locked(id string) (*sub, *Error) {
	s := m.get(id)
	if s == nil {
		return nil, errNotFound
	}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return nil, errNotFound
	}
	return s, nil
}

// save commits s's state and the given link changes.
func (m *Manager) save(ctx context.Context, s *sub, links []link, removed []string) error {
	if err := m.st.update(context.WithoutCancel(ctx), s.id, s.st, links, removed); err != nil {
		m.lg.Error("state not saved", "subscription", s.id, "err", err)
		return fmt.Errorf("subscriptions: store: %w", err)
	}
	return nil
}

func (m *Manager) view(s *sub, root string) View {
	v := View{ID: s.id, SubscriptionID: s.id, Type: s.cfg.Type, Pattern: s.cfg.Pattern, Streams: []LinkView{},
		LeaseTTLMS: s.cfg.LeaseTTLMS, CreatedAt: s.created.Format("2006-01-02T15:04:05.000Z07:00"),
		Status: s.st.Status, Description: s.cfg.Description}
	for _, p := range sortedKeys(s.links) {
		l := s.links[p]
		v.Streams = append(v.Streams, LinkView{Path: p, LinkType: l.linkType(), AckedOffset: l.acked})
	}
	if s.cfg.Type == TypeWebhook {
		v.Webhook = &WebhookView{URL: s.cfg.WebhookURL,
			Signing: Signing{Alg: "ed25519", Kid: m.keys.kid, JWKSURL: m.root(root) + "/" + JWKSPath}}
	} else {
		ws := s.cfg.WakeStream
		v.WakeStream = &ws
	}
	return v
}

func sortedKeys[V any](mp map[string]V) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ----- tails and offsets -----

// tailOrStart is a stream's tail, or the start ("-1") of one that does
// not exist yet, so that a stream linked before it exists is read from
// its beginning.
func (m *Manager) tailOrStart(ctx context.Context, path string) (string, error) {
	m.tailMu.Lock()
	t, ok := m.tails[path]
	m.tailMu.Unlock()
	if ok {
		return t, nil
	}
	t, found, err := m.opt.Streams.Tail(ctx, path)
	if err != nil {
		return "", fmt.Errorf("subscriptions: tail of %q: %w", path, err)
	}
	if !found {
		return offset.Start, nil
	}
	m.noteTail(path, t)
	return t, nil
}

// noteTail records a linked stream's tail if it is newer than the one
// known.
func (m *Manager) noteTail(path, tail string) {
	m.tailMu.Lock()
	if cur, ok := m.tails[path]; !ok || cmpOffset(tail, cur) > 0 {
		m.tails[path] = tail
	}
	m.tailMu.Unlock()
}

// refreshTail updates a cached tail, so that the cache stays exact for
// streams no subscription links any more (they may be linked again).
func (m *Manager) refreshTail(path, tail string) {
	m.tailMu.Lock()
	if cur, ok := m.tails[path]; ok && cmpOffset(tail, cur) > 0 {
		m.tails[path] = tail
	}
	m.tailMu.Unlock()
}

// forgetTail drops a cached tail that may be stale: after appends the
// manager is not notified of (its own wake events).
func (m *Manager) forgetTail(path string) {
	m.tailMu.Lock()
	delete(m.tails, path)
	m.tailMu.Unlock()
}

// cmpOffset orders offsets of one stream; the start "-1" is position 0.
func cmpOffset(a, b string) int {
	pa, oka := position(a)
	pb, okb := position(b)
	if !oka || !okb {
		return strings.Compare(a, b)
	}
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	}
	return 0
}

func position(s string) (int64, bool) {
	if s == offset.Start {
		return 0, true
	}
	t, err := offset.Parse(s)
	return t.Position, err == nil
}

// infos describes s's streams, with the tails of snap if given, else the
// current ones.
func (m *Manager) infos(ctx context.Context, s *sub, snap map[string]string) []StreamInfo {
	out := make([]StreamInfo, 0, len(s.links))
	for _, p := range sortedKeys(s.links) {
		l := s.links[p]
		tail, ok := snap[p]
		if !ok {
			var err error
			if tail, err = m.tailOrStart(ctx, p); err != nil {
				m.lg.Warn("stream tail unknown", "subscription", s.id, "stream", p, "err", err)
				tail = l.acked
			}
		}
		out = append(out, StreamInfo{Path: p, LinkType: l.linkType(), AckedOffset: l.acked, TailOffset: tail,
			HasPending: cmpOffset(tail, l.acked) > 0})
	}
	return out
}

func pending(infos []StreamInfo) (string, bool) {
	for _, in := range infos {
		if in.HasPending {
			return in.Path, true
		}
	}
	return "", false
}

// ----- notifications -----

// Appended tells the manager that a stream's tail moved to tail. It never
// blocks: it records the tail and signals the dispatcher.
func (m *Manager) Appended(path, tail string) {
	if m.count.Load() == 0 || m.closed.Load() {
		return
	}
	m.pendMu.Lock()
	if cur, ok := m.pend[path]; !ok || cmpOffset(tail, cur) > 0 {
		m.pend[path] = tail
	}
	m.pendMu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Deleted tells the manager that a stream was deleted: its links go.
func (m *Manager) Deleted(path string) {
	m.forgetTail(path)
	for _, s := range m.list() {
		s.mu.Lock()
		if _, ok := s.links[path]; ok && !s.gone {
			delete(s.links, path)
			_ = m.save(m.ctx, s, nil, []string{path})
		}
		s.mu.Unlock()
	}
}

func (m *Manager) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		}
		m.pendMu.Lock()
		batch := m.pend
		m.pend = map[string]string{}
		m.pendMu.Unlock()
		subs := m.list()
		for _, path := range sortedKeys(batch) {
			m.refreshTail(path, batch[path])
			for _, s := range subs {
				m.onAppend(s, path, batch[path])
			}
		}
	}
}

// onAppend links path to s if its pattern matches (from the stream's
// start: the append is what made it known) and wakes s if idle.
func (m *Manager) onAppend(s *sub, path, tail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || path == s.cfg.WakeStream {
		return
	}
	l := s.links[path]
	if s.cfg.Pattern != "" && Match(s.cfg.Pattern, path) && (l == nil || !l.glob) {
		if l == nil {
			l = &link{path: path, acked: offset.Start}
			s.links[path] = l
		}
		l.glob = true
		if m.save(m.ctx, s, []link{*l}, nil) != nil {
			return
		}
	}
	if l == nil {
		return
	}
	m.noteTail(path, tail)
	m.maybeWake(m.ctx, s)
}

// ----- wakes -----

// maybeWake issues a wake if s is idle and has pending work. s.mu is held.
func (m *Manager) maybeWake(ctx context.Context, s *sub) bool {
	if s.gone || s.st.WakeID != "" || s.st.Holder != "" {
		return false
	}
	infos := m.infos(ctx, s, nil)
	if _, ok := pending(infos); !ok {
		return false
	}
	return m.issueWake(ctx, s, infos) == nil
}

// issueWake starts a new generation for s: a new wake id, the tails of
// infos as its snapshot, and its delivery. s.mu is held.
func (m *Manager) issueWake(ctx context.Context, s *sub, infos []StreamInfo) error {
	s.st.Generation++
	s.st.WakeID = newWakeID()
	s.st.Holder = ""
	s.st.Delivered = false
	s.st.LeaseUntil = 0
	s.st.Snapshot = make(map[string]string, len(infos))
	for _, in := range infos {
		s.st.Snapshot[in.Path] = in.TailOffset
	}
	if s.cfg.Type == TypeWebhook {
		// The lease of a webhook wake starts when it is issued (7.3).
		lease := time.Duration(s.cfg.LeaseTTLMS) * time.Millisecond
		s.st.LeaseUntil = time.Now().Add(lease).UnixMilli()
		m.armLease(s, lease)
	}
	if err := m.save(ctx, s, nil, nil); err != nil {
		return err
	}
	m.wakes.Add(1)
	stopTimer(&s.retry)
	m.enqueue(job{s: s, gen: s.st.Generation})
	return nil
}

func newWakeID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "w_" + hex.EncodeToString(b[:])
}

// armLease (re)starts the lease timer of the current wake. s.mu is held.
func (m *Manager) armLease(s *sub, d time.Duration) {
	stopTimer(&s.lease)
	gen := s.st.Generation
	s.lease = time.AfterFunc(max(d, 0), func() { m.leaseExpired(s, gen) })
}

// leaseExpired clears the holder and wake of generation gen and wakes s
// again if work is pending (7.3). A webhook wake whose delivery is still
// being retried keeps it: the retry schedule, not the lease, governs it.
func (m *Manager) leaseExpired(s *sub, gen int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.st.Generation != gen || s.st.WakeID == "" || m.closed.Load() {
		return
	}
	if s.cfg.Type == TypeWebhook && !s.st.Delivered {
		return
	}
	s.lease = nil
	m.endWake(s)
	if m.save(m.ctx, s, nil, nil) == nil {
		m.maybeWake(m.ctx, s)
	}
}

// endWake clears the current wake. s.mu is held.
func (m *Manager) endWake(s *sub) {
	stopTimer(&s.lease)
	s.st.WakeID, s.st.Holder, s.st.Snapshot, s.st.LeaseUntil = "", "", nil, 0
}

// ----- deliveries -----

func (m *Manager) enqueue(j job) {
	if m.closed.Load() {
		return
	}
	select {
	case m.jobs <- j:
	default:
		// Every worker is busy and the queue is full: try again shortly,
		// without counting it as a failure. At most one such timer exists
		// per subscription, since a subscription has one wake at a time.
		time.AfterFunc(m.opt.RetryBase, func() { m.enqueue(j) })
	}
}

// scheduleAt delivers the current wake of s at t (now if t is past or
// zero). s.mu is held.
func (m *Manager) scheduleAt(s *sub, t time.Time) {
	stopTimer(&s.retry)
	j := job{s: s, gen: s.st.Generation}
	if d := time.Until(t); !t.IsZero() && d > 0 {
		s.retry = time.AfterFunc(d, func() { m.enqueue(j) })
		return
	}
	m.enqueue(j)
}

// backoff is the delay before retry n (1-based): base·2^(n-1) capped at
// maxDelay, ±20% jitter (u in [0,1)).
func backoff(n int, base, maxDelay time.Duration, u float64) time.Duration {
	d := float64(maxDelay)
	if n < 63 {
		d = math.Min(float64(base)*math.Pow(2, float64(max(n-1, 0))), d)
	}
	return time.Duration(d * (0.8 + 0.4*u))
}

func (m *Manager) jitter() float64 {
	m.rndMu.Lock()
	defer m.rndMu.Unlock()
	return m.rnd.Float64()
}

func (m *Manager) worker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case j := <-m.jobs:
			m.deliver(j)
		}
	}
}

// deliver makes one attempt at delivering generation j.gen of j.s.
func (m *Manager) deliver(j job) {
	s := j.s
	s.mu.Lock()
	if s.gone || s.st.Generation != j.gen || s.st.WakeID == "" || s.st.Delivered {
		s.mu.Unlock()
		return
	}
	var attempt func(context.Context) (done bool, err error)
	if s.cfg.Type == TypeWebhook {
		attempt = m.webhookAttempt(s)
	} else {
		attempt = m.wakeEventAttempt(s)
	}
	s.mu.Unlock()

	done, err := attempt(m.ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.st.Generation != j.gen || s.st.WakeID == "" || m.closed.Load() {
		return
	}
	if err != nil {
		m.failures.Add(1)
		s.st.RetryCount++
		d := backoff(s.st.RetryCount, m.opt.RetryBase, m.opt.RetryMax, m.jitter())
		next := time.Now().Add(d)
		s.st.Status, s.st.NextTry = "failed", next.UnixMilli()
		m.lg.Warn("delivery failed", "subscription", s.id, "generation", j.gen, "attempt", s.st.RetryCount, "retry_in", d, "err", err)
		if m.save(m.ctx, s, nil, nil) == nil {
			m.scheduleAt(s, next)
		}
		return
	}
	s.st.Status, s.st.RetryCount, s.st.NextTry, s.st.Delivered = "active", 0, 0, true
	if s.cfg.Type == TypeWebhook {
		m.delivered.Add(1)
	} else {
		m.wakeEvents.Add(1)
	}
	if s.cfg.Type == TypeWebhook {
		// The lease runs from here if retries outlived the first one.
		if until := time.UnixMilli(s.st.LeaseUntil); time.Until(until) <= 0 {
			lease := time.Duration(s.cfg.LeaseTTLMS) * time.Millisecond
			s.st.LeaseUntil = time.Now().Add(lease).UnixMilli()
			m.armLease(s, lease)
		}
	}
	var changed []link
	if done {
		// {"done": true}: ack the snapshot the receiver was sent (7.1).
		for p, tail := range s.st.Snapshot {
			if l := s.links[p]; l != nil && cmpOffset(tail, l.acked) > 0 {
				l.acked = tail
				changed = append(changed, *l)
			}
		}
		m.endWake(s)
	}
	if m.save(m.ctx, s, changed, nil) == nil && done {
		m.maybeWake(m.ctx, s)
	}
}

// webhookAttempt prepares a signed POST of the current wake; the returned
// function sends it without s.mu. s.mu is held.
func (m *Manager) webhookAttempt(s *sub) func(context.Context) (bool, error) {
	root := m.root(s.base)
	n := Notification{SubscriptionID: s.id, WakeID: s.st.WakeID, Generation: s.st.Generation,
		Streams:     m.infos(m.ctx, s, s.st.Snapshot),
		CallbackURL: root + "/" + SubscriptionsPath + url.PathEscape(s.id) + "/callback",
		CallbackToken: m.keys.issue(tokenClaims{Sub: s.id, Gen: s.st.Generation, Wake: s.st.WakeID,
			Exp: time.Now().Add(tokenTTL).Unix()})}
	target := s.cfg.WebhookURL
	return func(ctx context.Context) (bool, error) {
		body, err := json.Marshal(n)
		if err != nil {
			return false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(body)))
		if err != nil {
			return false, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "durable-streams-webhook")
		req.Header.Set(SignatureHeader, m.keys.sign(body, time.Now()))
		resp, err := m.client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return false, fmt.Errorf("webhook answered %s", resp.Status)
		}
		var out struct {
			Done bool `json:"done"`
		}
		// A body that is not {"done": true} leaves the wake to a callback.
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&out)
		return out.Done, nil
	}
}

// wakeEventAttempt prepares the append of a wake event to the wake
// stream. s.mu is held.
func (m *Manager) wakeEventAttempt(s *sub) func(context.Context) (bool, error) {
	ev := WakeEvent{Type: "wake", SubscriptionID: s.id, Generation: s.st.Generation, TS: time.Now().UnixMilli()}
	for _, in := range m.infos(m.ctx, s, s.st.Snapshot) {
		if in.HasPending {
			ev.Stream = in.Path
			break
		}
	}
	wake := s.cfg.WakeStream
	return func(ctx context.Context) (bool, error) {
		msg, err := json.Marshal(ev)
		if err != nil {
			return false, err
		}
		actx, cancel := context.WithTimeout(ctx, m.opt.Timeout)
		defer cancel()
		defer m.forgetTail(wake)
		return false, m.opt.Streams.AppendJSON(actx, wake, msg)
	}
}

// ----- workers' requests -----

// checkWake validates a callback, ack or release against the current
// wake (7.3). s.mu is held.
func (m *Manager) checkWake(s *sub, token string, req *AckRequest) *Error {
	c, err := m.keys.parse(token, time.Now())
	if err != nil {
		return err
	}
	if c.Sub != s.id {
		return errf(CodeTokenInvalid, "token is for another subscription")
	}
	if s.st.WakeID == "" || c.Gen != s.st.Generation || c.Wake != s.st.WakeID ||
		req.Generation == nil || *req.Generation != s.st.Generation || req.WakeID != s.st.WakeID {
		return errf(CodeFenced, "wake generation is stale")
	}
	return nil
}

// applyAcks validates every ack, then advances the cursors. s.mu is held.
func (m *Manager) applyAcks(ctx context.Context, s *sub, acks []Ack) ([]link, *Error) {
	type upd struct {
		l   *link
		off string
	}
	var ups []upd
	for _, a := range acks {
		p := a.Stream
		if p == "" {
			p = a.Path
		}
		p = strings.Trim(p, "/")
		l := s.links[p]
		if l == nil {
			return nil, errf(CodeInvalidOffset, fmt.Sprintf("ack names %q, which is not a stream of this subscription", p))
		}
		if a.Offset == offset.Start {
			return nil, errf(CodeInvalidOffset, "ack offset must not be -1")
		}
		if _, err := offset.Parse(a.Offset); err != nil {
			return nil, errf(CodeInvalidOffset, "ack offset "+fmt.Sprintf("%q", a.Offset)+" is not an offset")
		}
		if cmpOffset(a.Offset, l.acked) < 0 {
			return nil, errf(CodeInvalidOffset, "ack offset regresses the committed cursor of "+p)
		}
		tail, err := m.tailOrStart(ctx, p)
		if err != nil {
			return nil, errf(CodeInternal, "stream tail unavailable")
		}
		if cmpOffset(a.Offset, tail) > 0 {
			return nil, errf(CodeInvalidOffset, "ack offset is beyond the tail of "+p)
		}
		ups = append(ups, upd{l, a.Offset})
	}
	changed := make([]link, 0, len(ups))
	for _, u := range ups {
		u.l.acked = u.off
		changed = append(changed, *u.l)
	}
	return changed, nil
}

// Callback handles a webhook receiver's callback.
func (m *Manager) Callback(ctx context.Context, id, token string, req *AckRequest) (AckResult, error) {
	return m.ack(ctx, id, token, req, TypeWebhook)
}

// Ack handles a pull-wake worker's ack (a heartbeat without done).
func (m *Manager) Ack(ctx context.Context, id, token string, req *AckRequest) (AckResult, error) {
	return m.ack(ctx, id, token, req, TypePullWake)
}

func (m *Manager) ack(ctx context.Context, id, token string, req *AckRequest, typ Type) (AckResult, error) {
	s, serr := m.locked(id)
	if serr != nil {
		return AckResult{}, serr
	}
	defer s.mu.Unlock()
	if s.cfg.Type != typ {
		return AckResult{}, errf(CodeInvalidRequest, "subscription is not "+string(typ))
	}
	if err := m.checkWake(s, token, req); err != nil {
		return AckResult{}, err
	}
	changed, aerr := m.applyAcks(ctx, s, req.Acks)
	if aerr != nil {
		return AckResult{}, aerr
	}
	lease := time.Duration(s.cfg.LeaseTTLMS) * time.Millisecond
	if req.Done {
		m.endWake(s)
	} else {
		s.st.LeaseUntil = time.Now().Add(lease).UnixMilli()
		m.armLease(s, lease)
	}
	if err := m.save(ctx, s, changed, nil); err != nil {
		return AckResult{}, err
	}
	next := req.Done && m.maybeWake(ctx, s)
	return AckResult{OK: true, NextWake: next}, nil
}

// Claim gives the current wake of a pull-wake subscription to worker.
func (m *Manager) Claim(ctx context.Context, id, worker string) (Claim, error) {
	if worker == "" || len(worker) > maxWorkerLen {
		return Claim{}, errf(CodeInvalidRequest, fmt.Sprintf("worker must be a string of 1 to %d bytes", maxWorkerLen))
	}
	s, serr := m.locked(id)
	if serr != nil {
		return Claim{}, serr
	}
	defer s.mu.Unlock()
	if s.cfg.Type != TypePullWake {
		return Claim{}, errf(CodeInvalidRequest, "subscription is not pull-wake")
	}
	if s.st.Holder != "" {
		return Claim{}, &Error{Code: CodeAlreadyClaimed, Message: "another worker holds the lease",
			CurrentHolder: s.st.Holder, Generation: s.st.Generation}
	}
	infos := m.infos(ctx, s, nil)
	if _, ok := pending(infos); !ok {
		return Claim{}, errf(CodeNoPendingWork, "subscription has no pending work")
	}
	if s.st.WakeID == "" {
		s.st.Generation++
		s.st.WakeID = newWakeID()
		m.wakes.Add(1)
	}
	// The claimant is told of the wake: a wake event still being retried
	// is not needed any more.
	s.st.Delivered = true
	stopTimer(&s.retry)
	s.st.Snapshot = make(map[string]string, len(infos))
	for _, in := range infos {
		s.st.Snapshot[in.Path] = in.TailOffset
	}
	lease := time.Duration(s.cfg.LeaseTTLMS) * time.Millisecond
	s.st.Holder = worker
	s.st.LeaseUntil = time.Now().Add(lease).UnixMilli()
	if err := m.save(ctx, s, nil, nil); err != nil {
		return Claim{}, err
	}
	m.armLease(s, lease)
	tok := m.keys.issue(tokenClaims{Sub: s.id, Gen: s.st.Generation, Wake: s.st.WakeID, Exp: time.Now().Add(tokenTTL).Unix()})
	return Claim{WakeID: s.st.WakeID, Generation: s.st.Generation, Token: tok, Streams: infos, LeaseTTLMS: s.cfg.LeaseTTLMS}, nil
}

// Release gives a claimed wake back without acking; pending work is woken
// again.
func (m *Manager) Release(ctx context.Context, id, token string, req *AckRequest) error {
	s, serr := m.locked(id)
	if serr != nil {
		return serr
	}
	defer s.mu.Unlock()
	if s.cfg.Type != TypePullWake {
		return errf(CodeInvalidRequest, "subscription is not pull-wake")
	}
	if err := m.checkWake(s, token, req); err != nil {
		return err
	}
	m.endWake(s)
	if err := m.save(ctx, s, nil, nil); err != nil {
		return err
	}
	m.maybeWake(ctx, s)
	return nil
}
