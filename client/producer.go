package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrProducerClosed is returned by a Producer's methods after Close.
var ErrProducerClosed = errors.New("producer closed")

// ProducerOptions configure Stream.Producer.
type ProducerOptions struct {
	// ID identifies the producer across restarts (required), such as
	// "orders-service-1".
	ID string
	// Epoch is the producer's session number. Increase it on every
	// restart of the producer (or use AutoClaim): the server fences older
	// epochs, and a restarted producer reusing an epoch would have its
	// first appends dropped as duplicates.
	Epoch int64
	// AutoClaim lets a producer that does not persist its epoch take the
	// id over: when the server reports a newer epoch (or the epoch already
	// in use) before this producer has appended anything, it continues
	// with the server's epoch plus one, once. Without it, or later in the
	// session, being fenced is a *StaleEpochError. If another producer
	// claims the id at the very moment of a retried append, that append
	// may be stored twice: auto-claim trades exactly-once for
	// availability in that race.
	AutoClaim bool
	// ContentType of the appends (default: the stream's, asked from the
	// server on first use). On JSON streams every Append is one JSON
	// message; on others the bytes of a batch are concatenated.
	ContentType string
	// MaxBatchMessages bounds the messages of one request (default 1000).
	MaxBatchMessages int
	// MaxBatchBytes bounds the bytes of one request (default 1 MiB); a
	// larger single message is sent alone.
	MaxBatchBytes int
	// Linger is how long a batch waits for more messages before it is
	// sent (default 0: send as soon as the in-flight window allows; under
	// load, messages accumulate while the window is full anyway).
	Linger time.Duration
	// MaxInFlight bounds the requests in flight at once (default 5).
	// Append blocks while that many batches are waiting and the next one
	// is full.
	MaxInFlight int
	// OnError, if set, is called once with the error that stops the
	// producer (the same error Append, Flush and Close then return). It
	// runs on the producer's goroutine and must not call the producer's
	// blocking methods.
	OnError func(error)
}

// Producer appends to a stream with exactly-once semantics: each batch
// carries the producer's id, epoch and a sequence number, so the server
// stores every retry of it at most once and in order. Appends are
// batched, with several batches in flight; transient failures (network
// errors, 5xx, 429) are retried with the same sequence number.
//
// A Producer is safe for concurrent use; messages are stored in the order
// their Append calls returned.
type Producer struct {
	s        *Stream
	opt      ProducerOptions
	ctx      context.Context // cancelled when the producer stops
	cancel   context.CancelFunc
	input    chan []byte
	flushes  chan chan error
	results  chan sendResult
	quit     chan struct{}
	ready    chan struct{} // closed once the content type is known
	stopped  chan struct{} // closed when err is set
	done     chan struct{} // closed when run returns
	quitMu   sync.Once
	err      error
	json     bool
	curEpoch atomic.Int64

	// Owned by run.
	ct         string
	epoch      int64
	nextSeq    int64
	nextID     uint64
	open       openBatch
	lingerT    *time.Timer
	lingerC    <-chan time.Time
	queue      []*batch // sealed batches not yet acknowledged, in seq order
	inflight   int
	acked      bool  // a batch was acknowledged in the current epoch
	claimed    bool  // AutoClaim was used
	claimEpoch int64 // >= 0: waiting for in-flight requests before claiming this epoch
	waiters    []flushWaiter
}

type openBatch struct {
	msgs      [][]byte
	bytes     int
	full      bool
	lingering bool // Linger has passed since its first message
}

// batch is one request's worth of messages.
type batch struct {
	id        uint64 // order of sealing; survives renumbering on a claim
	seq       int64
	body      []byte
	inflight  bool
	done      bool
	blocked   bool // rejected for a sequence gap: resend once all earlier batches are stored
	asHead    bool // last sent when every earlier batch was acknowledged
	ambiguous bool // an attempt may have been applied without us knowing
	gen       int  // bumped on renumbering, to ignore answers to old numbers
}

type flushWaiter struct {
	id    uint64 // done when every batch up to id is acknowledged
	reply chan error
}

