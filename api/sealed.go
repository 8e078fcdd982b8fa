package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// maxLocalSealedReads bounds the catch-up reads of other nodes' streams
// this node answers from the cold tier at once; each holds at most one
// response (ReadResponseMax bytes). Reads past it are forwarded, as they
// were before this node could answer them, so the bound never refuses a
// read.
const maxLocalSealedReads = 64

// serveSealed answers, without the owner, a catch-up read of a stream
// another node owns when its answer lies in sealed data: with bounded
// responses (ReadResponseMax), a GET without a live mode whose offset
// falls in an uploaded segment that is not the stream's last indexed one.
// The registry decides from the catalog and reads the cold tier
// (sequencer.Registry.ReadSealed); the response is written by the code
// that writes the owner's, from the same inputs, so it is the same bytes
// and headers. served is false, with nothing written, for every read it
// cannot answer with certainty; the caller forwards those.
func (a *API) serveSealed(c echo.Context, name string) (served bool, err error) {
	r := c.Request()
	if a.opt.ReadResponseMax <= 0 || r.Method != http.MethodGet {
		return false, nil // unbounded catch-ups run to the tail: hot data
	}
	q := r.URL.Query()
	off, err := protocol.ParseReadOffset(q)
	if err != nil || off.Kind == protocol.OffsetNow {
		return false, nil
	}
	if live, err := protocol.ParseLive(q); err != nil || live != protocol.LiveNone {
		return false, nil
	}
	from := offset.Zero
	if off.Kind == protocol.OffsetToken {
		from = off.Token
	}
	cr, err := a.cacheRequest(r, name)
	if err != nil {
		return false, nil
	}
	select {
	case a.sealedSlots <- struct{}{}:
		defer func() { <-a.sealedSlots }()
	default:
		return false, nil
	}
	ctx := r.Context()
	sr, err := a.reg.ReadSealed(ctx, name, from, a.opt.ReadResponseMax)
	if err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err() // the client left
		}
		a.lg.DebugContext(ctx, "catch-up read not answered locally; forwarding", "path", name, "err", err)
		return false, nil
	}
	if a.metrics != nil {
		a.metrics.SealedReadLocal()
	}
	enc, negotiated := a.encodingFor(r, sr.Snap.ContentType)
	cr.Negotiated = negotiated
	cr.Kind = cache.CatchUp
	return true, a.writeChunk(c, sr.Info, sr.Snap, &sr.Chunk, cr, "", enc)
}
