package api

import (
	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/faults"
)

// faultMiddleware applies injected faults to the requests they match.
func faultMiddleware(in *faults.Injector) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			res := c.Response()
			answered, body := in.Apply(res, c.Request())
			if answered {
				return nil
			}
			if body != nil {
				// A body fault alters the bytes the client decodes (a
				// malformed SSE event, a cut JSON array), as on the
				// reference server, which never compresses: altered
				// compressed bytes would only show as a broken coding.
				c.Request().Header.Del("Accept-Encoding")
			}
			// Below echo's Response, so that its status and size
			// bookkeeping stays in front of the altered body.
			res.Writer = body.Wrap(res.Writer)
			return next(c)
		}
	}
}

// faultControl serves faults.ControlPath.
func faultControl(in *faults.Injector) echo.HandlerFunc {
	return func(c echo.Context) error {
		in.ServeControl(c.Response(), c.Request())
		return nil
	}
}