// sendResult is a worker's final outcome for one batch.
type sendResult struct {
	b         *batch
	gen       int
	ambiguous bool
	dup       bool  // 204: the server already had this seq
	gap       int64 // >= 0: 409 with this expected seq
	stale     int64 // >= 0: 403 with this current epoch
	err       error // permanent failure
}

// Producer starts an idempotent producer for the stream. Close it to
// flush and release it.
func (s *Stream) Producer(opts ProducerOptions) *Producer {
	if opts.MaxBatchMessages <= 0 {
		opts.MaxBatchMessages = 1000
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 1 << 20
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 5
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		s: s, opt: opts, ctx: ctx, cancel: cancel,
		input:      make(chan []byte),
		flushes:    make(chan chan error),
		results:    make(chan sendResult, opts.MaxInFlight),
		quit:       make(chan struct{}),
		ready:      make(chan struct{}),
		stopped:    make(chan struct{}),
		done:       make(chan struct{}),
		ct:         opts.ContentType,
		epoch:      opts.Epoch,
		claimEpoch: -1,
	}
	p.curEpoch.Store(opts.Epoch)
	go p.run()
	return p
}

// Epoch returns the producer's current epoch: the one it started with,
// or the one it claimed.
func (p *Producer) Epoch() int64 { return p.curEpoch.Load() }

// Append queues data as one message. It returns once the message is
// queued, blocking only while the in-flight window is full; use Flush to
// wait until it is stored. On JSON streams data must be one JSON value.
func (p *Producer) Append(ctx context.Context, data []byte) error {
	select {
	case <-p.ready:
	case <-p.stopped:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(data) == 0 {
		return errors.New("producer append: empty message")
	}
	if p.json && !json.Valid(data) {
		return errors.New("producer append: not a JSON value")
	}
	msg := append([]byte(nil), data...) // the caller may reuse data
	select {
	case p.input <- msg:
		return nil
	case <-p.stopped:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AppendJSON queues v, encoded as JSON, as one message.
func (p *Producer) AppendJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("producer append: encoding JSON: %w", err)
	}
	return p.Append(ctx, b)
}

// Flush sends every queued message and waits until the server has
// stored them, or the producer failed (its error), or ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case p.flushes <- reply:
	case <-p.stopped:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes the producer (bounded by ctx) and stops it. Messages not
// stored by then are dropped. It does not close the stream.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	if errors.Is(err, ErrProducerClosed) {
		err = nil
	}
	p.quitMu.Do(func() { close(p.quit) })
	<-p.done
	return err
}

// run is the producer's single goroutine: it owns the batches and
// decides what to send, so ordering needs no locks.
func (p *Producer) run() {
	defer close(p.done)
	defer p.cancel()
	if p.opt.ID == "" {
		p.fail(errors.New("producer: ID is required"), true)
		return
	}
	if p.ct == "" {
		ct, err := p.s.contentType(p.ctx)
		if err != nil {
			p.fail(fmt.Errorf("producer %s: %w", p.opt.ID, err), true)
			return
		}
		p.ct = ct
	}
	p.json = isJSONType(p.ct)
	close(p.ready)
	for {
		var input chan []byte
		if !p.open.full || len(p.queue) < p.opt.MaxInFlight {
			input = p.input
		}
		select {
		case m := <-input:
			p.add(m)
		case reply := <-p.flushes:
			p.flush(reply)
		case r := <-p.results:
			p.handle(r)
		case <-p.lingerC:
			p.open.lingering = true
			p.lingerC = nil
		case <-p.quit:
			p.fail(ErrProducerClosed, false)
			return
		}
		if p.err != nil {
			return
		}
		p.seal(false)
		p.dispatch()
	}
}

// add puts a message into the open batch.
func (p *Producer) add(m []byte) {
	if len(p.open.msgs) > 0 && p.open.bytes+len(m) > p.opt.MaxBatchBytes {
		p.seal(true)
	}
	if len(p.open.msgs) == 0 && p.opt.Linger > 0 {
		if p.lingerT == nil {
			p.lingerT = time.NewTimer(p.opt.Linger)
		} else {
			p.lingerT.Reset(p.opt.Linger)
		}
		p.lingerC = p.lingerT.C
	}
	p.open.msgs = append(p.open.msgs, m)
	p.open.bytes += len(m)
	p.open.full = len(p.open.msgs) >= p.opt.MaxBatchMessages || p.open.bytes >= p.opt.MaxBatchBytes
}

