package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/contentenc"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

func (a *API) get(c echo.Context, name string) error {
	r := c.Request()
	q := r.URL.Query()
	off, err := protocol.ParseReadOffset(q)
	if err != nil {
		return badRequest(err.Error())
	}
	live, err := protocol.ParseLive(q)
	if err != nil {
		return badRequest(err.Error())
	}
	if live != protocol.LiveNone && !off.Given {
		return badRequest("live reads require an offset parameter")
	}
	cr, err := a.cacheRequest(r, name)
	if err != nil {
		return err
	}
	h, err := a.reg.Acquire(r.Context(), name, true)
	if err != nil {
		return err
	}
	defer h.Release()
	snap := h.Snapshot()
	pos := int64(0)
	switch off.Kind {
	case protocol.OffsetNow:
		pos = snap.Tail
	case protocol.OffsetToken:
		pos = off.Token.Position
		if pos > snap.Tail {
			return badRequest("offset is beyond the end of the stream")
		}
	}
	enc, negotiated := a.encodingFor(r, snap.ContentType)
	cr.Negotiated = negotiated
	switch live {
	case protocol.LiveLongPoll:
		return a.longPoll(c, h, pos, q.Get("cursor"), cr, enc)
	case protocol.LiveSSE:
		return a.sse(c, h, pos, q.Get("cursor"), cr, enc)
	}
	if off.Kind == protocol.OffsetNow {
		return a.writeNow(c, h, snap)
	}
	cr.Kind = cache.CatchUp
	return a.catchUp(c, h, snap, pos, cr, enc)
}

// writeNow answers offset=now: no data, the tail offset, never cached.
func (a *API) writeNow(c echo.Context, h *sequencer.Handle, snap *sequencer.Snapshot) error {
	hd := c.Response().Header()
	hd.Set(protocol.HeaderStreamNextOffset, snap.TailToken(c.Request().Context()).String())
	hd.Set(protocol.HeaderStreamUpToDate, "true")
	hd.Set("Cache-Control", cache.CacheControl(cache.Request{Kind: cache.NoStore}))
	if snap.Closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	body := []byte{}
	if isJSON(snap) {
		body = []byte("[]")
	}
	return c.Blob(http.StatusOK, snap.ContentType, body)
}

// writeChunk answers a read that found its bytes (or an empty read at the
// tail) with the protocol headers, ETag revalidation and caching policy;
// info is the stream's catalog row (its expiry), cr carries the kind of
// read and its request-dependent caching inputs, enc the content coding
// negotiated for it.
func (a *API) writeChunk(c echo.Context, info catalog.Stream, snap *sequencer.Snapshot, chunk *sequencer.Chunk, cr cache.Request, cursor string, enc contentenc.Encoding) error {
	upToDate := chunk.End == snap.Tail
	enc, notModified := setReadHeaders(c, info, snap, readSpan{from: chunk.From, end: chunk.EndToken, bytes: int64(chunk.Bytes()),
		upToDate: upToDate, closed: upToDate && snap.Closed, sealed: chunk.Sealed, empty: chunk.End == chunk.From}, cr, cursor, enc)
	if notModified {
		return c.NoContent(http.StatusNotModified)
	}
	if enc == contentenc.Identity {
		return writeMessages(c, snap.ContentType, isJSON(snap), chunk.Messages)
	}
	done := compress(c, enc)
	err := writeMessages(c, snap.ContentType, isJSON(snap), chunk.Messages)
	if cerr := done(); err == nil {
		err = cerr
	}
	return err
}

// readSpan is what a read response carries: the bytes from position from
// to the offset end.
type readSpan struct {
	from                            int64
	end                             offset.Token
	bytes                           int64
	upToDate, closed, sealed, empty bool
}

// setReadHeaders sets the headers of a read response carrying sp: the
// offsets, the caching decision (cursor if it calls for one) and the
// ETag of the coding it returns, the one the body is sent in. notModified
// reports that the request's If-None-Match matched that ETag, so the
// answer is 304 without a body.
func setReadHeaders(c echo.Context, info catalog.Stream, snap *sequencer.Snapshot, sp readSpan, cr cache.Request, cursor string, enc contentenc.Encoding) (_ contentenc.Encoding, notModified bool) {
	hd := c.Response().Header()
	startTok := snap.TokenFor(c.Request().Context(), sp.from)
	enc = sizedEncoding(enc, sp.bytes)
	etag := cache.EncodedETag(cache.ETag(snap.ID, startTok.String(), sp.end.String(), sp.closed), string(enc))
	hd.Set(protocol.HeaderStreamNextOffset, sp.end.String())
	if sp.upToDate {
		hd.Set(protocol.HeaderStreamUpToDate, "true")
	}
	if sp.closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	cr.Remaining = remaining(info)
	cr.Sealed, cr.UpToDate, cr.Closed, cr.Empty = sp.sealed, sp.upToDate, sp.closed, sp.empty
	d := cache.Decide(cr)
	d.Apply(hd)
	if d.Cursor && cursor != "" {
		hd.Set(protocol.HeaderStreamCursor, cursor)
	}
	hd.Set("ETag", etag)
	return enc, cache.Matches(c.Request().Header.Get("If-None-Match"), etag)
}

