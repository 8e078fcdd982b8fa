package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// catchUp answers a catch-up read (no live mode) from pos.
//
// By default the response carries everything from pos to the tail as of
// the request, however long: a reader that makes one request (the
// upstream TypeScript client's live:false) gets the whole stream. Memory
// stays bounded by the read chunk, not by the response: the body is
// written chunk by chunk, and the next chunk is read from storage while
// the previous one is being written.
//
// With Options.ReadResponseMax set, a response is one storage read of at
// most that many bytes that never crosses a segment boundary, so a
// response that starts in a sealed segment is the same immutable,
// segment-aligned chunk for every reader (what a CDN keeps for a year);
// readers follow Stream-Next-Offset for the rest. docs/caching.md
// discusses the choice.
func (a *API) catchUp(c echo.Context, h *sequencer.Handle, snap *sequencer.Snapshot, pos int64, cr cache.Request) error {
	ctx := c.Request().Context()
	if a.opt.ReadResponseMax > 0 {
		chunk, err := a.readChunkMax(ctx, snap, pos, a.opt.ReadResponseMax)
		if err != nil {
			return err
		}
		return a.writeChunk(c, h, snap, &chunk, cr, "")
	}
	// The first read also validates the offset (JSON message boundary), so
	// that a bad offset is still a 400 rather than a broken 200.
	first, err := a.readChunk(ctx, snap, pos)
	if err != nil {
		return err
	}
	if first.End == snap.Tail {
		return a.writeChunk(c, h, snap, &first, cr, "")
	}
	return a.streamToTail(c, h, snap, &first, cr)
}

// streamToTail writes the response of a catch-up read whose first chunk
// does not reach snap.Tail: the headers describe [first.From, snap.Tail),
// which is what the body carries.
func (a *API) streamToTail(c echo.Context, h *sequencer.Handle, snap *sequencer.Snapshot, first *sequencer.Chunk, cr cache.Request) error {
	ctx := c.Request().Context()
	end := a.reg.TailToken(ctx, snap)
	asJSON := isJSON(snap)
	hd := c.Response().Header()
	closed := snap.Closed
	etag := cache.ETag(snap.ID, a.reg.TokenFor(ctx, snap, first.From).String(), end.String(), closed)
	hd.Set(protocol.HeaderStreamNextOffset, end.String())
	hd.Set(protocol.HeaderStreamUpToDate, "true")
	if closed {
		hd.Set(protocol.HeaderStreamClosed, "true")
	}
	// The response runs into the open segment (the tail is there), so it
	// is hot data unless it is final.
	cr.Remaining = remaining(h)
	cr.Sealed, cr.UpToDate, cr.Closed, cr.Empty = false, true, closed, false
	cache.Decide(cr).Apply(hd)
	hd.Set("ETag", etag)
	if cache.Matches(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	hd.Set(echo.HeaderContentType, snap.ContentType)
	if !asJSON {
		// Raw bytes: the body is exactly [From, Tail). A JSON body's length
		// depends on how many messages it holds, so it is sent chunked.
		hd.Set(echo.HeaderContentLength, strconv.FormatInt(snap.Tail-first.From, 10))
	}

	next, stop := a.prefetch(ctx, snap, first.End)
	defer stop()
	w := c.Response()
	w.WriteHeader(http.StatusOK)
	bw := bodyBufs.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		bodyBufs.Put(bw)
	}()
	body := streamBody{bw: bw, json: asJSON}
	body.begin()
	chunk := first
	for {
		if err := body.messages(chunk.Messages); err != nil {
			return nil // the client left; nothing more to say to it
		}
		if chunk.End == snap.Tail {
			break
		}
		f, ok := <-next
		if !ok || f.err != nil {
			// The headers promised the bytes up to the tail: break the
			// connection rather than end a response that looks complete.
			err := errors.New("read stopped early")
			if ok {
				err = f.err
			}
			a.lg.WarnContext(ctx, "catch-up read failed after the headers were sent", "err", err)
			panic(http.ErrAbortHandler)
		}
		chunk = &f.chunk
	}
	body.end()
	return bw.Flush()
}

// streamBody writes a body of many chunks: their bytes concatenated, or
// for JSON streams one array of all their messages.
type streamBody struct {
	bw   *bufio.Writer
	json bool
	n    int // messages written
}

func (b *streamBody) begin() {
	if b.json {
		b.bw.WriteByte('[')
	}
}

// messages writes msgs; bufio.Writer passes large ones straight through.
func (b *streamBody) messages(msgs []hotlog.Message) error {
	for _, m := range msgs {
		if b.json && b.n > 0 {
			b.bw.WriteByte(',')
		}
		if _, err := b.bw.Write(m.Data); err != nil {
			return err
		}
		b.n++
	}
	return nil
}

func (b *streamBody) end() {
	if b.json {
		b.bw.WriteByte(']')
	}
}

// fetchedChunk is the result of one storage read of prefetch.
type fetchedChunk struct {
	chunk sequencer.Chunk
	err   error
}

// prefetch reads the chunks of snap from pos to its tail, one ahead of the
// writer: it sends each on the returned channel, which holds one, and
// stops after an error or at the tail. stop ends the reads and waits for
// them, so the caller may release the stream afterwards.
func (a *API) prefetch(ctx context.Context, snap *sequencer.Snapshot, pos int64) (<-chan fetchedChunk, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan fetchedChunk, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for pos < snap.Tail {
			ch, err := a.readChunk(ctx, snap, pos)
			select {
			case out <- fetchedChunk{chunk: ch, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			pos = ch.End
		}
	}()
	return out, func() {
		cancel()
		<-done
	}
}
