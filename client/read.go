package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"sync/atomic"
)

// LiveMode selects how a Reader follows a stream once it has caught up.
type LiveMode int

const (
	// LiveNone reads up to the current end of the stream, then reports
	// io.EOF.
	LiveNone LiveMode = iota
	// LiveLongPoll catches up with plain reads, then waits for new data
	// with long-poll requests.
	LiveLongPoll
	// LiveSSE reads and follows the stream over one Server-Sent Events
	// connection, reconnecting when the server ends it. Text arrives as
	// the SSE format carries it, from any server of the protocol: CR and
	// CRLF become LF, and a line that starts with a space arrives one
	// space shorter. JSON messages and binary data arrive exactly.
	LiveSSE
	// LiveAuto catches up with plain reads, then follows with SSE for
	// JSON streams and long-polling otherwise (or when the server refuses
	// SSE), so that text too arrives exactly as appended.
	LiveAuto
)

// String returns the mode's name, as used on the command line.
func (m LiveMode) String() string {
	switch m {
	case LiveNone:
		return "none"
	case LiveLongPoll:
		return "long-poll"
	case LiveSSE:
		return "sse"
	case LiveAuto:
		return "auto"
	}
	return fmt.Sprintf("LiveMode(%d)", int(m))
}

// Offset sentinels understood by every server.
const (
	// OffsetStart reads from the beginning of the stream.
	OffsetStart = "-1"
	// OffsetNow skips existing data and reads only what is appended later.
	OffsetNow = "now"
)

// ReadOptions configure Stream.Read.
type ReadOptions struct {
	// Offset to read from: OffsetStart (the default), OffsetNow, or a
	// NextOffset saved from an earlier batch to resume after it.
	Offset string
	// Live selects whether and how to follow the stream after catching
	// up (default LiveNone).
	Live LiveMode
}

// Batch is the data of one server response (or SSE event), with the
// stream's state after it.
type Batch struct {
	// Data holds the bytes read; for JSON streams it is a JSON array of
	// the messages (see JSONMessages). It is empty in batches that only
	// report a change of state (up to date, closed).
	Data []byte
	// NextOffset is the offset just after this batch: save it to resume
	// reading later.
	NextOffset string
	// UpToDate is true when the batch reaches the current end of the
	// stream.
	UpToDate bool
	// Closed is true when the stream is closed and this batch reaches its
	// end: the Reader then reports io.EOF.
	Closed bool
	// ContentType is the stream's content type (empty until known).
	ContentType string
}

