package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrStopConsuming, returned by a ConsumeHandler (or wrapped in its
// error), ends Stream.Consume after the batch is committed: Consume
// returns nil.
var ErrStopConsuming = errors.New("stop consuming")

// ConsumeHandler handles one batch of a stream (see Batch; for JSON
// streams Batch.JSONMessages splits it into messages). Returning nil
// commits the batch: its NextOffset is saved, and the batch is not
// delivered again. Returning an error delivers the data again, from the
// last committed offset, after a backoff; the batches may then be cut at
// other places.
type ConsumeHandler func(ctx context.Context, b Batch) error

// ConsumeOptions configure Stream.Consume. The zero value follows the
// stream from its start, keeps the offset in memory and backs off from
// 1 s to 30 s.
type ConsumeOptions struct {
	// Store keeps the offset across restarts, such as a
	// FileOffsetStore; nil keeps it in memory, for this call only.
	Store OffsetStore
	// Offset is where to start when Store holds no offset: OffsetStart
	// (the default), OffsetNow, or an offset.
	Offset string
	// Live is how to follow the stream after catching up: LiveLongPoll,
	// LiveSSE or LiveAuto. The zero value, LiveNone, means LiveAuto here;
	// set StopAtEnd to stop instead.
	Live LiveMode
	// StopAtEnd makes Consume return nil once it has handled everything
	// up to the current end of the stream, instead of following it.
	StopAtEnd bool
	// MinBackoff is the wait after the first failure (default 1s); waits
	// double after each further failure in a row, up to MaxBackoff
	// (default 30s), each with random jitter so that many consumers do
	// not retry in lockstep.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between retries (default 30s).
	MaxBackoff time.Duration
	// MaxFailures ends Consume with the last error after this many
	// failures in a row without progress (default 0: retry until the
	// context ends).
	MaxFailures int
	// OnError, if set, is told of every failure Consume retries, with the
	// wait before the retry (for logging and metrics).
	OnError func(err error, retryIn time.Duration)
}

// Consume calls h for every batch of the stream, in order, and commits
// each handled batch's NextOffset to opts.Store. It resumes from the
// stored offset, so a restarted consumer continues after the last batch
// its predecessor committed: delivery is at least once (a batch whose
// handler returned nil but whose commit was lost is delivered again).
// Batches without data, which only tell that the reader caught up, are
// not handed to h, but their offset is committed.
//
// Failures are retried with exponential backoff and jitter: a handler
// error, a failed commit, and read errors that outlast the client's
// RetryPolicy (network errors, 5xx, 429). Consume ends with
//   - nil at the end of a closed stream, once caught up with StopAtEnd,
//     or when h returns ErrStopConsuming;
//   - the context's error when ctx is done;
//   - an error the server will answer again, unretried: ErrNotFound (the
//     stream does not exist), ErrGone, or another 4xx *HTTPError such as
//     401 or 403;
//   - the last error after MaxFailures failures in a row.
func (s *Stream) Consume(ctx context.Context, h ConsumeHandler, opts ConsumeOptions) error {
	if h == nil {
		return errors.New("consume: nil handler")
	}
	c := consumer{s: s, h: h, opt: opts, store: opts.Store}
	if c.store == nil {
		c.store = &MemoryOffsetStore{}
	}
	if c.opt.Live == LiveNone {
		c.opt.Live = LiveAuto
	}
	if c.opt.StopAtEnd {
		c.opt.Live = LiveNone
	}
	pol := RetryPolicy{InitialBackoff: time.Second, MaxBackoff: 30 * time.Second}
	if opts.MinBackoff > 0 {
		pol.InitialBackoff = opts.MinBackoff
	}
	if opts.MaxBackoff > 0 {
		pol.MaxBackoff = opts.MaxBackoff
	}
	pol = pol.withDefaults()

	off, ok, err := c.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("consume %s: loading the offset: %w", s.path, err)
	}
	if !ok {
		off = opts.Offset
		if off == "" {
			off = OffsetStart
		}
	}
	c.offset = off
	fails := 0
	for {
		progressed, err := c.run(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, new(*permanentError)):
			return fmt.Errorf("consume %s: %w", s.path, errors.Unwrap(err))
		}
		if progressed {
			fails = 0
		}
		fails++
		if opts.MaxFailures > 0 && fails >= opts.MaxFailures {
			return fmt.Errorf("consume %s: giving up after %d failures in a row: %w", s.path, fails, err)
		}
		wait := pol.backoff(fails - 1)
		if opts.OnError != nil {
			opts.OnError(err, wait)
		}
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
}

// consumer is the state of one Consume call.
type consumer struct {
	s      *Stream
	h      ConsumeHandler
	opt    ConsumeOptions
	store  OffsetStore
	offset string // the last committed offset
}

// run reads from the committed offset until the end (nil), a stop, or a
// failure; progressed tells whether it committed anything.
func (c *consumer) run(ctx context.Context) (progressed bool, err error) {
	r := c.s.Read(ctx, ReadOptions{Offset: c.offset, Live: c.opt.Live})
	defer r.Close()
	for {
		b, err := r.Next()
		if err == io.EOF {
			return progressed, nil
		}
		if err != nil {
			if permanentReadError(err) {
				err = &permanentError{err}
			}
			return progressed, err
		}
		stop := false
		if len(b.Data) > 0 {
			herr := c.h(ctx, b)
			if stop = errors.Is(herr, ErrStopConsuming); herr != nil && !stop {
				return progressed, fmt.Errorf("handler: %w", herr)
			}
		}
		if b.NextOffset != c.offset {
			// Commit even when ctx ended meanwhile: the handler is done
			// with the batch, and delivering it again would be a waste.
			if err := c.store.Save(context.WithoutCancel(ctx), b.NextOffset); err != nil {
				return progressed, fmt.Errorf("committing offset %s: %w", b.NextOffset, err)
			}
			c.offset = b.NextOffset
			progressed = true
		}
		if stop {
			return progressed, nil
		}
	}
}

// permanentError marks a read error Consume does not retry. Only read
// errors are: a handler may fail with any error and be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanentReadError reports whether the server would answer the same
// again, so that retrying is pointless: a 4xx other than 408 and 429.
func permanentReadError(err error) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	switch he.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return he.Status >= 400 && he.Status < 500
}
