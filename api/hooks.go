package api

import (
	"context"
	"log/slog"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// maxPendingAfter bounds the AfterAppend calls queued but not yet run. A
// request whose call finds the queue full waits for room, so a hook that
// cannot keep up slows appends down instead of growing memory.
const maxPendingAfter = 4096

// beforeAppend runs the BeforeAppend hook; a veto becomes the request's
// error response.
func (a *API) beforeAppend(c echo.Context, info *hooks.AppendInfo) error {
	if err := a.opt.Hooks.BeforeAppend(c.Request().Context(), info); err != nil {
		rej := hooks.AsRejection(err)
		return &httpError{status: rej.Status, code: rej.Code, msg: rej.Reason}
	}
	return nil
}

func producerInfo(p *protocol.Producer) *hooks.Producer {
	if p == nil {
		return nil
	}
	return &hooks.Producer{ID: p.ID, Epoch: p.Epoch, Seq: p.Seq}
}

// afterQueue runs AfterAppend calls off the request path: one goroutine
// per stream with pending calls, so that the calls of a stream run one at
// a time in the order they were queued, and streams do not wait for each
// other.
type afterQueue struct {
	fn    func(context.Context, hooks.AppendResult)
	lg    *slog.Logger
	slots chan struct{}

	mu      sync.Mutex
	pending map[string][]afterCall // by stream path; present while its goroutine runs
	queued  int                    // calls queued or running
	idle    []chan struct{}        // closed when queued drops to zero
}

type afterCall struct {
	ctx context.Context
	res hooks.AppendResult
}

func newAfterQueue(fn func(context.Context, hooks.AppendResult), lg *slog.Logger) *afterQueue {
	return &afterQueue{fn: fn, lg: lg, slots: make(chan struct{}, maxPendingAfter), pending: map[string][]afterCall{}}
}

// push queues a call for res. The hook sees the request's values but not
// its cancellation: the append it reports has happened.
func (q *afterQueue) push(ctx context.Context, res hooks.AppendResult) {
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		q.lg.Warn("after-append hook skipped: queue full and request canceled", "path", res.Path, "next_offset", res.NextOffset)
		return
	}
	call := afterCall{ctx: context.WithoutCancel(ctx), res: res}
	q.mu.Lock()
	q.queued++
	calls, running := q.pending[res.Path]
	q.pending[res.Path] = append(calls, call)
	q.mu.Unlock()
	if !running {
		go q.run(res.Path)
	}
}

func (q *afterQueue) run(path string) {
	for {
		q.mu.Lock()
		calls := q.pending[path]
		if len(calls) == 0 {
			delete(q.pending, path)
			q.mu.Unlock()
			return
		}
		call := calls[0]
		calls[0] = afterCall{}
		q.pending[path] = calls[1:]
		q.mu.Unlock()
		q.call(call)
		<-q.slots
		q.mu.Lock()
		if q.queued--; q.queued == 0 {
			for _, ch := range q.idle {
				close(ch)
			}
			q.idle = nil
		}
		q.mu.Unlock()
	}
}

func (q *afterQueue) call(c afterCall) {
	defer func() {
		if v := recover(); v != nil {
			q.lg.Error("after-append hook panicked", "path", c.res.Path, "panic", v)
		}
	}()
	q.fn(c.ctx, c.res)
}

// wait returns when every queued call has run, or with ctx's error.
func (q *afterQueue) wait(ctx context.Context) error {
	q.mu.Lock()
	if q.queued == 0 {
		q.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	q.idle = append(q.idle, done)
	q.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitHooks returns when every AfterAppend call queued so far has run, or
// with ctx's error. Call it after the HTTP server has stopped taking
// requests, so that no acknowledged append goes unreported.
func (a *API) WaitHooks(ctx context.Context) error {
	if a.after == nil {
		return nil
	}
	return a.after.wait(ctx)
}
