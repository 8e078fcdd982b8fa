package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/admin"
	"github.com/streamtier/durable-streams/cache"
)

// AdminRoute is the path prefix of the administration API:
//
//	GET  /v1/admin/cluster   nodes, liveness, leases and streams per node;
//	                         ?node= &after= &limit=: one node's leases
//	GET  /v1/admin/segments  ?stream= &prefix= &state= &after= &limit=
//	GET  /v1/admin/stats     ?stream= (without: totals of all streams)
//	POST /v1/admin/verify
//	POST /v1/admin/gc        ?dry_run=false (default true)
//	POST /v1/admin/node/drain ?concurrency= &timeout= (see drain.go)
//
// Every answer is JSON. With access control on, requests need a token
// with the admin scope on all streams (see auth.go).
const AdminRoute = "/v1/admin/"

type adminRoute struct {
	method  string
	handler func(*API, echo.Context) error
}

var adminRoutes = map[string]adminRoute{
	"cluster":    {http.MethodGet, (*API).adminCluster},
	"segments":   {http.MethodGet, (*API).adminSegments},
	"stats":      {http.MethodGet, (*API).adminStats},
	"verify":     {http.MethodPost, (*API).adminVerify},
	"gc":         {http.MethodPost, (*API).adminGC},
	"node/drain": {http.MethodPost, (*API).adminDrain},
}

// admin serves everything under AdminRoute. The guard middleware has
// checked the token already, so that without it nothing, not even which
// routes exist, is revealed.
func (a *API) admin(c echo.Context) error {
	cache.SetNoStore(c.Response().Header())
	rt, ok := adminRoutes[strings.TrimPrefix(c.Request().URL.Path, AdminRoute)]
	if !ok {
		return &httpError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "no such admin endpoint"}
	}
	if c.Request().Method != rt.method {
		c.Response().Header().Set("Allow", rt.method+", OPTIONS")
		return &httpError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", msg: "use " + rt.method}
	}
	return rt.handler(a, c)
}

// pageLimit parses the limit parameter of a listing; 0 when absent.
func pageLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequest("limit must be a positive integer")
	}
	return n, nil
}

func (a *API) adminSegments(c echo.Context) error {
	q := c.Request().URL.Query()
	f := admin.Filter{StreamPath: q.Get("stream"), Prefix: q.Get("prefix"), State: q.Get("state"), After: q.Get("after")}
	var err error
	if f.Limit, err = pageLimit(q); err != nil {
		return err
	}
	page, err := a.opt.Admin.ListSegments(c.Request().Context(), f)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, page)
}

func (a *API) adminStats(c echo.Context) error {
	ctx := c.Request().Context()
	if path := c.QueryParam("stream"); path != "" {
		st, err := a.opt.Admin.StreamStats(ctx, path)
		if err != nil {
			return adminError(err)
		}
		return c.JSON(http.StatusOK, st)
	}
	t, err := a.opt.Admin.Totals(ctx)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, t)
}

func (a *API) adminVerify(c echo.Context) error {
	rep, err := a.opt.Admin.Verify(c.Request().Context())
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, rep)
}

func (a *API) adminGC(c echo.Context) error {
	dryRun := true
	if s := c.QueryParam("dry_run"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return badRequest("dry_run must be true or false")
		}
		dryRun = b
	}
	rep, err := a.opt.Admin.GC(c.Request().Context(), dryRun)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, rep)
}

func (a *API) adminCluster(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.Request().URL.Query()
	if !q.Has("node") {
		st, err := a.opt.Admin.ClusterStatus(ctx)
		if err != nil {
			return adminError(err)
		}
		return c.JSON(http.StatusOK, st)
	}
	f := admin.LeaseFilter{Node: q.Get("node"), After: q.Get("after")}
	var err error
	if f.Limit, err = pageLimit(q); err != nil {
		return err
	}
	page, err := a.opt.Admin.ClusterLeases(ctx, f)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusOK, page)
}

// adminError maps an admin.Service error to an HTTP error. Operators see
// the message of internal errors too (it names the failing object or
// query); they are logged by the error handler.
func adminError(err error) error {
	switch {
	case errors.Is(err, admin.ErrNotFound):
		return &httpError{status: http.StatusNotFound, code: "NOT_FOUND", msg: err.Error()}
	case errors.Is(err, admin.ErrInvalid):
		return badRequest(err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &httpError{status: http.StatusInternalServerError, code: "INTERNAL", msg: err.Error()}
}
