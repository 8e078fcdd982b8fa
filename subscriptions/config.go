package subscriptions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/streamtier/durable-streams/internal/protocol"
)

// Creating, reading, changing and deleting subscriptions.

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
	if v, found, err := m.reconfirm(ctx, id, hash, root); found || err != nil {
		return v, false, err
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
	if err := m.st.create(ctx, row); errors.Is(err, errExists) {
		// Created through another node since the look-up above.
		if v, found, err := m.reconfirm(ctx, id, hash, root); found || err != nil {
			return v, false, err
		}
		return View{}, false, errf(CodeInternal, "subscription created and deleted concurrently through other nodes; retry")
	} else if err != nil {
		return View{}, false, fmt.Errorf("subscriptions: store: %w", err)
	}
	m.mu.Lock()
	m.subs[id] = s
	m.count.Store(int64(len(m.subs)))
	m.mu.Unlock()
	if err := m.lock(ctx, s); err != nil {
		// Created: the wake it may need comes with the next append, or
		// with the next node that reloads it.
		return m.view(s, root), true, nil
	}
	defer m.unlock(s)
	// An append dispatched between reading the tails above and adding s
	// was not seen by s; its tail is in the cache by now.
	m.maybeWake(m.ctx, s)
	return m.view(s, root), true, nil
}

// reconfirm answers a PUT of an existing subscription: its view if the
// configuration hash matches (found), SUBSCRIPTION_ALREADY_EXISTS if not.
func (m *Manager) reconfirm(ctx context.Context, id, hash, root string) (View, bool, error) {
	s, err := m.locked(ctx, id)
	if err == errNotFound {
		return View{}, false, nil
	}
	if err != nil {
		return View{}, false, err
	}
	defer m.unlock(s)
	if s.hash != hash {
		return View{}, true, errf(CodeAlreadyExists, "subscription exists with a different configuration")
	}
	return m.view(s, root), true, nil
}

// Get returns a subscription.
func (m *Manager) Get(ctx context.Context, id string, root string) (View, error) {
	s, err := m.locked(ctx, id)
	if err != nil {
		return View{}, err
	}
	defer m.unlock(s)
	return m.view(s, root), nil
}

// Delete removes a subscription; deleting an absent one succeeds. Requests
// and deliveries in flight for it fail and advance nothing.
func (m *Manager) Delete(ctx context.Context, id string) error {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	s, err := m.locked(ctx, id)
	if err == errNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.unlock(s)
	if err := m.st.remove(ctx, id); err != nil {
		return fmt.Errorf("subscriptions: store: %w", err)
	}
	m.drop(s)
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
	s, err := m.locked(ctx, id)
	if err != nil {
		return err
	}
	defer m.unlock(s)
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
	return m.saveDefs(ctx, s, changed, nil)
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
	s, err := m.locked(ctx, id)
	if err != nil {
		return err
	}
	defer m.unlock(s)
	l := s.links[path]
	if l == nil || !l.explicit {
		return nil
	}
	l.explicit = false
	if l.glob {
		return m.saveDefs(ctx, s, []link{*l}, nil)
	}
	delete(s.links, path)
	return m.saveDefs(ctx, s, nil, []string{path})
}

// locked returns the live subscription id locked (Manager.lock).
func (m *Manager) locked(ctx context.Context, id string) (*sub, *Error) {
	s, err := m.lookup(ctx, id)
	if err != nil {
		return nil, errUnavailable
	}
	if s == nil {
		return nil, errNotFound
	}
	if m.lock(ctx, s) != nil {
		return nil, errUnavailable
	}
	if s.gone {
		m.unlock(s)
		return nil, errNotFound
	}
	return s, nil
}

// save commits s's state and the given link changes.
func (m *Manager) save(ctx context.Context, s *sub, links []link, removed []string) error {
	return m.write(ctx, s, links, removed, false)
}

// saveDefs is save for a change of s's explicit streams, which nodes
// caching the definitions must learn of.
func (m *Manager) saveDefs(ctx context.Context, s *sub, links []link, removed []string) error {
	return m.write(ctx, s, links, removed, true)
}

func (m *Manager) write(ctx context.Context, s *sub, links []link, removed []string, defs bool) error {
	if err := m.st.update(context.WithoutCancel(ctx), s.id, s.st, links, removed, defs); err != nil {
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
