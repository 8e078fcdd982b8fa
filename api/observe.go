package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
)

// Operational routes.
const (
	HealthRoute  = "/healthz" // the process is alive
	ReadyRoute   = "/readyz"  // the server can serve traffic
	MetricsRoute = "/metrics" // Prometheus metrics
)

// RequestLogger returns lg with the request id of ctx attached (see
// package requestid), for code that logs several lines per request.
// Loggers of this package already add it to lines logged with a context.
func RequestLogger(ctx context.Context, lg *slog.Logger) *slog.Logger {
	return requestid.Logger(ctx, lg)
}

// checkRequestID refuses a request whose X-Request-Id is longer than
// requestid.MaxLen with 400, like every other header the server echoes
// past its limit. It runs after CORS, so that browsers can read the
// answer; observe has already given the request a generated id to log
// and echo. An id of the right length with other characters is replaced
// by observe rather than refused: it is only a diagnostic.
func checkRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(c.Request().Header.Get(requestid.Header)) > requestid.MaxLen {
			return badRequest(fmt.Sprintf("%s must be at most %d bytes", requestid.Header, requestid.MaxLen))
		}
		return next(c)
	}
}

// observe is the outermost middleware: it gives every request an id,
// answers errors (so it sees the final status), records the HTTP metrics and
// logs one line per request. Probes and scrapes are logged at Debug, so
// they don't drown the rest.
//
// The line never holds headers or the query string, where credentials
// travel.
func (a *API) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		id := r.Header.Get(requestid.Header)
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		c.Response().Header().Set(requestid.Header, id)
		ctx := requestid.NewContext(r.Context(), id)
		c.SetRequest(r.WithContext(ctx))
		live := liveMode(r)
		if a.metrics != nil {
			a.metrics.StartRequest(live)
		}
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		route := routeLabel(c.Path())
		res := c.Response()
		if a.metrics != nil {
			a.metrics.EndRequest(metrics.Request{Route: route, Method: r.Method, Code: res.Status, Live: live, Duration: d})
		}
		level := slog.LevelInfo
		switch route {
		case HealthRoute, ReadyRoute, MetricsRoute:
			level = slog.LevelDebug
		}
		if a.lg.Enabled(ctx, level) {
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.Path),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			}
			if live != metrics.LiveNone {
				attrs = append(attrs, slog.String("live", live))
			}
			a.lg.LogAttrs(ctx, level, "request", attrs...)
		}
		return nil
	}
}

// routeLabel is the label of echo's matched route: its template (such as
// "/v1/stream/*"), never the raw path, so label values stay few; echo
// reports "" when no route matched.
func routeLabel(template string) string {
	if template == "" {
		return metrics.RouteUnmatched
	}
	return template
}

// liveMode is the live mode a read asks for, or metrics.LiveNone. It only
// parses the query when the raw query mentions live at all, so that plain
// requests pay nothing for it.
func liveMode(r *http.Request) string {
	if r.Method != http.MethodGet || !strings.Contains(r.URL.RawQuery, "live=") {
		return metrics.LiveNone
	}
	switch r.URL.Query().Get("live") {
	case "long-poll":
		return metrics.LiveLongPoll
	case "sse":
		return metrics.LiveSSE
	}
	return metrics.LiveNone
}

// readyz answers with the health report as JSON: 200 when every check
// passes or only non-critical ones fail ("degraded": the server still
// accepts appends), 503 when a critical one fails.
func (a *API) readyz(c echo.Context) error {
	cache.SetNoStore(c.Response().Header())
	if a.opt.Health != nil {
		rep := a.opt.Health.Check(c.Request().Context())
		return c.JSON(rep.HTTPStatus(), rep)
	}
	if a.opt.Ready != nil {
		if err := a.opt.Ready(c.Request().Context()); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
