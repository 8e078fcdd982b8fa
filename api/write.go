package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// readBody reads the request body up to the append limit (413 beyond).
func (a *API) readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > a.opt.MaxAppendBytes {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, code: "PAYLOAD_TOO_LARGE", msg: "request body exceeds the server's append limit"}
	}
	body, err := readAll(http.MaxBytesReader(c.Response(), r.Body, a.opt.MaxAppendBytes), r.ContentLength)
	if err != nil {
		return nil, bodyReadError(err)
	}
	return body, nil
}

// contentTypeHeader parses an optional Content-Type header.
func contentTypeHeader(r *http.Request) (*protocol.ContentType, error) {
	v := r.Header.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	ct, err := protocol.ParseContentType(v)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	return &ct, nil
}

// splitBody turns a request body into the messages it stores.
func splitBody(ct protocol.ContentType, body []byte) ([][]byte, error) {
	if !ct.IsJSON() {
		if len(body) == 0 {
			return nil, nil
		}
		return [][]byte{body}, nil
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	msgs, err := protocol.SplitJSON(body)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	return msgs, nil
}

func (a *API) put(c echo.Context, name string) error {
	r := c.Request()
	ct, err := contentTypeHeader(r)
	if err != nil {
		return err
	}
	req := &sequencer.CreateRequest{Path: name, ContentType: ct}
	if err := parseExpiry(r.Header, req); err != nil {
		return err
	}
	req.Closed = protocol.ParseClosed(r.Header)
	if req.Fork, err = parseFork(r); err != nil {
		return err
	}
	body, err := a.readBody(c)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		if err := a.writable(name); err != nil {
			return err
		}
		effective := ct
		if effective == nil && req.Fork != nil {
			effective, err = a.sourceContentType(c, req.Fork.Source)
			if err != nil {
				return err
			}
		}
		if effective == nil {
			d, _ := protocol.ParseContentType(sequencer.DefaultContentType)
			effective = &d
		}
		if req.Initial, err = splitBody(*effective, body); err != nil {
			return err
		}
		if a.opt.Hooks.BeforeAppend != nil && len(req.Initial) > 0 {
			if err := a.beforeAppend(c, &hooks.AppendInfo{Path: name, ContentType: effective.Full, Data: body,
				Messages: len(req.Initial), Close: req.Closed, Create: true, Header: r.Header}); err != nil {
				return err
			}
		}
	}
	res, err := a.reg.Create(r.Context(), req)
	if err != nil {
		return err
	}
	defer res.Handle.Release()
	snap := res.Handle.Snapshot()
	if res.Created && len(req.Initial) > 0 {
		a.appended(name, tailToken(a, c, snap).String())
	}
	if a.after != nil && res.Created && len(req.Initial) > 0 {
		a.after.push(r.Context(), hooks.AppendResult{Path: name, ContentType: snap.ContentType,
			StartByte: res.Start, EndByte: snap.Tail, NextOffset: tailToken(a, c, snap).String(),
			Messages: len(req.Initial), Closed: snap.Closed, Create: true})
	}
	h := c.Response().Header()
	h.Set("Content-Type", snap.ContentType)
	h.Set(protocol.HeaderStreamNextOffset, tailToken(a, c, snap).String())
	h.Set("Cache-Control", cache.CacheControl(cache.Request{Kind: cache.NoStore}))
	if snap.Closed {
		h.Set(protocol.HeaderStreamClosed, "true")
	}
	if !res.Created {
		return c.NoContent(http.StatusOK)
	}
	h.Set("Location", externalURL(r))
	return c.NoContent(http.StatusCreated)
}

func (a *API) sourceContentType(c echo.Context, source string) (*protocol.ContentType, error) {
	h, err := a.reg.Acquire(c.Request().Context(), source, false)
	if err != nil {
		return nil, nil // the create itself reports the problem
	}
	defer h.Release()
	ct, err := protocol.ParseContentType(h.Snapshot().ContentType)
	if err != nil {
		return nil, nil
	}
	return &ct, nil
}

