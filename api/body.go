package api

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/auth/ratelimit"
	"github.com/streamtier/durable-streams/internal/connlimit"
	"github.com/streamtier/durable-streams/sequencer"
)

// bodyBufSize is the size of the buffer writeMessages gathers small
// messages in; messages at least this large bypass it.
const bodyBufSize = 32 << 10

// bodyBufs recycles writeMessages' buffers, so a reader costs at most one
// buffer however many chunks it reads.
var bodyBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bodyBufSize) }}

// writeMessages answers 200 with msgs as the body: their bytes
// concatenated, or a JSON array of them for JSON streams. It writes the
// messages where they are instead of assembling the body first: for a
// chunk of large messages that saves allocating, zeroing and copying the
// whole chunk once more. The explicit Content-Length also keeps net/http
// from chunking the body.
func writeMessages(c echo.Context, contentType string, asJSON bool, msgs []sequencer.Message) error {
	n := 0
	for _, m := range msgs {
		n += len(m.Data)
	}
	if asJSON {
		n += 2 + max(len(msgs)-1, 0) // brackets and commas
	}
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, contentType)
	h.Set(echo.HeaderContentLength, strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	if !asJSON && len(msgs) == 1 {
		_, err := w.Write(msgs[0].Data)
		return err
	}
	bw := bodyBufs.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil) // don't keep the response reachable from the pool
		bodyBufs.Put(bw)
	}()
	if err := writeBody(bw, asJSON, msgs); err != nil {
		return err
	}
	return bw.Flush()
}

// writeBody writes msgs to bw as writeMessages describes. bufio.Writer
// passes writes at least as large as its free space straight through, so
// large messages are not copied into the buffer.
func writeBody(bw *bufio.Writer, asJSON bool, msgs []sequencer.Message) error {
	if asJSON {
		bw.WriteByte('[')
	}
	for i, m := range msgs {
		if asJSON && i > 0 {
			bw.WriteByte(',')
		}
		if _, err := bw.Write(m.Data); err != nil {
			return err
		}
	}
	if asJSON {
		bw.WriteByte(']')
	}
	return nil
}

// readAll is io.ReadAll for a body whose length the client announced
// (size, -1 if unknown). The buffer grows with the bytes that actually
// arrive, doubling, from at most maxEagerRead: the announcement is only a
// hint, and a client that announces 8 MiB and sends one byte must not
// make the server hold 8 MiB (fifty such connections would hold 400 MiB).
// Growth stops at the announced size, so an honest body ends in a buffer
// of its own size with no slack.
func readAll(r io.Reader, size int64) ([]byte, error) {
	limit := int64(-1) // the capacity that holds the announced body and sees EOF
	if size >= 0 {
		limit = size + 1
	}
	first := int64(maxEagerRead)
	if limit > 0 {
		first = min(first, limit)
	}
	buf := make([]byte, 0, first)
	for {
		if len(buf) == cap(buf) {
			grow := max(cap(buf), 512) // doubling
			if limit > int64(len(buf)) {
				grow = int(min(int64(grow), limit-int64(len(buf))))
			}
			next := make([]byte, len(buf), len(buf)+grow)
			copy(next, buf)
			buf = next
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// maxEagerRead bounds the buffer readAll allocates before bytes arrive.
const maxEagerRead = 64 << 10

// Defaults of the body guard (Options.BodyMinRate, Options.BodyReadGrace).
const (
	DefaultBodyMinRate   = 1 << 10 // bytes per second
	DefaultBodyReadGrace = 10 * time.Second
)

// guardBody bounds how a request body may arrive, for every request that
// has one:
//
//   - at Options.BodyMinRate bytes per second on average, after a grace
//     period: the connection's read deadline is start + grace +
//     received/rate, moved as bytes arrive, so a large append on a slow
//     but steady link goes through while a client trickling a byte now
//     and then is cut off after the grace period (408);
//   - within Options.BodyBudget for its client address (see
//     ratelimit.ClientAddr): an announced length is reserved when the
//     handler starts reading (after authentication and validation, so
//     requests refused anyway never hold any), a chunked body as it
//     arrives (503 past the total, 429 past the client's share).
//
// The deadline is cleared once the body has been read to its end, so
// that it cannot cut the response or the rest of the request short. A
// handler that does not read the body leaves the first deadline in
// place, which bounds net/http's draining of the unread body.
func (a *API) guardBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			return next(c)
		}
		b := &guardedBody{body: r.Body, budget: a.opt.BodyBudget, rate: a.opt.BodyMinRate,
			client: ratelimit.ClientAddr(r, a.opt.Proxies)}
		if r.ContentLength <= a.opt.MaxAppendBytes {
			b.announced = r.ContentLength // larger ones get 413 unread
		}
		defer func() { b.budget.Release(b.client, b.reserved) }()
		if b.rate > 0 {
			b.rc = http.NewResponseController(c.Response())
			b.start, b.grace = time.Now(), a.opt.BodyReadGrace
			b.deadline = b.start.Add(b.grace)
			if err := b.rc.SetReadDeadline(b.deadline); err != nil {
				b.rate = 0 // a writer without deadlines (a test recorder)
			}
		}
		r.Body = b
		return next(c)
	}
}

