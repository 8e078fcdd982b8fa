package subscriptions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Deliveries: the worker pool, retries with backoff, webhook requests
// and wake events.

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

// target is the backoff state of a webhook host (scheme://host:port)
// whose last delivery failed. While it is blocked, deliveries of every
// subscription to it wait, so a dead receiver costs one attempt per
// backoff period rather than one per subscription, and cannot occupy
// the workers that other targets need.
type target struct {
	failures int
	until    time.Time
}

// maxTargets bounds the failing hosts remembered; beyond it, hosts whose
// backoff has passed are forgotten (their next failure starts afresh).
const maxTargets = 1024

func (m *Manager) pruneTargets() {
	now := time.Now()
	for h, t := range m.targets {
		if now.After(t.until) {
			delete(m.targets, h)
		}
	}
}

func targetKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// targetBlocked reports whether host is backing off, and until when.
func (m *Manager) targetBlocked(host string) (time.Time, bool) {
	m.targetsMu.Lock()
	defer m.targetsMu.Unlock()
	t := m.targets[host]
	if t == nil || !time.Now().Before(t.until) {
		return time.Time{}, false
	}
	return t.until, true
}

// targetOutcome records a delivery's result for its host. A failure
// while the host is already blocked (deliveries that were in flight
// together) does not lengthen the backoff again.
func (m *Manager) targetOutcome(host string, ok bool) {
	m.targetsMu.Lock()
	defer m.targetsMu.Unlock()
	if ok {
		delete(m.targets, host)
		return
	}
	t := m.targets[host]
	if t == nil {
		if len(m.targets) >= maxTargets {
			m.pruneTargets()
		}
		t = &target{}
		m.targets[host] = t
	}
	if now := time.Now(); !now.Before(t.until) {
		t.failures++
		t.until = now.Add(backoff(t.failures, m.opt.RetryBase, m.opt.RetryMax, m.jitter()))
	}
}

// deliver makes one attempt at delivering generation j.gen of j.s.
func (m *Manager) deliver(j job) {
	s := j.s
	if m.lock(m.ctx, s) != nil {
		// The shared store is unreachable: the wake stays due, and a node
		// takes it over (cluster.go).
		return
	}
	if s.gone || s.st.Generation != j.gen || s.st.WakeID == "" || s.st.Delivered || s.sending ||
		time.Now().UnixMilli() < s.st.SendingUntil {
		// Nothing to deliver, or an attempt is running (here or on
		// another node), which schedules the next one if it fails.
		m.unlock(s)
		return
	}
	var attempt func(context.Context) (done bool, err error)
	host := ""
	if s.cfg.Type == TypeWebhook {
		host = targetKey(s.cfg.WebhookURL)
		if until, blocked := m.targetBlocked(host); blocked {
			// Another subscription's delivery to this host failed just
			// now: wait for the host's backoff instead of spending a
			// worker (and up to Timeout) on it.
			next := until.Add(time.Duration(m.jitter() * float64(m.opt.RetryBase)))
			s.st.Status, s.st.NextTry = "failed", next.UnixMilli()
			if m.save(m.ctx, s, nil, nil) == nil {
				m.scheduleAt(s, next)
			}
			m.unlock(s)
			return
		}
		attempt = m.webhookAttempt(s)
	} else {
		attempt = m.wakeEventAttempt(s)
	}
	if m.shared {
		// Claim the attempt, so that no other node makes one meanwhile.
		s.st.SendingUntil = time.Now().Add(m.opt.Timeout + takeoverGrace).UnixMilli()
		if m.save(m.ctx, s, nil, nil) != nil {
			m.unlock(s)
			return
		}
	}
	s.sending = true
	m.unlock(s)

	done, err := attempt(m.ctx)
	if host != "" && m.ctx.Err() == nil {
		m.targetOutcome(host, err == nil)
	}

	if m.lock(context.WithoutCancel(m.ctx), s) != nil {
		// The claim lapses and the wake is taken over.
		s.mu.Lock()
		s.sending = false
		s.mu.Unlock()
		return
	}
	defer m.unlock(s)
	s.sending = false
	if s.gone {
		return
	}
	if m.closed.Load() {
		if m.shared && s.st.Generation == j.gen && s.st.SendingUntil != 0 {
			// Let the claim go: another node takes the wake over once it
			// is overdue, not when the claim would have lapsed.
			s.st.SendingUntil = 0
			_ = m.save(context.WithoutCancel(m.ctx), s, nil, nil)
		}
		return
	}
	if s.st.Generation != j.gen || s.st.WakeID == "" {
		// The wake ended while this attempt ran (a callback, a lease); a
		// newer one skipped its delivery because this attempt was running.
		if s.st.WakeID != "" && !s.st.Delivered {
			m.enqueue(job{s: s, gen: s.st.Generation})
		}
		return
	}
	s.st.SendingUntil = 0
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
	if s.cfg.Type != TypeWebhook {
		m.wakeEvents.Add(1)
	} else {
		m.delivered.Add(1)
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