func parseExpiry(h http.Header, req *sequencer.CreateRequest) error {
	ttl, exp := h.Get(protocol.HeaderStreamTTL), h.Get(protocol.HeaderStreamExpiresAt)
	hasTTL, hasExp := len(h.Values(protocol.HeaderStreamTTL)) > 0, len(h.Values(protocol.HeaderStreamExpiresAt)) > 0
	if hasTTL && hasExp {
		return badRequest("Stream-TTL and Stream-Expires-At are mutually exclusive")
	}
	if hasTTL {
		d, err := protocol.ParseTTL(ttl)
		if err != nil {
			return badRequest(err.Error())
		}
		req.TTL = &d
	}
	if hasExp {
		t, err := protocol.ParseExpiresAt(exp)
		if err != nil {
			return badRequest(err.Error())
		}
		req.ExpiresAt = &t
	}
	return nil
}

// parseFork reads the fork headers of a PUT.
func parseFork(r *http.Request) (*sequencer.ForkRequest, error) {
	h := r.Header
	hasFrom := len(h.Values(protocol.HeaderForkedFrom)) > 0
	hasOff := len(h.Values(protocol.HeaderForkOffset)) > 0
	hasSub := len(h.Values(protocol.HeaderForkSubOffset)) > 0
	if !hasFrom {
		if hasOff || hasSub {
			return nil, badRequest("Stream-Fork-Offset and Stream-Fork-Sub-Offset require Stream-Forked-From")
		}
		return nil, nil
	}
	src, err := forkSource(r, h.Get(protocol.HeaderForkedFrom))
	if err != nil {
		return nil, err
	}
	f := &sequencer.ForkRequest{Source: src}
	if hasOff {
		switch v := h.Get(protocol.HeaderForkOffset); v {
		case offset.Start:
			f.Offset = &offset.Token{}
		case offset.Now:
		default:
			tok, err := offset.Parse(v)
			if err != nil {
				return nil, badRequest("Stream-Fork-Offset: " + err.Error())
			}
			f.Offset = &tok
		}
	}
	if hasSub {
		if f.SubOffset, err = protocol.ParseUint(protocol.HeaderForkSubOffset, h.Get(protocol.HeaderForkSubOffset)); err != nil {
			return nil, badRequest(err.Error())
		}
		if f.SubOffset > 0 && f.Offset == nil {
			return nil, badRequest("Stream-Fork-Sub-Offset requires Stream-Fork-Offset")
		}
	}
	return f, nil
}

// forkSource turns a Stream-Forked-From value (a stream URL, or its path
// as the client sees it, including any mount prefix) into a stream name.
func forkSource(r *http.Request, v string) (string, error) {
	p := v
	if u, err := url.Parse(v); err == nil && u.Scheme != "" {
		p = u.Path
	} else if unq, err := url.PathUnescape(v); err == nil {
		p = unq
	}
	p = strings.TrimPrefix(p, mountPrefix(r))
	name, ok := strings.CutPrefix(p, StreamsRoute)
	if !ok {
		name = strings.TrimPrefix(p, "/")
	}
	if err := protocol.ValidateStreamPath(name); err != nil {
		return "", badRequest("Stream-Forked-From: " + err.Error())
	}
	return name, nil
}

// mountPrefix is the part of the client's path that a parent router
// stripped before this handler (e.g. "/ds" under http.StripPrefix).
func mountPrefix(r *http.Request) string {
	raw, _, _ := strings.Cut(r.RequestURI, "?")
	if u, err := url.Parse(raw); err == nil && u.IsAbs() {
		raw = u.EscapedPath()
	}
	ext, err := url.PathUnescape(raw)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(ext, r.URL.Path)
}

// externalURL is the absolute URL of the request as the client sent it.
func externalURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	raw, _, _ := strings.Cut(r.RequestURI, "?")
	if u, err := url.Parse(raw); err == nil && u.IsAbs() {
		raw = u.EscapedPath() // absolute-form request target
	}
	return scheme + "://" + r.Host + raw
}

