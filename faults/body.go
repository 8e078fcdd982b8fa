package faults

import (
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/streamtier/durable-streams/cache"
)

// BodyFault is the part of a triggered fault that alters the response of a
// request served normally: see [Fault.TruncateBody], [Fault.CorruptBody]
// and [Fault.SSEEvent]. Only successful responses with a body are altered;
// errors pass through untouched.
type BodyFault struct {
	truncate *int64
	corrupt  bool
	event    *SSEEvent
}

// Wrap returns a writer that applies b to what is written through it to w.
// Wrap of a nil BodyFault returns w.
func (b *BodyFault) Wrap(w http.ResponseWriter) http.ResponseWriter {
	if b == nil {
		return w
	}
	return &bodyWriter{ResponseWriter: w, fault: b}
}

// bodyWriter applies a BodyFault. It decides at WriteHeader, from the status
// and Content-Type, which of the fault's effects apply.
type bodyWriter struct {
	http.ResponseWriter
	fault       *BodyFault
	wroteHeader bool
	// alter is set for a successful non-SSE response that is cut or
	// corrupted; written counts the body bytes the handler wrote so far.
	alter   bool
	written int64
}

func (w *bodyWriter) WriteHeader(code int) {
	if w.wroteHeader {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wroteHeader = true
	h := w.Header()
	ok := code >= 200 && code < 300 && code != http.StatusNoContent
	sse := strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
	w.alter = ok && !sse && (w.fault.truncate != nil || w.fault.corrupt)
	if w.alter {
		// The altered body must not be cached, and a cut one must end
		// cleanly rather than short of its declared length.
		cache.SetNoStore(h)
		if w.fault.truncate != nil {
			h.Del("Content-Length")
		}
	}
	event := ok && sse && w.fault.event != nil
	if event {
		h.Del("Content-Length") // the event comes on top of the body
	}
	w.ResponseWriter.WriteHeader(code)
	if event {
		w.ResponseWriter.Write(formatEvent(w.fault.event))
	}
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.alter {
		return w.ResponseWriter.Write(p)
	}
	out := p
	if t := w.fault.truncate; t != nil {
		keep := max(*t-w.written, 0)
		out = out[:min(int64(len(out)), keep)]
	}
	if w.fault.corrupt && len(out) > 0 {
		out = corrupt(out, w.written)
	}
	w.written += int64(len(p))
	if len(out) > 0 {
		if _, err := w.ResponseWriter.Write(out); err != nil {
			return 0, err
		}
	}
	// The handler wrote everything as far as it can tell: the cut part is
	// dropped on purpose.
	return len(p), nil
}

// Flush passes a flush on, so live responses stay live under a fault.
func (w *bodyWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// corrupt returns a corrupted copy of p, which starts at body offset off:
// the body's first two bytes become 'X' and 'Y', and about one in ten of
// the others 'Z'.
func corrupt(p []byte, off int64) []byte {
	q := make([]byte, len(p))
	copy(q, p)
	for i := range q {
		switch pos := off + int64(i); {
		case pos == 0:
			q[i] = 'X'
		case pos == 1:
			q[i] = 'Y'
		case rand.IntN(10) == 0:
			q[i] = 'Z'
		}
	}
	return q
}

// formatEvent renders e as a server-sent event, one data field per line of
// its data.
func formatEvent(e *SSEEvent) []byte {
	var b strings.Builder
	b.WriteString("event: " + e.Type + "\n")
	for _, line := range strings.Split(strings.ReplaceAll(e.Data, "\r\n", "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return []byte(b.String())
}
