package api

import (
	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/faults"
)

// faultMiddleware answers requests that match an injected fault.
func faultMiddleware(in *faults.Injector) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if in.Apply(c.Response(), c.Request()) {
				return nil
			}
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
