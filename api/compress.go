package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/internal/contentenc"
)

// encodingFor returns the content coding a read response to r on a stream
// of content type ct may use, and whether that coding is negotiated at
// all (compression on, content type compressible), which makes the
// response vary with Accept-Encoding whatever this request gets.
func (a *API) encodingFor(r *http.Request, ct string) (contentenc.Encoding, bool) {
	if a.opt.DisableCompression || !contentenc.Compressible(ct) {
		return contentenc.Identity, false
	}
	return contentenc.Negotiate(r.Header.Get("Accept-Encoding")), true
}

// sizedEncoding is e for a body of n bytes (n < 0: unknown, assumed large),
// or identity for one too small to be worth compressing.
func sizedEncoding(e contentenc.Encoding, n int64) contentenc.Encoding {
	if n >= 0 && n < contentenc.MinSize {
		return contentenc.Identity
	}
	return e
}

// compress makes the body written to c's response from now on go out
// compressed with e (not identity): the response gets Content-Encoding and
// loses any Content-Length when its header is written. The returned
// function ends the compressed stream and must be called after the body,
// before the handler returns.
func compress(c echo.Context, e contentenc.Encoding) func() error {
	res := c.Response()
	cw := &compressWriter{ResponseWriter: res.Writer, enc: e}
	res.Writer = cw
	return func() error {
		res.Writer = cw.ResponseWriter
		return cw.close()
	}
}

// compressWriter is an http.ResponseWriter that compresses the body into
// the one it wraps.
type compressWriter struct {
	http.ResponseWriter
	enc contentenc.Encoding
	zw  contentenc.Writer // from WriteHeader on
}

func (w *compressWriter) WriteHeader(code int) {
	if w.zw == nil {
		h := w.Header()
		h.Del("Content-Length")
		h.Set("Content-Encoding", string(w.enc))
		w.zw = contentenc.NewWriter(w.enc, w.ResponseWriter)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *compressWriter) Write(p []byte) (int, error) {
	if w.zw == nil {
		w.WriteHeader(http.StatusOK)
	}
	return w.zw.Write(p)
}

// FlushError pushes everything written so far to the client, so that a
// flushed SSE event is not held back in the compressor.
func (w *compressWriter) FlushError() error {
	if w.zw != nil {
		if err := w.zw.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *compressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *compressWriter) close() error {
	if w.zw == nil {
		return nil
	}
	err := w.zw.Close()
	w.zw = nil
	return err
}
