package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// registryTimeout bounds one append to the registry stream, so that a
// stuck stream cannot stall every later lifecycle hook.
const registryTimeout = 30 * time.Second

// RegistryEvent is one JSON message of the registry stream
// (Config.RegistryStream).
type RegistryEvent struct {
	Type        string    `json:"type"` // "created" or "deleted"
	Path        string    `json:"path"`
	ContentType string    `json:"contentType"`
	Time        time.Time `json:"time"`
	// Expired marks a delete caused by the stream's TTL or expiry time.
	Expired bool `json:"expired,omitempty"`
}

// lifecycle delivers the registry's create and delete events to the
// registry stream and to the lifecycle hooks. The registry reports events
// while holding locks, so lifecycle only queues them there and one
// goroutine delivers them in order: hooks may then do anything, including
// creating and deleting streams, without deadlocking or slowing requests.
type lifecycle struct {
	hooks    hooks.Hooks
	registry string // path of the registry stream; "" for none
	lg       *slog.Logger
	reg      *sequencer.Registry // set before start

	mu      sync.Mutex
	queue   []sequencer.LifecycleEvent
	pending int             // events queued or being delivered
	idle    []chan struct{} // closed when pending drops to zero
	stopped bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newLifecycle(h hooks.Hooks, registry string, lg *slog.Logger) *lifecycle {
	return &lifecycle{hooks: h, registry: registry, lg: lg,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// enabled reports whether anything listens to lifecycle events.
func (l *lifecycle) enabled() bool {
	return l.registry != "" || l.hooks.OnStreamCreated != nil || l.hooks.OnStreamDeleted != nil
}

// enqueue is sequencer.Config.OnLifecycle: it never blocks.
func (l *lifecycle) enqueue(ev sequencer.LifecycleEvent) {
	if ev.Stream.Path == l.registry {
		return // the registry stream does not record itself, and is internal
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		l.lg.Warn("lifecycle event after shutdown not delivered", "path", ev.Stream.Path, "deleted", ev.Deleted)
		return
	}
	l.queue = append(l.queue, ev)
	l.pending++
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lifecycle) start() { go l.run() }

func (l *lifecycle) run() {
	defer close(l.done)
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			l.drain()
			return
		}
		l.drain()
	}
}

func (l *lifecycle) drain() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		ev := l.queue[0]
		l.queue[0] = sequencer.LifecycleEvent{}
		l.queue = l.queue[1:]
		l.mu.Unlock()
		l.deliver(ev)
		l.mu.Lock()
		if l.pending--; l.pending == 0 {
			for _, ch := range l.idle {
				close(ch)
			}
			l.idle = nil
		}
		l.mu.Unlock()
	}
}

// wait returns once every event queued so far is delivered, or with ctx's
// error.
func (l *lifecycle) wait(ctx context.Context) error {
	l.mu.Lock()
	if l.pending == 0 {
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.idle = append(l.idle, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close delivers what is queued and stops the goroutine; later events are
// logged and dropped.
func (l *lifecycle) close() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
}

func (l *lifecycle) deliver(ev sequencer.LifecycleEvent) {
	row := ev.Stream
	info := hooks.StreamInfo{Path: row.Path, ContentType: row.ContentType, CreatedAt: row.CreatedAt,
		Time: ev.Time, TTL: row.TTL, ExpiresAt: row.ExpiresAt, Expired: ev.Expired}
	if l.registry != "" {
		if err := l.record(ev, info); err != nil {
			l.lg.Error("registry stream: event not recorded", "stream", l.registry, "path", row.Path, "deleted", ev.Deleted, "err", err)
		}
	}
	fn, name := l.hooks.OnStreamCreated, "OnStreamCreated"
	if ev.Deleted {
		fn, name = l.hooks.OnStreamDeleted, "OnStreamDeleted"
	}
	if fn == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			l.lg.Error("lifecycle hook panicked", "hook", name, "path", row.Path, "panic", v)
		}
	}()
	fn(context.Background(), info)
}

// record appends the event to the registry stream, creating the stream
// again if a client deleted it.
func (l *lifecycle) record(ev sequencer.LifecycleEvent, info hooks.StreamInfo) error {
	e := RegistryEvent{Type: "created", Path: info.Path, ContentType: info.ContentType, Time: info.Time.UTC(), Expired: info.Expired}
	if ev.Deleted {
		e.Type = "deleted"
	}
	msg, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	h, err := l.reg.Acquire(ctx, l.registry, false)
	if sequencer.KindOf(err) == sequencer.KindNotFound {
		if err = ensureRegistryStream(ctx, l.reg, l.registry); err == nil {
			h, err = l.reg.Acquire(ctx, l.registry, false)
		}
	}
	if err != nil {
		return err
	}
	defer h.Release()
	_, err = h.Append(ctx, &sequencer.AppendRequest{ContentType: jsonType, Messages: [][]byte{msg}})
	return err
}

var jsonType, _ = protocol.ParseContentType("application/json")

// ensureRegistryStream creates the registry stream unless it exists with
// the right content type.
func ensureRegistryStream(ctx context.Context, reg *sequencer.Registry, path string) error {
	ct := jsonType
	res, err := reg.Create(ctx, &sequencer.CreateRequest{Path: path, ContentType: &ct})
	if sequencer.KindOf(err) == sequencer.KindConflict {
		return fmt.Errorf("registry stream %q exists with another configuration (it must be a plain application/json stream without expiry)", path)
	}
	if err != nil {
		return fmt.Errorf("create registry stream %q: %w", path, err)
	}
	res.Handle.Release()
	return nil
}

// validRegistryPath checks Config.RegistryStream.
func validRegistryPath(p string) error {
	if p == "" {
		return nil
	}
	if err := protocol.ValidateStreamPath(p); err != nil {
		return fmt.Errorf("registry stream %q: %w", p, err)
	}
	return nil
}

// WaitHooks returns once every lifecycle event and AfterAppend call
// produced so far has been delivered, or with ctx's error. Tests use it to
// observe hooks deterministically; Close calls it before stopping.
func (s *Server) WaitHooks(ctx context.Context) error {
	return errors.Join(s.lc.wait(ctx), s.api.WaitHooks(ctx))
}