// seal turns the open batch into a numbered batch when it is due and the
// window has room, or unconditionally when forced.
func (p *Producer) seal(force bool) {
	o := &p.open
	if len(o.msgs) == 0 {
		return
	}
	if !force && (len(p.queue) >= p.opt.MaxInFlight || !(o.full || o.lingering || p.opt.Linger <= 0)) {
		return
	}
	var body []byte
	if p.json {
		// One level of array is flattened by the server, so each message,
		// arrays included, is stored as itself.
		n := 2 + len(o.msgs)
		for _, m := range o.msgs {
			n += len(m)
		}
		body = make([]byte, 0, n)
		body = append(body, '[')
		for i, m := range o.msgs {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, m...)
		}
		body = append(body, ']')
	} else {
		body = make([]byte, 0, o.bytes)
		for _, m := range o.msgs {
			body = append(body, m...)
		}
	}
	p.nextID++
	p.queue = append(p.queue, &batch{id: p.nextID, seq: p.nextSeq, body: body})
	p.nextSeq++
	*o = openBatch{}
	p.lingerC = nil
	if p.lingerT != nil {
		p.lingerT.Stop()
	}
}

func (p *Producer) flush(reply chan error) {
	p.seal(true)
	if len(p.queue) == 0 {
		reply <- nil
		return
	}
	p.waiters = append(p.waiters, flushWaiter{id: p.queue[len(p.queue)-1].id, reply: reply})
}

// dispatch sends the batches that may go now. The first batch of an
// epoch goes alone, because the server rejects any other sequence number
// until that epoch is established; a batch rejected for a gap waits until
// it is the oldest, since only then are its predecessors stored.
func (p *Producer) dispatch() {
	if p.claimEpoch >= 0 {
		return
	}
	for i, b := range p.queue {
		if p.inflight >= p.opt.MaxInFlight {
			return
		}
		if b.inflight {
			continue
		}
		if i > 0 && (!p.acked || b.blocked) {
			return
		}
		b.inflight, b.asHead = true, i == 0
		p.inflight++
		go p.send(b, b.gen, p.epoch, b.seq)
	}
}

// handle applies one batch's outcome.
func (p *Producer) handle(r sendResult) {
	b := r.b
	b.inflight = false
	p.inflight--
	if r.gen != b.gen || b.done {
		return
	}
	b.ambiguous = b.ambiguous || r.ambiguous
	switch {
	case r.err != nil:
		p.fail(fmt.Errorf("producer %s: %w", p.opt.ID, r.err), true)
		return
	case r.stale >= 0:
		p.fenced(r.stale, r.stale)
	case r.gap >= 0:
		if r.gap > b.seq || b.asHead {
			// Every earlier batch was acknowledged when this one was sent:
			// the server lost what it acknowledged, and retrying cannot
			// restore exactly-once.

			p.fail(fmt.Errorf("producer %s: seq %d: %w", p.opt.ID, b.seq,
				&SequenceGapError{Expected: r.gap, Received: b.seq, Err: &HTTPError{Status: http.StatusConflict, Code: "SEQUENCE_GAP"}}), true)
			return
		}
		b.blocked = true
	case r.dup && !b.ambiguous:
		// The seq was already used in this epoch, and not by us: another
		// producer (or an earlier run) has the same id and epoch.
		p.fenced(p.epoch, p.epoch)
	default:
		p.ackThrough(b.seq)
	}
	if p.claimEpoch >= 0 && p.inflight == 0 && p.err == nil {
		p.claim()
	}
}

// fenced handles a server epoch that does not let this producer go on.
func (p *Producer) fenced(serverEpoch, reported int64) {
	if p.claimEpoch >= 0 {
		p.claimEpoch = max(p.claimEpoch, serverEpoch+1)
		return
	}
	if p.opt.AutoClaim && !p.claimed && !p.acked {
		p.claimEpoch = serverEpoch + 1
		return
	}
	he := &HTTPError{Status: http.StatusForbidden, Code: "STALE_EPOCH"}
	p.fail(fmt.Errorf("producer %s: %w", p.opt.ID, &StaleEpochError{Epoch: p.epoch, CurrentEpoch: reported, Err: he}), true)
}

