package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/subscriptions"
)

// SubscriptionConfig configures the subscription APIs (protocol sections
// 6 and 7, docs/subscriptions.md). Their state is kept in
// <DataDir>/subscriptions.db, or in cluster mode in the cluster's
// PostgreSQL database, shared by the nodes.
type SubscriptionConfig struct {
	// Disabled turns the APIs off: the reserved __ds routes answer 404.
	Disabled bool
	// Webhooks allows webhook subscriptions and makes their deliveries;
	// without it only pull-wake subscriptions can be created.
	Webhooks bool
	// WebhookAllowPrivate admits loopback webhook targets (localhost,
	// 127.0.0.0/8, ::1), for development. Private, link-local and other
	// local-network targets are refused regardless.
	WebhookAllowPrivate bool
	// PublicURL is the stream root as clients reach it (e.g.
	// https://streams.example/v1/stream), used for the callback_url and
	// jwks_url handed to receivers; empty: derived from the request that
	// created the subscription.
	PublicURL string
}

// subscriptionsFile is the subscriptions database in the data directory.
const subscriptionsFile = "subscriptions.db"

// streamsView gives package subscriptions what it needs of the streams.
// In cluster mode (router set) a stream another node serves is asked of
// that node over HTTP, as a client would.
type streamsView struct {
	reg    *sequencer.Registry
	cat    *catalog.Catalog
	router api.Router // nil for a single node
	peers  *peerStreams
}

func (v streamsView) Tail(ctx context.Context, path string) (string, bool, error) {
	if target, err := v.route(ctx, path); err != nil || target != nil {
		if err != nil {
			return "", false, err
		}
		return v.peers.tail(ctx, target, path)
	}
	h, err := v.reg.Acquire(ctx, path, false)
	switch sequencer.KindOf(err) {
	case sequencer.KindNotFound, sequencer.KindGone:
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer h.Release()
	return h.Snapshot().TailToken(ctx).String(), true, nil
}

func (v streamsView) List(ctx context.Context, prefix string, fn func(string) bool) error {
	const page = 1000
	after := ""
	for {
		rows, err := v.cat.ListLive(ctx, prefix, after, page)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if !fn(r.Path) {
				return nil
			}
		}
		if len(rows) < page {
			return nil
		}
		after = rows[len(rows)-1].Path
	}
}

func (v streamsView) AppendJSON(ctx context.Context, path string, msg []byte) error {
	if target, err := v.route(ctx, path); err != nil || target != nil {
		if err != nil {
			return err
		}
		return v.peers.appendJSON(ctx, target, path, msg)
	}
	h, err := v.reg.Acquire(ctx, path, false)
	if err != nil {
		return err
	}
	defer h.Release()
	ct, err := protocol.ParseContentType(h.Snapshot().ContentType)
	if err != nil {
		return err
	}
	_, err = h.Append(ctx, &sequencer.AppendRequest{ContentType: ct, Messages: [][]byte{msg}})
	return err
}

// subscriptionDeletes forwards stream deletions to the subscriptions,
// which are opened after the lifecycle hooks are set up.
type subscriptionDeletes struct {
	m atomic.Pointer[subscriptions.Manager]
}

// wrap adds the forwarding to the application's OnStreamDeleted hook.
func (d *subscriptionDeletes) wrap(h hooks.Hooks) hooks.Hooks {
	user := h.OnStreamDeleted
	h.OnStreamDeleted = func(ctx context.Context, s hooks.StreamInfo) {
		if m := d.m.Load(); m != nil {
			m.Deleted(s.Path)
		}
		if user != nil {
			user(ctx, s)
		}
	}
	return h
}

// route is the node serving path: nil for this one.
func (v streamsView) route(ctx context.Context, path string) (*url.URL, error) {
	if v.router == nil {
		return nil, nil
	}
	return v.router.Route(ctx, path)
}

// peerStreams reads tails from and appends wake events to the streams
// other nodes of a cluster serve, through their HTTP APIs.
type peerStreams struct {
	client *http.Client
	nodeID string
	token  string // the admin token, when auth is on
}

// peerTimeout bounds one request to a peer.
const peerTimeout = 10 * time.Second

func newPeerStreams(cfg Config) *peerStreams {
	return &peerStreams{client: &http.Client{Timeout: peerTimeout}, nodeID: cfg.Cluster.NodeID, token: cfg.Auth.AdminToken}
}

// do sends one request for the stream at path to the node at target, as
// forwarded (the peer serves it or refuses: no second hop).
func (p *peerStreams) do(ctx context.Context, method string, target *url.URL, path string, body []byte) (*http.Response, error) {
	u := *target
	u.Path = strings.TrimSuffix(target.Path, "/") + api.StreamsRoute + path
	u.RawPath = ""
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set(api.ForwardedByHeader, p.nodeID)
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return p.client.Do(req)
}

func (p *peerStreams) tail(ctx context.Context, target *url.URL, path string) (string, bool, error) {
	resp, err := p.do(ctx, http.MethodHead, target, path, nil)
	if err != nil {
		return "", false, fmt.Errorf("server: tail of %q from %s: %w", path, target.Host, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return "", false, nil
	case resp.StatusCode/100 != 2 || resp.Header.Get(protocol.HeaderStreamNextOffset) == "":
		return "", false, fmt.Errorf("server: tail of %q from %s: %s", path, target.Host, resp.Status)
	}
	return resp.Header.Get(protocol.HeaderStreamNextOffset), true, nil
}

func (p *peerStreams) appendJSON(ctx context.Context, target *url.URL, path string, msg []byte) error {
	resp, err := p.do(ctx, http.MethodPost, target, path, msg)
	if err != nil {
		return fmt.Errorf("server: append to %q on %s: %w", path, target.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("server: append to %q on %s: %s", path, target.Host, resp.Status)
	}
	return nil
}

// openSubscriptions opens the subscriptions manager unless disabled: on
// the cluster's PostgreSQL database in cluster mode, shared by the nodes
// (each delivers the wakes of the streams it serves), else in the data
// directory.
func openSubscriptions(ctx context.Context, cfg Config, reg *sequencer.Registry, cat *catalog.Catalog) (*subscriptions.Manager, error) {
	if cfg.Subscriptions.Disabled {
		return nil, nil
	}
	sc := cfg.Subscriptions
	view := streamsView{reg: reg, cat: cat}
	path := filepath.Join(cfg.DataDir, subscriptionsFile)
	if cfg.Cluster.DSN != "" {
		view.router, view.peers, path = cfg.Router, newPeerStreams(cfg), ""
	}
	return subscriptions.Open(ctx, subscriptions.Options{
		Path:          path,
		PostgresDSN:   cfg.Cluster.DSN,
		Streams:       view,
		Logger:        cfg.Logger,
		Webhooks:      sc.Webhooks,
		AllowLoopback: sc.WebhookAllowPrivate,
		PublicURL:     sc.PublicURL,
	})
}

// subsStats is m as a metrics source, or nil without subscriptions.
func subsStats(m *subscriptions.Manager) interface{ Stats() subscriptions.Stats } {
	if m == nil {
		return nil
	}
	return m
}
