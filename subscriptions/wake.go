package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/streamtier/durable-streams/internal/offset"
)

// Tails, append notifications, wakes, leases, and the requests of
// workers (callback, claim, ack, release).

// tailOrStart is a stream's tail, or the start ("-1") of one that does
// not exist yet, so that a stream linked before it exists is read from
// its beginning.
func (m *Manager) tailOrStart(ctx context.Context, path string) (string, error) {
	m.tailMu.Lock()
	t, ok := m.tails[path]
	m.tailMu.Unlock()
	if ok && !m.shared {
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
	if m.shared {
		// A cluster's node does not hear every append: no cache.
		return
	}
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

// Appended tells the manager that a stream's tail moved to tail. It never
// blocks: it records the tail and signals the dispatcher.
func (m *Manager) Appended(path, tail string) {
	if m.count.Load() == 0 || m.closed.Load() {
		return
	}
	// Known tails move at once: a worker's ack of data it just read, or a
	// claim, must not be judged against the tail before this append.
	m.refreshTail(path, tail)
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
		if m.shared && !m.concerns(s, path) {
			continue
		}
		if m.lock(m.ctx, s) != nil {
			continue
		}
		if _, ok := s.links[path]; ok && !s.gone {
			delete(s.links, path)
			_ = m.saveDefs(m.ctx, s, nil, []string{path})
		}
		m.unlock(s)
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
		m.drain()
	}
}

// drain handles the notifications received so far. The dispatcher runs
// it when signaled; a claim runs it first, so that it sees every append
// acknowledged before it (a stream's first append links it).
func (m *Manager) drain() {
	m.drainMu.Lock()
	defer m.drainMu.Unlock()
	m.pendMu.Lock()
	batch := m.pend
	m.pend = map[string]string{}
	m.pendMu.Unlock()
	if len(batch) == 0 {
		return
	}
	subs := m.list()
	for _, path := range sortedKeys(batch) {
		for _, s := range subs {
			m.onAppend(s, path, batch[path])
		}
	}
}

// onAppend links path to s if its pattern matches (from the stream's
// start: the append is what made it known) and wakes s if idle.
func (m *Manager) onAppend(s *sub, path, tail string) {
	if m.shared && !m.concerns(s, path) {
		return
	}
	if m.lock(m.ctx, s) != nil {
		return
	}
	defer m.unlock(s)
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
	s.st.SendingUntil = 0
	// Due now: another node takes it over if it is still undelivered
	// takeoverGrace from now.
	s.st.NextTry = time.Now().UnixMilli()
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
	if m.lock(m.ctx, s) != nil {
		return
	}
	defer m.unlock(s)
	if s.gone || s.st.Generation != gen || s.st.WakeID == "" || m.closed.Load() {
		return
	}
	if left := time.Until(time.UnixMilli(s.st.LeaseUntil)); m.shared && s.st.LeaseUntil != 0 && left > 0 {
		// Another node extended the lease (an ack it answered).
		m.armLease(s, left)
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
	s.st.WakeID, s.st.Holder, s.st.Snapshot, s.st.LeaseUntil, s.st.SendingUntil = "", "", nil, 0, 0
}

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
	s, serr := m.locked(ctx, id)
	if serr != nil {
		return AckResult{}, serr
	}
	defer m.unlock(s)
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
	m.drain()
	s, serr := m.locked(ctx, id)
	if serr != nil {
		return Claim{}, serr
	}
	defer m.unlock(s)
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
	s, serr := m.locked(ctx, id)
	if serr != nil {
		return serr
	}
	defer m.unlock(s)
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
