package subscriptions

import (
	"context"
	"time"
)

// Cluster mode: the nodes of a cluster share one PostgreSQL store
// (Options.PostgresDSN), which owns every subscription's definition,
// cursors and delivery state; each node's subs are a cache of it.
//
//  1. Any node answers the control API. A change to a subscription runs
//     under its store lock (a PostgreSQL advisory lock, so one node at a
//     time) on state reloaded after taking it, and is committed before
//     the lock is let go: every node acts on the latest state, and a
//     generation, wake id or cursor is never issued twice.
//  2. A stream's appends are heard by the node that owns it, which wakes
//     the subscriptions linking or matching it and delivers the wake.
//     Tails are asked of the streams' owners, never cached, since a node
//     does not hear the appends of the streams it does not own.
//  3. Each node reloads the definitions when the store's version moves
//     (a subscription created or deleted, explicit streams changed),
//     checked every WatchInterval; a subscription it did not know is then
//     resumed as after a restart (its matching streams linked, its
//     pending work woken), so appends a node made before it learned of
//     the subscription are not missed.
//  4. A delivery attempt claims its wake in the store (sending_until)
//     before it starts, so other nodes leave it alone; retries and lease
//     ends are timers on the node that scheduled them, and due_at
//     records when they are due. A node that finds a wake overdue by
//     takeoverGrace (its scheduler died, or handed its streams on) takes
//     it over, as a restart would.
//
// Delivery stays at least once, as on one node: a node that dies between
// a delivery and the commit of its outcome leaves the wake to be
// delivered again by another.

// takeoverGrace is how long past due a wake must be before another node
// takes it over from the one that scheduled it.
const takeoverGrace = 3 * time.Second

// newSub is the cached form of a stored subscription.
func newSub(r *subRow) *sub {
	s := &sub{id: r.id}
	s.reload(r)
	return s
}

// reload replaces s with r: its state and links, and its definition,
// which is another one if the id was deleted and created again through
// another node. s.mu is held (or s is not shared yet).
func (s *sub) reload(r *subRow) {
	s.cfg, s.hash, s.base, s.created = r.cfg, r.hash, r.baseURL, r.createdAt
	s.st = r.state
	s.links = make(map[string]*link, len(r.links))
	for _, l := range r.links {
		s.links[l.path] = &l
	}
}

// lock takes s for a change: its mutex and, in a shared store, its store
// lock, with its state reloaded. It fails only in a shared store that
// cannot be reached; a subscription deleted meanwhile is returned gone.
// unlock lets both go.
func (m *Manager) lock(ctx context.Context, s *sub) error {
	s.mu.Lock()
	if !m.shared || s.gone {
		return nil
	}
	unlock, err := m.st.lock(ctx, s.id)
	if err != nil {
		s.mu.Unlock()
		m.lg.Warn("subscription not locked", "subscription", s.id, "err", err)
		return err
	}
	r, err := m.st.loadOne(ctx, s.id)
	if err != nil {
		unlock()
		s.mu.Unlock()
		m.lg.Warn("subscription not loaded", "subscription", s.id, "err", err)
		return err
	}
	s.unlockStore = unlock
	if r == nil {
		m.drop(s)
		return nil
	}
	s.reload(r)
	return nil
}

func (m *Manager) unlock(s *sub) {
	if s.unlockStore != nil {
		s.unlockStore()
		s.unlockStore = nil
	}
	s.mu.Unlock()
}

// drop marks s deleted and forgets it. s.mu is held.
func (m *Manager) drop(s *sub) {
	s.gone = true
	stopTimer(&s.lease)
	stopTimer(&s.retry)
	m.mu.Lock()
	if m.subs[s.id] == s {
		delete(m.subs, s.id)
	}
	m.count.Store(int64(len(m.subs)))
	m.mu.Unlock()
}

// lookup returns subscription id: from the cache, or in a shared store
// from the store when another node created it since the last reload.
func (m *Manager) lookup(ctx context.Context, id string) (*sub, error) {
	if s := m.get(id); s != nil || !m.shared {
		return s, nil
	}
	r, err := m.st.loadOne(ctx, id)
	if err != nil || r == nil {
		return nil, err
	}
	s, _ := m.adopt(r)
	return s, nil
}

// adopt caches a stored subscription unless it is cached already, and
// reports whether it was added. An added one is to be resumed (step 3):
// reloadAll resumes it, or watch does if lookup adopted it.
func (m *Manager) adopt(r *subRow) (*sub, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.subs[r.id]; s != nil {
		return s, false
	}
	s := newSub(r)
	m.subs[r.id] = s
	m.count.Store(int64(len(m.subs)))
	m.unresumed[r.id] = s
	return s, true
}

// resumeAdopted resumes the subscriptions adopted since the last call.
func (m *Manager) resumeAdopted() {
	m.mu.Lock()
	subs := m.unresumed
	m.unresumed = map[string]*sub{}
	m.mu.Unlock()
	for _, s := range subs {
		m.resumeOne(s)
	}
}

// concerns reports whether an append to path may change s: path is
// linked or matches its pattern. It reads the cache, so that a node
// locks only the subscriptions an append concerns.
func (m *Manager) concerns(s *sub, path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || path == s.cfg.WakeStream {
		return false
	}
	return s.links[path] != nil || (s.cfg.Pattern != "" && Match(s.cfg.Pattern, path))
}

// watch keeps a shared store's cache current (step 3) and takes over
// overdue wakes (step 4).
func (m *Manager) watch(known int64) {
	defer m.wg.Done()
	t := time.NewTicker(m.opt.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		v, err := m.st.version(m.ctx)
		if err != nil {
			m.lg.Warn("subscriptions version not read", "err", err)
			continue
		}
		if v != known && m.reloadAll() == nil {
			known = v
		}
		m.resumeAdopted()
		m.takeOver()
	}
}

// reloadAll brings the cache in line with the store: new subscriptions
// are adopted and resumed, deleted ones dropped, the links of the others
// replaced.
func (m *Manager) reloadAll() error {
	rows, err := m.st.load(m.ctx)
	if err != nil {
		m.lg.Warn("subscriptions not reloaded", "err", err)
		return err
	}
	stored := make(map[string]bool, len(rows))
	for _, r := range rows {
		stored[r.id] = true
		s, isNew := m.adopt(r)
		if isNew {
			continue
		}
		s.mu.Lock()
		if !s.gone {
			s.reload(r)
		}
		s.mu.Unlock()
	}
	for _, s := range m.list() {
		if !stored[s.id] {
			s.mu.Lock()
			m.drop(s)
			s.mu.Unlock()
		}
	}
	m.resumeAdopted()
	return nil
}

// takeOver re-arms the wakes that are overdue by takeoverGrace.
func (m *Manager) takeOver() {
	ids, err := m.st.due(m.ctx, time.Now().Add(-takeoverGrace))
	if err != nil {
		m.lg.Warn("overdue wakes not read", "err", err)
		return
	}
	for _, id := range ids {
		s, err := m.lookup(m.ctx, id)
		if err != nil || s == nil {
			continue
		}
		if m.lock(m.ctx, s) != nil {
			continue
		}
		if due := s.st.dueAt(); !s.gone && due != 0 && time.Since(time.UnixMilli(due)) >= takeoverGrace {
			m.lg.Info("taking over an overdue wake", "subscription", s.id, "generation", s.st.Generation)
			if s.st.SendingUntil != 0 {
				// The attempt's node is gone: its claim lapsed.
				s.st.SendingUntil = 0
				_ = m.save(m.ctx, s, nil, nil)
			}
			m.rearm(s)
		}
		m.unlock(s)
	}
}
