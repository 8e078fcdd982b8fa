package server

import (
	"context"
	"path/filepath"
	"sync/atomic"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/subscriptions"
)

// SubscriptionConfig configures the subscription APIs (protocol sections
// 6 and 7, docs/subscriptions.md). Their state is kept in
// <DataDir>/subscriptions.db.
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
type streamsView struct {
	reg *sequencer.Registry
	cat *catalog.Catalog
}

func (v streamsView) Tail(ctx context.Context, path string) (string, bool, error) {
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

// openSubscriptions opens the subscriptions manager unless disabled.
func openSubscriptions(ctx context.Context, cfg Config, reg *sequencer.Registry, cat *catalog.Catalog) (*subscriptions.Manager, error) {
	if cfg.Subscriptions.Disabled {
		return nil, nil
	}
	sc := cfg.Subscriptions
	return subscriptions.Open(ctx, subscriptions.Options{
		Path:          filepath.Join(cfg.DataDir, subscriptionsFile),
		Streams:       streamsView{reg: reg, cat: cat},
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
