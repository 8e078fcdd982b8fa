package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/sequencer"
)

// DrainReport is one line of the answer to POST /v1/admin/node/drain: the
// answer is newline-delimited JSON, a line after every stream handed off
// (or not), then a last line with Done set.
type DrainReport struct {
	Total     int            `json:"total"`
	HandedOff int            `json:"handed_off"`
	Failed    int            `json:"failed"`
	Failures  []DrainFailure `json:"failures,omitempty"`
	Done      bool           `json:"done,omitempty"`
	// Error, on the last line, says why the drain did not finish.
	Error string `json:"error,omitempty"`
}

// DrainFailure is a stream the drain could not hand off.
type DrainFailure struct {
	StreamID int64  `json:"stream_id"`
	Error    string `json:"error"`
}

// Drain defaults: handoffs at once, and how long the whole drain may take.
// A handoff mostly waits (for its uploads, which the uploader's own pool
// bounds, and for a journal checkpoint, which the handoffs waiting at the
// same time share), so many run at once: with 8, a drain of 70 streams
// under load was a series of checkpoints of 8 streams each.
const (
	DefaultDrainConcurrency = 64
	maxDrainConcurrency     = 256
	DefaultDrainTimeout     = 10 * time.Minute
)

func drainReport(p sequencer.DrainProgress) DrainReport {
	r := DrainReport{Total: p.Total, HandedOff: p.HandedOff, Failed: p.Failed}
	for _, f := range p.Failures {
		r.Failures = append(r.Failures, DrainFailure{StreamID: f.ID, Error: f.Err.Error()})
	}
	return r
}

// adminDrain hands off every stream of this node (sequencer.Registry.Drain)
// and reports its progress as it goes. The drain does not stop when the
// client leaves: a half-done drain would leave the node refusing new
// streams for nothing; ?timeout= bounds it instead.
func (a *API) adminDrain(c echo.Context) error {
	conc := DefaultDrainConcurrency
	if s := c.QueryParam("concurrency"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDrainConcurrency {
			return badRequest("concurrency must be an integer from 1 to " + strconv.Itoa(maxDrainConcurrency))
		}
		conc = n
	}
	timeout := DefaultDrainTimeout
	if s := c.QueryParam("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return badRequest("timeout must be a positive duration such as 90s or 10m")
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), timeout)
	defer cancel()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	write := func(r DrainReport) {
		// A client gone does not stop the drain; its lines are dropped.
		if enc.Encode(r) == nil {
			w.Flush()
		}
	}
	p, err := a.reg.Drain(ctx, conc, func(p sequencer.DrainProgress) { write(drainReport(p)) })
	last := drainReport(p)
	last.Done = true
	if err != nil {
		last.Error = err.Error()
		a.lg.Warn("drain did not finish", "err", err)
	} else {
		a.lg.Info("drained", "streams", p.Total)
	}
	write(last)
	return nil
}