// remaining is the time left before the stream expires (0: never).
func remaining(info catalog.Stream) time.Duration {
	if d, ok := info.Deadline(); ok {
		if left := time.Until(d); left > 0 {
			return left
		}
		return time.Nanosecond
	}
	return 0
}

func isJSON(snap *sequencer.Snapshot) bool {
	ct, err := protocol.ParseContentType(snap.ContentType)
	return err == nil && ct.IsJSON()
}

// encodeBody renders messages as the response body: raw bytes, or a JSON
// array for JSON streams.
func encodeBody(snap *sequencer.Snapshot, msgs []sequencer.Message) []byte {
	if !isJSON(snap) {
		if len(msgs) == 1 {
			return msgs[0].Data
		}
		n := 0
		for _, m := range msgs {
			n += len(m.Data)
		}
		buf := make([]byte, 0, n)
		for _, m := range msgs {
			buf = append(buf, m.Data...)
		}
		return buf
	}
	return jsonArray(msgs)
}

func jsonArray(msgs []sequencer.Message) []byte {
	n := 2 + len(msgs)
	for _, m := range msgs {
		n += len(m.Data)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '[')
	for i, m := range msgs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, m.Data...)
	}
	return append(buf, ']')
}

// longPoll answers at once when data exists at pos, otherwise waits for an
// append, close or deletion, up to the long-poll timeout (then 204).
func (a *API) longPoll(c echo.Context, h *sequencer.Handle, pos int64, clientCursor string, cr cache.Request, enc contentenc.Encoding) error {
	ctx := c.Request().Context()
	timer := time.NewTimer(a.opt.LongPollTimeout)
	defer timer.Stop()
	for {
		snap := h.Snapshot()
		if snap.Deleted {
			return goneOrMissing(snap)
		}
		if pos < snap.Tail {
			chunk, err := a.readChunk(ctx, snap, pos)
			if err != nil {
				return err
			}
			cr.Kind = cache.LongPollData
			return a.writeChunk(c, h.Info, snap, &chunk, cr, a.cursor(clientCursor), enc)
		}
		if snap.Closed {
			return a.noContent(c, snap, "")
		}
		if err := a.waitChange(ctx, snap, timer.C); err != nil {
			if errors.Is(err, errWaitEnded) {
				return a.noContent(c, h.Snapshot(), a.cursor(clientCursor))
			}
			return err
		}
	}
}

// errWaitEnded is waitChange's answer when the wait timed out or the
// server is shutting down.
var errWaitEnded = errors.New("wait ended")

// waitChange waits until snap is superseded (nil), end fires or the server
// shuts down (errWaitEnded), or ctx ends (its error), counting the waiter.
func (a *API) waitChange(ctx context.Context, snap *sequencer.Snapshot, end <-chan time.Time) error {
	a.waiters.Add(1)
	defer a.waiters.Add(-1)
	select {
	case <-snap.Changed():
		return nil
	case <-end:
		return errWaitEnded
	case <-a.reg.Closing():
		return errWaitEnded
	case <-ctx.Done():
		return ctx.Err()
	}
}

func goneOrMissing(snap *sequencer.Snapshot) error {
	if snap.Soft {
		return &httpError{status: http.StatusGone, code: "GONE", msg: "stream was deleted"}
	}
	return &httpError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "stream was deleted"}
}

// noContent is the long-poll answer when there is nothing new.
func (a *API) noContent(c echo.Context, snap *sequencer.Snapshot, cursor string) error {
	hd := c.Response().Header()
	hd.Set(protocol.HeaderStreamNextOffset, snap.TailToken(c.Request().Context()).String())
	hd.Set(protocol.HeaderStreamUpToDate, "true")
	d := cache.Decide(cache.Request{Kind: cache.LongPollEmpty, Closed: snap.Closed})
	d.Apply(hd)
	if snap.Closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	if d.Cursor {
		if cursor == "" {
			cursor = a.cursor("")
		}
		hd.Set(protocol.HeaderStreamCursor, cursor)
	}
	return c.NoContent(http.StatusNoContent)
}

