// Package requestid carries a request's id through its context and into
// every log line written for it.
//
// The HTTP layer takes the id from the X-Request-Id header when the client
// sent a sane one (see Valid) and generates one otherwise; NewHandler wraps
// a slog.Handler so that records logged with that context carry the id as
// the request_id attribute.
package requestid

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
)

// Header is the HTTP header that carries request ids in both directions.
const Header = "X-Request-Id"

// MaxLen bounds an accepted client id: long enough for UUIDs and common
// trace ids, short enough that ids cannot flood the logs.
const MaxLen = 128

// Attr is the name of the log attribute holding the id.
const Attr = "request_id"

type ctxKey struct{}

// NewContext returns a context carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the id carried by ctx, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Valid reports whether a client-supplied id may be used as it is: 1 to
// MaxLen characters of letters, digits and - _ . : / + = (enough for UUIDs,
// ULIDs and trace ids), so that it can never inject anything into logs or
// headers.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=':
		default:
			return false
		}
	}
	return true
}

// New returns a fresh random id of 32 hex digits. Ids only need to be
// unique, not secret, so the runtime's fast generator is enough.
func New() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// Logger returns lg with the id of ctx attached, for code that logs many
// lines for one request; without an id it returns lg.
func Logger(ctx context.Context, lg *slog.Logger) *slog.Logger {
	if id := FromContext(ctx); id != "" {
		return lg.With(Attr, id)
	}
	return lg
}

// handler adds the context's request id to every record.
type handler struct{ next slog.Handler }

// NewHandler wraps next so that every record logged with a context carrying
// a request id (the *Context methods of slog.Logger) gets the request_id
// attribute. Wrapping an already wrapped handler returns it unchanged.
func NewHandler(next slog.Handler) slog.Handler {
	if _, ok := next.(handler); ok {
		return next
	}
	return handler{next}
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := FromContext(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String(Attr, id))
	}
	return h.next.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.next.WithAttrs(as)} }

func (h handler) WithGroup(name string) slog.Handler { return handler{h.next.WithGroup(name)} }
