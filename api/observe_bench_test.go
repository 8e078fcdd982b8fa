package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/internal/requestid"
	"github.com/streamtier/durable-streams/metrics"
)

// BenchmarkObserve measures what the observe middleware adds to a request:
// run with -bench Observe and compare the sub-benchmarks.
func BenchmarkObserve(b *testing.B) {
	lg := slog.New(requestid.NewHandler(slog.NewJSONHandler(io.Discard, nil)))
	for _, bc := range []struct {
		name    string
		observe bool
		lg      *slog.Logger
	}{
		{"bare", false, lg},
		{"observed", true, lg},
		{"observed-no-log", true, slog.New(slog.DiscardHandler)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := &API{lg: bc.lg, metrics: metrics.New()}
			e := echo.New()
			e.HTTPErrorHandler = a.echoError
			if bc.observe {
				e.Use(a.observe)
			}
			e.GET("/v1/stream/*", func(c echo.Context) error { return c.Blob(http.StatusOK, "text/plain", []byte("hello")) })
			req := httptest.NewRequest(http.MethodGet, "/v1/stream/a/b?offset=-1", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				e.ServeHTTP(w, req)
			}
		})
	}
}