// JSONMessages splits the batch of a JSON stream into its messages.
func (b Batch) JSONMessages() ([]json.RawMessage, error) {
	if len(bytes.TrimSpace(b.Data)) == 0 {
		return nil, nil
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(b.Data, &msgs); err != nil {
		return nil, fmt.Errorf("batch is not a JSON array: %w", err)
	}
	return msgs, nil
}

// Message is one message of a stream: one JSON value of a JSON stream,
// or the bytes of one batch of any other stream (which has no message
// boundaries).
type Message struct {
	Data []byte
	// NextOffset is the offset after the batch holding this message;
	// resuming from it skips the rest of the batch, so save it when
	// LastInBatch is true.
	NextOffset  string
	LastInBatch bool
	// UpToDate is true on the last message of a batch that reaches the
	// current end of the stream.
	UpToDate bool
}

// Reader reads a stream from an offset: it catches up and, in a live
// mode, follows the stream, reconnecting after network errors and server
// errors under the client's RetryPolicy (counted since the last success).
// A Reader is not safe for concurrent use, except that Close may be called
// at any time to stop it.
type Reader struct {
	s      *Stream
	ctx    context.Context
	cancel context.CancelFunc
	live   LiveMode

	offset   string
	cursor   string
	ct       string
	upToDate bool // the last response reached the end of the stream
	caughtUp bool // some response reached the end: switch to live reads
	noSSE    bool // the server refused SSE: LiveAuto long-polls instead
	done     bool // the next call reports err
	err      error
	closed   atomic.Bool

	sse   *sseConn
	fails int // consecutive failed attempts
}

// errReaderClosed is reported by Next after Close.
var errReaderClosed = errors.New("reader closed")

// Read returns a Reader of the stream. It does no I/O until Next; ctx
// bounds the Reader's whole life.
func (s *Stream) Read(ctx context.Context, opts ReadOptions) *Reader {
	ctx, cancel := context.WithCancel(ctx)
	off := opts.Offset
	if off == "" {
		off = OffsetStart
	}
	s.mu.Lock()
	ct := s.ct
	s.mu.Unlock()
	return &Reader{s: s, ctx: ctx, cancel: cancel, live: opts.Live, offset: off, ct: ct}
}

// Offset returns the offset the Reader continues from: the NextOffset of
// the last batch returned (or the starting offset).
func (r *Reader) Offset() string { return r.offset }

// UpToDate reports whether the last batch reached the end of the stream.
func (r *Reader) UpToDate() bool { return r.upToDate }

// ContentType returns the stream's content type, once a response told it.
func (r *Reader) ContentType() string { return r.ct }

// Close stops the Reader and releases its connection.
func (r *Reader) Close() error {
	r.closed.Store(true)
	r.cancel()
	return nil
}

// Next returns the next batch. It blocks in live modes until data
// arrives. It reports io.EOF after the batch that reaches the end of a
// closed stream, and in LiveNone mode after the batch that reaches the
// current end. Besides batches with data, Next returns an empty batch when
// the Reader becomes up to date, so callers can tell when they have caught
// up. Errors other than io.EOF are permanent: ErrNotFound, ErrGone, an
// *HTTPError, the context's error, or the last error after retries ran out.
func (r *Reader) Next() (Batch, error) {
	pol := r.s.c.retry
	for {
		if r.done {
			return Batch{}, r.err
		}
		if r.closed.Load() {
			r.finish(errReaderClosed)
			continue
		}
		b, emit, err := r.step()
		if err != nil {
			var te *transientError
			if r.ctx.Err() != nil {
				if r.closed.Load() {
					err = errReaderClosed
				} else {
					err = r.ctx.Err()
				}
			} else if errors.As(err, &te) && pol.allows(r.fails+1) {
				if serr := sleep(r.ctx, pol.delay(r.fails, te.after)); serr == nil {
					r.fails++
					continue
				}
				err = r.ctx.Err()
			}
			if errors.As(err, &te) {
				err = te.err
			}
			r.finish(err)
			return Batch{}, err
		}
		r.fails = 0
		if emit {
			return b, nil
		}
	}
}

// finish makes err the Reader's final answer and releases its connection.
func (r *Reader) finish(err error) {
	r.done, r.err = true, err
	r.closeSSE()
	r.cancel()
}

// Batches iterates over the batches of Next until io.EOF (which ends the
// loop without an error) or another error (yielded once, last).
func (r *Reader) Batches() iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		for {
			b, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(b, err) || err != nil {
				return
			}
		}
	}
}

// Messages iterates over single messages: the values of a JSON stream's
// batches, or each non-empty batch of any other stream. Batches that only
// report a change of state are skipped.
func (r *Reader) Messages() iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for b, err := range r.Batches() {
			if err != nil {
				yield(Message{}, err)
				return
			}
			if !isJSONType(b.ContentType) {
				if len(b.Data) > 0 && !yield(Message{Data: b.Data, NextOffset: b.NextOffset, LastInBatch: true, UpToDate: b.UpToDate}, nil) {
					return
				}
				continue
			}
			msgs, err := b.JSONMessages()
			if err != nil {
				yield(Message{}, err)
				return
			}
			for i, m := range msgs {
				last := i == len(msgs)-1
				if !yield(Message{Data: m, NextOffset: b.NextOffset, LastInBatch: last, UpToDate: last && b.UpToDate}, nil) {
					return
				}
			}
		}
	}
}

