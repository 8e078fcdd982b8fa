package api

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"

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

// readAll is io.ReadAll for a body whose length the client announced (size,
// -1 if unknown): it reads into one buffer of that size instead of growing
// one from 512 bytes, which for a 1 MiB append allocates, clears and copies
// twice the body in a dozen steps. The announced size is only a hint, read
// through whatever limit r enforces, so a lying client gets no more than
// that limit.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 || size > maxSizedRead {
		return io.ReadAll(r)
	}
	// bytes.Buffer.ReadFrom grows the buffer unless MinRead bytes are
	// free, even when the next read would only return EOF.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// maxSizedRead bounds the buffer readAll allocates up front on the
// client's word.
const maxSizedRead = 64 << 20