func (a *API) post(c echo.Context, name string) error {
	r := c.Request()
	if err := a.writable(name); err != nil {
		return err
	}
	closeReq := protocol.ParseClosed(r.Header)
	prod, err := protocol.ParseProducer(r.Header)
	if err != nil {
		return badRequest(err.Error())
	}
	seq, err := protocol.ParseStreamSeq(r.Header)
	if err != nil {
		return badRequest(err.Error())
	}
	ct, err := contentTypeHeader(r)
	if err != nil {
		return err
	}
	body, err := a.readBody(c)
	if err != nil {
		return err
	}
	if len(body) == 0 && !closeReq {
		return badRequest("empty append body; to close the stream send Stream-Closed: true")
	}
	if len(body) > 0 && ct == nil {
		return badRequest("Content-Type is required when appending data")
	}
	h, err := a.reg.Acquire(r.Context(), name, true)
	if err != nil {
		return err
	}
	defer h.Release()
	req := &sequencer.AppendRequest{Close: closeReq, Producer: prod, StreamSeq: seq}
	if len(body) > 0 {
		streamCT, _ := protocol.ParseContentType(h.Snapshot().ContentType)
		if !streamCT.SameMedia(*ct) {
			return &httpError{status: http.StatusConflict, code: "CONTENT_TYPE_MISMATCH",
				msg: "Content-Type " + ct.Full + " does not match the stream's " + streamCT.Full}
		}
		req.ContentType = *ct
		if req.Messages, err = splitBody(streamCT, body); err != nil {
			return err
		}
		if len(req.Messages) == 0 {
			return badRequest("empty JSON array: nothing to append")
		}
	}
	if a.opt.Hooks.BeforeAppend != nil {
		info := &hooks.AppendInfo{Path: name, Data: body, Messages: len(req.Messages), Close: closeReq,
			Producer: producerInfo(prod), Header: r.Header}
		if ct != nil && len(body) > 0 {
			info.ContentType = ct.Full
		}
		if err := a.beforeAppend(c, info); err != nil {
			return err
		}
	}
	res, err := h.Append(r.Context(), req)
	if err != nil {
		return err
	}
	if res.Outcome == sequencer.Appended && len(req.Messages) > 0 {
		a.appended(name, res.Tail.String())
	}
	if a.after != nil && res.Outcome == sequencer.Appended && len(req.Messages) > 0 {
		a.after.push(r.Context(), hooks.AppendResult{Path: name, ContentType: h.Snapshot().ContentType,
			StartByte: res.Start, EndByte: res.Tail.Position, NextOffset: res.Tail.String(),
			Messages: len(req.Messages), Closed: res.Closed, Producer: producerInfo(prod)})
	}
	hd := c.Response().Header()
	hd.Set(protocol.HeaderStreamNextOffset, res.Tail.String())
	cache.SetNoStore(hd)
	if res.Closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	if prod != nil {
		hd.Set(protocol.HeaderProducerEpoch, itoa(res.Epoch))
		hd.Set(protocol.HeaderProducerSeq, itoa(res.Seq))
	}
	if prod != nil && res.Outcome == sequencer.Appended && len(req.Messages) > 0 {
		return c.NoContent(http.StatusOK)
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) head(c echo.Context, name string) error {
	h, err := a.reg.Acquire(c.Request().Context(), name, false)
	if err != nil {
		return err
	}
	defer h.Release()
	snap := h.Snapshot()
	hd := c.Response().Header()
	hd.Set("Content-Type", snap.ContentType)
	hd.Set(protocol.HeaderStreamNextOffset, tailToken(a, c, snap).String())
	hd.Set("Cache-Control", cache.CacheControl(cache.Request{Kind: cache.NoStore}))
	setExpiryHeaders(hd, h)
	if snap.Closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	return c.NoContent(http.StatusOK)
}

func setExpiryHeaders(hd http.Header, h *sequencer.Handle) {
	if h.Info.TTL > 0 {
		hd.Set(protocol.HeaderStreamTTL, itoa(int64(h.Info.TTL/time.Second)))
	}
	if !h.Info.ExpiresAt.IsZero() {
		hd.Set(protocol.HeaderStreamExpiresAt, h.Info.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
}

func (a *API) delete(c echo.Context, name string) error {
	if err := a.writable(name); err != nil {
		return err
	}
	if err := a.reg.Delete(c.Request().Context(), name); err != nil {
		return err
	}
	cache.SetNoStore(c.Response().Header())
	return c.NoContent(http.StatusNoContent)
}

// writable refuses writes and deletes of the server's own read-only
// stream (Options.ReadOnlyStream), so that its history cannot be forged or
// wiped by clients.
func (a *API) writable(name string) error {
	if a.opt.ReadOnlyStream != "" && name == a.opt.ReadOnlyStream {
		return &httpError{status: http.StatusForbidden, code: "READ_ONLY_STREAM", msg: "this stream is written by the server only"}
	}
	return nil
}

func tailToken(a *API, c echo.Context, snap *sequencer.Snapshot) offset.Token {
	return snap.TailToken(c.Request().Context())
}