// transientError marks a failure worth retrying after a backoff, or after
// the server's Retry-After.
type transientError struct {
	err   error
	after retryAfter
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// step makes one request (or reads one SSE event group) and reports the
// batch to return, if any.
func (r *Reader) step() (Batch, bool, error) {
	if r.useSSE() {
		return r.stepSSE()
	}
	return r.fetch(r.caughtUp && r.live != LiveNone)
}

func (r *Reader) useSSE() bool {
	switch r.live {
	case LiveSSE:
		return true
	case LiveAuto:
		return r.caughtUp && !r.noSSE && isJSONType(r.ct)
	}
	return false
}

// readURL is the URL of a read from the current offset.
func (r *Reader) readURL(live string) string {
	q := "offset=" + url.QueryEscape(r.offset)
	if live != "" {
		q += "&live=" + live
		if r.cursor != "" {
			q += "&cursor=" + url.QueryEscape(r.cursor)
		}
	}
	return r.s.url + "?" + q
}

// fetch makes one catch-up (or long-poll, when live) request.
func (r *Reader) fetch(live bool) (Batch, bool, error) {
	mode := ""
	if live {
		mode = "long-poll"
	}
	resp, err := r.s.c.send(r.ctx, &request{method: http.MethodGet, url: r.readURL(mode)})
	if err != nil {
		return Batch{}, false, &transientError{err: fmt.Errorf("read %s: %w", r.s.path, err)}
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return Batch{}, false, readError(r.s.path, resp)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return Batch{}, false, &transientError{err: fmt.Errorf("read %s: %w", r.s.path, err)}
	}
	next := resp.Header.Get(hdrStreamNextOffset)
	if next == "" {
		return Batch{}, false, fmt.Errorf("read %s: response without %s", r.s.path, hdrStreamNextOffset)
	}
	if c := resp.Header.Get(hdrStreamCursor); c != "" {
		r.cursor = c
	}
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			r.ct = ct
		}
	}
	if isJSONType(r.ct) && bytes.Equal(bytes.TrimSpace(body), []byte("[]")) {
		body = nil
	}
	return r.advance(body, next, isTrue(resp.Header.Get(hdrStreamUpToDate)), isTrue(resp.Header.Get(hdrStreamClosed)))
}

// advance records a response's state and decides whether it is worth a
// batch: data, reaching the end, or the end of a closed stream.
func (r *Reader) advance(data []byte, next string, upToDate, closed bool) (Batch, bool, error) {
	emit := len(data) > 0 || (upToDate && !r.upToDate) || closed
	r.offset = next
	r.upToDate = upToDate
	if upToDate {
		r.caughtUp = true
	}
	if closed || (upToDate && r.live == LiveNone) {
		r.done, r.err = true, io.EOF
		r.closeSSE()
		r.cancel()
		emit = true
	}
	if !emit {
		return Batch{}, false, nil
	}
	return Batch{Data: data, NextOffset: next, UpToDate: upToDate, Closed: closed, ContentType: r.ct}, true, nil
}

// readError turns an error response of a read into an error, transient
// for 429 and 5xx.
func readError(path string, resp *http.Response) error {
	ra := parseRetryAfter(resp.Header.Get("Retry-After"))
	status := resp.StatusCode
	err := fmt.Errorf("read %s: %w", path, responseError(resp))
	if status == http.StatusTooManyRequests || status >= 500 {
		return &transientError{err: err, after: ra}
	}
	return err
}

// sseConn is an open SSE response.
type sseConn struct {
	body    io.ReadCloser
	br      *bufio.Reader
	base64  bool
	events  int      // events read on this connection
	pending [][]byte // data events not yet confirmed by a control event
}

func (r *Reader) closeSSE() {
	if r.sse != nil {
		r.sse.body.Close()
		r.sse = nil
	}
}