// guardedBody is a request body under guardBody's bounds.
type guardedBody struct {
	body      io.ReadCloser
	budget    *connlimit.Budget
	client    string
	announced int64 // Content-Length to reserve at the first read; <= 0: none
	reserved  int64 // bytes held in budget
	refused   error // the budget's refusal, returned by every later read

	rate     int64 // bytes per second; 0: no deadline
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	received int64
	deadline time.Time
}

// budgetStep is how much a chunked body reserves at a time, so that it
// does not take the budget's lock for every read.
const budgetStep = 64 << 10

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.refused != nil {
		return 0, b.refused
	}
	if b.announced > 0 && b.budget != nil {
		if err := b.budget.Acquire(b.client, b.announced); err != nil {
			b.refused = err
			return 0, err
		}
		b.reserved, b.announced = b.announced, 0
	}
	if b.rate > 0 {
		d := b.start.Add(b.grace + time.Duration(float64(b.received)/float64(b.rate)*float64(time.Second)))
		if d.Sub(b.deadline) >= 10*time.Millisecond {
			b.rc.SetReadDeadline(d)
			b.deadline = d
		}
	}
	n, err := b.body.Read(p)
	b.received += int64(n)
	if b.budget != nil && b.received > b.reserved {
		step := max(b.received-b.reserved, budgetStep)
		if berr := b.budget.Acquire(b.client, step); berr != nil {
			b.refused = berr
			return n, berr
		}
		b.reserved += step
	}
	switch {
	case err == io.EOF && b.rate > 0:
		b.rc.SetReadDeadline(time.Time{})
		b.rate = 0
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = &slowBodyError{rate: b.rate}
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.body.Close() }

// slowBodyError is a body that arrived slower than the minimum rate.
type slowBodyError struct{ rate int64 }

func (e *slowBodyError) Error() string {
	return "request body arrived slower than " + strconv.FormatInt(e.rate, 10) + " bytes per second"
}

// budgetError is the answer to a request over a body byte budget.
// The connection is closed after it: the body is left unread, and net/http
// would otherwise read (up to 256 KiB of) it before answering.
func budgetError(err error) *httpError {
	h := map[string]string{"Retry-After": connlimit.RetryAfter, "Connection": "close"}
	if errors.Is(err, connlimit.ErrBusy) {
		return &httpError{status: http.StatusServiceUnavailable, code: "SERVER_BUSY", header: h,
			msg: "the server is receiving as many request bytes as it allows; retry shortly"}
	}
	return &httpError{status: http.StatusTooManyRequests, code: "TOO_MANY_BYTES", header: h,
		msg: "this client is sending as many request bytes at once as the server allows per client; retry shortly"}
}

// bodyReadError maps an error reading a request body to its answer.
func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	var slow *slowBodyError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &slow):
		// The connection's read side is past its deadline: close it.
		return &httpError{status: http.StatusRequestTimeout, code: "REQUEST_TIMEOUT", msg: slow.Error(),
			header: map[string]string{"Connection": "close"}}
	case errors.Is(err, connlimit.ErrBusy), errors.Is(err, connlimit.ErrClientBusy):
		return budgetError(err)
	}
	return badRequest("could not read request body")
}