// claim starts the new epoch once nothing is in flight: every waiting
// batch is renumbered from seq 0.
func (p *Producer) claim() {
	if p.acked {
		// A batch of the old epoch was stored after all: the id was
		// claimed by someone else mid-session, so this producer is a zombie.
		he := &HTTPError{Status: http.StatusForbidden, Code: "STALE_EPOCH"}
		p.fail(fmt.Errorf("producer %s: %w", p.opt.ID, &StaleEpochError{Epoch: p.epoch, CurrentEpoch: p.claimEpoch - 1, Err: he}), true)
		return
	}
	p.epoch, p.claimEpoch, p.claimed = p.claimEpoch, -1, true
	p.curEpoch.Store(p.epoch)
	for i, b := range p.queue {
		b.seq, b.gen, b.blocked, b.ambiguous = int64(i), b.gen+1, false, false
	}
	p.nextSeq = int64(len(p.queue))
}

// ackThrough records that the server stored every seq up to seq: its
// per-producer sequence only ever advances by one.
func (p *Producer) ackThrough(seq int64) {
	p.acked = true
	n := 0
	for _, b := range p.queue {
		if b.seq > seq {
			break
		}
		b.done = true
		n++
	}
	p.queue = p.queue[n:]
	var first uint64 = ^uint64(0)
	if len(p.queue) > 0 {
		first = p.queue[0].id
	}
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if w.id < first {
			w.reply <- nil
		} else {
			kept = append(kept, w)
		}
	}
	p.waiters = kept
}

// fail stops the producer with err.
func (p *Producer) fail(err error, report bool) {
	p.err = err
	p.cancel()
	// OnError runs first, so that it has seen the error by the time
	// Flush or Append return it.
	if report && p.opt.OnError != nil {
		p.opt.OnError(err)
	}
	close(p.stopped)
	for _, w := range p.waiters {
		w.reply <- err
	}
	p.waiters = nil
	p.queue = nil
}

// send delivers one batch, retrying transient failures with the same
// epoch and seq, and reports the outcome to run.
func (p *Producer) send(b *batch, gen int, epoch, seq int64) {
	res := sendResult{b: b, gen: gen, gap: -1, stale: -1}
	defer func() {
		select {
		case p.results <- res:
		case <-p.ctx.Done():
		}
	}()
	h := http.Header{
		"Content-Type":   {p.ct},
		hdrProducerID:    {p.opt.ID},
		hdrProducerEpoch: {strconv.FormatInt(epoch, 10)},
		hdrProducerSeq:   {strconv.FormatInt(seq, 10)},
	}
	req := &request{method: http.MethodPost, url: p.s.url, header: h, body: b.body}
	pol := p.s.c.retry
	for attempt := 0; ; attempt++ {
		resp, err := p.s.c.send(p.ctx, req)
		var wait retryAfter
		switch {
		case err != nil:
			if p.ctx.Err() != nil {
				res.err = p.ctx.Err()
				return
			}
			// The request may have been applied before the connection
			// broke; its retry is deduplicated by seq.
			res.ambiguous = true
			err = fmt.Errorf("seq %d: %w", seq, err)
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
			drain(resp)
			res.dup = resp.StatusCode == http.StatusNoContent
			return
		default:
			status := resp.StatusCode
			ra := parseRetryAfter(resp.Header.Get("Retry-After"))
			e := responseError(resp)
			var se *StaleEpochError
			var ge *SequenceGapError
			switch {
			case errors.As(e, &se):
				res.stale = se.CurrentEpoch
				return
			case errors.As(e, &ge):
				res.gap = ge.Expected
				return
			case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
				wait = ra
			case status >= 500:
				res.ambiguous = true
			default:
				res.err = fmt.Errorf("seq %d: %w", seq, e)
				return
			}
			err = fmt.Errorf("seq %d: %w", seq, e)
		}
		if !pol.allows(attempt + 1) {
			res.err = fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
			return
		}
		if sleep(p.ctx, pol.delay(attempt, wait)) != nil {
			res.err = p.ctx.Err()
			return
		}
	}
}