// stepSSE opens an SSE connection if needed and reads up to the next
// control event.
func (r *Reader) stepSSE() (Batch, bool, error) {
	if r.sse == nil {
		if err := r.openSSE(); err != nil || r.sse == nil {
			return Batch{}, false, err
		}
	}
	for {
		ev, err := r.sse.next()
		if err != nil {
			clean := err == io.EOF && r.sse.events > 0
			r.closeSSE()
			if clean {
				// The server ends SSE responses periodically so that
				// CDNs can collapse clients: reconnect from the offset.
				return Batch{}, false, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Batch{}, false, &transientError{err: fmt.Errorf("read %s (sse): %w", r.s.path, err)}
		}
		switch ev.name {
		case "data":
			data := ev.data
			if r.sse.base64 {
				if data, err = decodeBase64(data); err != nil {
					r.closeSSE()
					return Batch{}, false, fmt.Errorf("read %s (sse): bad base64 data: %w", r.s.path, err)
				}
			}
			r.sse.pending = append(r.sse.pending, data)
		case "control":
			var ctl struct {
				Next     string `json:"streamNextOffset"`
				Cursor   string `json:"streamCursor"`
				UpToDate bool   `json:"upToDate"`
				Closed   bool   `json:"streamClosed"`
			}
			if err := json.Unmarshal(ev.data, &ctl); err != nil || ctl.Next == "" {
				r.closeSSE()
				return Batch{}, false, fmt.Errorf("read %s (sse): malformed control event", r.s.path)
			}
			if ctl.Cursor != "" {
				r.cursor = ctl.Cursor
			}
			data := joinPayloads(r.sse.pending, isJSONType(r.ct))
			r.sse.pending = nil
			return r.advance(data, ctl.Next, ctl.UpToDate, ctl.Closed)
		}
	}
}

func (r *Reader) openSSE() error {
	if r.ct == "" {
		// SSE responses do not carry the stream's content type, which
		// decides how data events are framed: ask once.
		md, err := r.s.Head(r.ctx)
		if err != nil {
			return err
		}
		r.ct = md.ContentType
	}
	h := http.Header{"Accept": {"text/event-stream"}}
	resp, err := r.s.c.send(r.ctx, &request{method: http.MethodGet, url: r.readURL("sse"), header: h})
	if err != nil {
		return &transientError{err: fmt.Errorf("read %s (sse): %w", r.s.path, err)}
	}
	if resp.StatusCode == http.StatusBadRequest && r.live == LiveAuto {
		// The server does not stream this stream over SSE: long-poll.
		drain(resp)
		r.noSSE = true
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return readError(r.s.path, resp)
	}
	r.sse = &sseConn{
		body:   resp.Body,
		br:     bufio.NewReaderSize(resp.Body, 64<<10),
		base64: resp.Header.Get(hdrSSEDataEncoding) == "base64",
	}
	return nil
}

// joinPayloads merges the data events of one batch. JSON arrays are
// merged into one array; other data is concatenated.
func joinPayloads(p [][]byte, jsonArrays bool) []byte {
	switch len(p) {
	case 0:
		return nil
	case 1:
		if jsonArrays && bytes.Equal(bytes.TrimSpace(p[0]), []byte("[]")) {
			return nil
		}
		return p[0]
	}
	if !jsonArrays {
		return bytes.Join(p, nil)
	}
	var out []byte
	for _, a := range p {
		out = appendJSONArray(out, a)
	}
	return closeJSONArray(out)
}

// appendJSONArray adds the elements of the JSON array a to the array
// being built in out (nil: none yet), which closeJSONArray finishes.
func appendJSONArray(out, a []byte) []byte {
	a = bytes.TrimSpace(a)
	if len(a) < 2 {
		return out
	}
	inner := bytes.TrimSpace(a[1 : len(a)-1])
	if len(inner) == 0 {
		return out
	}
	if out == nil {
		out = append(make([]byte, 0, len(inner)+2), '[')
	} else {
		out = append(out, ',')
	}
	return append(out, inner...)
}

// closeJSONArray finishes an array built by appendJSONArray; nil stays nil
// (no elements).
func closeJSONArray(out []byte) []byte {
	if out == nil {
		return nil
	}
	return append(out, ']')
}

// ReadAll reads the stream from offset (OffsetStart if empty) to its
// current end, across as many responses as the server splits it into, and
// returns it as one batch: Data is all the bytes (for JSON streams one
// JSON array of all the messages, see Batch.JSONMessages), NextOffset the
// offset to continue from, Closed whether the stream is closed. It holds
// everything in memory; read large streams with a Reader instead.
func (s *Stream) ReadAll(ctx context.Context, offset string) (Batch, error) {
	r := s.Read(ctx, ReadOptions{Offset: offset})
	defer r.Close()
	var data []byte
	closed := false
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Batch{}, err
		}
		if isJSONType(b.ContentType) {
			data = appendJSONArray(data, b.Data)
		} else {
			data = append(data, b.Data...)
		}
		closed = b.Closed
	}
	if isJSONType(r.ContentType()) {
		data = closeJSONArray(data)
	}
	return Batch{Data: data, NextOffset: r.Offset(), UpToDate: true, Closed: closed, ContentType: r.ContentType()}, nil
}
