package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/internal/contentenc"
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
//
// Bytes of cached cold segments go from the file to the socket without
// passing through memory (sendfile), unless the response is compressed.
func (a *API) catchUp(c echo.Context, h *sequencer.Handle, snap *sequencer.Snapshot, pos int64, cr cache.Request, enc contentenc.Encoding) error {
	ctx := c.Request().Context()
	if a.opt.ReadResponseMax > 0 {
		chunk, err := a.readChunkMax(ctx, snap, pos, a.opt.ReadResponseMax)
		if err != nil {
			return err
		}
		return a.writeChunk(c, h.Info, snap, &chunk, cr, "", enc)
	}
	read := a.readChunk
	if !a.opt.DisableZeroCopy && enc == contentenc.Identity {
		read = a.readChunkFile
	}
	// The first read also validates the offset (JSON message boundary), so
	// that a bad offset is still a 400 rather than a broken 200.
	first, err := read(ctx, snap, pos)
	if err != nil {
		return err
	}
	if first.End == snap.Tail && first.Path == "" {
		return a.writeChunk(c, h.Info, snap, &first, cr, "", enc)
	}
	return a.streamToTail(c, h, snap, &first, cr, read, enc)
}

// chunkReader reads the chunk of a snapshot at a position.
type chunkReader func(ctx context.Context, snap *sequencer.Snapshot, pos int64) (sequencer.Chunk, error)

// streamToTail writes the response of a catch-up read whose first chunk
// does not reach snap.Tail: the headers describe [first.From, snap.Tail),
// which is what the body carries.
func (a *API) streamToTail(c echo.Context, h *sequencer.Handle, snap *sequencer.Snapshot, first *sequencer.Chunk, cr cache.Request, read chunkReader, enc contentenc.Encoding) error {
	ctx := c.Request().Context()
	asJSON := isJSON(snap)
	// The response runs into the open segment (the tail is there), so it
	// is hot data unless it is final.
	enc, notModified := setReadHeaders(c, h.Info, snap, readSpan{from: first.From, end: snap.TailToken(ctx), bytes: snap.Tail - first.From,
		upToDate: true, closed: snap.Closed}, cr, "", enc)
	if notModified {
		return c.NoContent(http.StatusNotModified)
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, snap.ContentType)
	if !asJSON {
		// Raw bytes: the body is exactly [From, Tail). A JSON body's length
		// depends on how many messages it holds, so it is sent chunked.
		hd.Set(echo.HeaderContentLength, strconv.FormatInt(snap.Tail-first.From, 10))
	}

	next, stop := a.prefetch(ctx, snap, first.End, read)
	defer stop()
	if enc != contentenc.Identity {
		done := compress(c, enc)
		defer func() {
			if err := done(); err != nil {
				a.lg.DebugContext(ctx, "end compressed catch-up", "err", err)
			}
		}()
	}
	w := c.Response()
	w.WriteHeader(http.StatusOK)
	bw := bodyBufs.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		bodyBufs.Put(bw)
	}()
	body := streamBody{bw: bw, json: asJSON, res: w}
	defer body.close()
	body.begin()
	chunk := first
	for {
		if chunk.Path != "" {
			if err := a.writeFileChunk(ctx, snap, &body, chunk); err != nil {
				// The client left, or the file could not be read: a short
				// body makes net/http close the connection.
				a.lg.DebugContext(ctx, "catch-up from a segment file ended", "err", err)
				return nil
			}
		} else if err := body.messages(chunk.Messages); err != nil {
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

// writeFileChunk writes a chunk that names a segment file. A file evicted
// from the cache since the chunk was read is read again through memory.
func (a *API) writeFileChunk(ctx context.Context, snap *sequencer.Snapshot, body *streamBody, ch *sequencer.Chunk) error {
	n, err := body.file(ch)
	a.zeroCopied.Add(n)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for pos := ch.From; pos < ch.End; {
		again, err := a.reg.ReadChunk(ctx, snap, pos, a.opt.MaxReadChunk)
		if err != nil {
			return err
		}
		for _, m := range again.Messages {
			if m.Pos >= ch.End {
				break
			}
			if err := body.messages([]sequencer.Message{{Data: m.Data[:min(int64(len(m.Data)), ch.End-m.Pos)]}}); err != nil {
				return err
			}
		}
		pos = again.End
	}
	return nil
}

// streamBody writes a body of many chunks: their bytes concatenated, or
// for JSON streams one array of all their messages.
type streamBody struct {
	bw   *bufio.Writer
	json bool
	n    int // messages written
	res  *echo.Response
	// f is the segment file open for chunks that name one, kept open
	// across the chunks of one segment.
	f *os.File
}

// file writes the ranges of a chunk that names a file straight from the
// file to the connection: io.Copy from an *os.File (limited) to
// net/http's ResponseWriter is its ReadFrom, which hands a body with a
// known length to the TCP connection's ReadFrom, which is sendfile(2).
// It returns how many bytes it sent; an error wrapping fs.ErrNotExist
// means none were sent because the file is gone.
func (b *streamBody) file(ch *sequencer.Chunk) (int64, error) {
	if err := b.bw.Flush(); err != nil {
		return 0, err
	}
	if b.f == nil || b.f.Name() != ch.Path {
		b.close()
		f, err := os.Open(ch.Path)
		if err != nil {
			return 0, err
		}
		b.f = f
	}
	var sent int64
	for _, rg := range ch.Ranges {
		if _, err := b.f.Seek(rg.Off, io.SeekStart); err != nil {
			return sent, err
		}
		n, err := io.Copy(b.res.Writer, io.LimitReader(b.f, rg.Len))
		sent += n
		b.res.Size += n
		if err == nil && n < rg.Len {
			err = fmt.Errorf("segment file %s ends %d bytes early", ch.Path, rg.Len-n)
		}
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func (b *streamBody) close() {
	if b.f != nil {
		b.f.Close()
		b.f = nil
	}
}

func (b *streamBody) begin() {
	if b.json {
		b.bw.WriteByte('[')
	}
}

// messages writes msgs; bufio.Writer passes large ones straight through.
func (b *streamBody) messages(msgs []sequencer.Message) error {
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
func (a *API) prefetch(ctx context.Context, snap *sequencer.Snapshot, pos int64, read chunkReader) (<-chan fetchedChunk, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan fetchedChunk, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for pos < snap.Tail {
			ch, err := read(ctx, snap, pos)
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