type controlEvent struct {
	StreamNextOffset string `json:"streamNextOffset"`
	StreamCursor     string `json:"streamCursor,omitempty"`
	UpToDate         bool   `json:"upToDate,omitempty"`
	StreamClosed     bool   `json:"streamClosed,omitempty"`
}

// sse streams data and control events from pos, then follows the stream
// live until it closes, is deleted, the client leaves, or SSEMaxDuration
// passes (so CDNs can collapse reconnecting clients).
//
// A compressed SSE response is flushed through the compressor after every
// event, so compression never holds an event back.
func (a *API) sse(c echo.Context, h *sequencer.Handle, pos int64, clientCursor string, cr cache.Request, enc contentenc.Encoding) error {
	ctx := c.Request().Context()
	snap := h.Snapshot()
	text := isText(snap)
	w := c.Response()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	cr.Kind = cache.EventStream
	cache.Decide(cr).Apply(hd)
	hd.Set("X-Accel-Buffering", "no")
	if !text {
		hd.Set(protocol.HeaderSSEDataEncoding, "base64")
	}
	if enc != contentenc.Identity {
		defer compress(c, enc)()
	}
	w.WriteHeader(http.StatusOK)
	deadline := time.NewTimer(a.opt.SSEMaxDuration)
	defer deadline.Stop()
	cursor := a.cursor(clientCursor)
	var buf bytes.Buffer
	announced := false
	for {
		snap = h.Snapshot()
		if snap.Deleted {
			return nil
		}
		if pos < snap.Tail {
			chunk, err := a.readChunk(ctx, snap, pos)
			if err != nil {
				a.lg.Warn("sse read", "err", err)
				return nil
			}
			buf.Reset()
			writeDataEvent(&buf, snap, chunk.Messages, text)
			pos = chunk.End
			up := pos == snap.Tail
			writeControl(&buf, chunk.EndToken.String(), cursor, up, up && snap.Closed)
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil
			}
			w.Flush()
			announced = up
			if up && snap.Closed {
				return nil
			}
			continue
		}
		if !announced || snap.Closed {
			buf.Reset()
			writeControl(&buf, snap.TailToken(ctx).String(), cursor, true, snap.Closed)
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil
			}
			w.Flush()
			announced = true
			if snap.Closed {
				return nil
			}
		}
		if a.waitChange(ctx, snap, deadline.C) != nil {
			return nil
		}
	}
}

func isText(snap *sequencer.Snapshot) bool {
	ct, err := protocol.ParseContentType(snap.ContentType)
	return err == nil && ct.IsText()
}

// writeDataEvent renders one SSE data event. Text is split on every line
// terminator so payload bytes can never end the event early; binary data
// is base64 on one line; JSON messages (compact, so newline-free) form an
// array.
func writeDataEvent(buf *bytes.Buffer, snap *sequencer.Snapshot, msgs []sequencer.Message, text bool) {
	buf.WriteString("event: data\n")
	switch {
	case isJSON(snap):
		buf.WriteString("data:")
		buf.Write(jsonArray(msgs))
		buf.WriteByte('\n')
	case text:
		data := encodeBody(snap, msgs)
		start := 0
		for i := 0; i < len(data); i++ {
			if data[i] == '\n' || data[i] == '\r' {
				writeTextLine(buf, data[start:i])
				if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
					i++
				}
				start = i + 1
			}
		}
		writeTextLine(buf, data[start:])
	default:
		data := encodeBody(snap, msgs)
		buf.WriteString("data:")
		enc := base64.StdEncoding
		out := make([]byte, enc.EncodedLen(len(data)))
		enc.Encode(out, data)
		buf.Write(out)
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}

// writeTextLine writes one "data:" line of text: the prefix and the line,
// with no separator, as the protocol and the reference servers write it.
// An SSE parser drops one space after the colon, so a line that starts
// with a space reaches it one space shorter, exactly as from the
// reference; catch-up and long-poll reads return the bytes as appended
// (docs/protocol-choices.md).
func writeTextLine(buf *bytes.Buffer, line []byte) {
	buf.WriteString("data:")
	buf.Write(line)
	buf.WriteByte('\n')
}

func writeControl(buf *bytes.Buffer, next, cursor string, upToDate, closed bool) {
	ev := controlEvent{StreamNextOffset: next, UpToDate: upToDate, StreamClosed: closed}
	if !closed {
		ev.StreamCursor = cursor
	}
	b, _ := json.Marshal(ev)
	buf.WriteString("event: control\ndata:")
	buf.Write(b)
	buf.WriteString("\n\n")
}
