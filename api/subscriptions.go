package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
	"github.com/streamtier/durable-streams/subscriptions"
)

// ControlRoute is the reserved prefix of the protocol's control APIs
// (section 6): it is routed before streams, and no stream can have a path
// under it.
//
//	PUT, GET, DELETE  __ds/subscriptions/:id              create or re-confirm, read, delete
//	POST              __ds/subscriptions/:id/streams      add explicit streams
//	DELETE            __ds/subscriptions/:id/streams/:p   remove an explicit stream
//	POST              __ds/subscriptions/:id/callback     webhook callback (Bearer callback token)
//	POST              __ds/subscriptions/:id/claim        pull-wake claim
//	POST              __ds/subscriptions/:id/ack          pull-wake ack or heartbeat (Bearer claim token)
//	POST              __ds/subscriptions/:id/release      pull-wake release (Bearer claim token)
//	GET               __ds/jwks.json                      webhook signing keys
//
// Access: jwks.json is open; callback, ack and release are authenticated
// by their wake's token, not by the server's access control; the other
// routes need the admin scope when access control is on.
const ControlRoute = StreamsRoute + subscriptions.ControlPrefix + "/"

// maxControlBody bounds a control request's body.
const maxControlBody = 1 << 20

// Subscriptions is what the control routes need from package
// subscriptions (a *subscriptions.Manager); root is the stream root URL
// as the client sees it. Appended is called after every acknowledged
// append and must not block.
type Subscriptions interface {
	Put(ctx context.Context, id string, req *subscriptions.CreateRequest, root string) (subscriptions.View, bool, error)
	Get(ctx context.Context, id, root string) (subscriptions.View, error)
	Delete(ctx context.Context, id string) error
	AddStreams(ctx context.Context, id string, paths []string) error
	RemoveStream(ctx context.Context, id, path string) error
	Callback(ctx context.Context, id, token string, req *subscriptions.AckRequest) (subscriptions.AckResult, error)
	Claim(ctx context.Context, id, worker string) (subscriptions.Claim, error)
	Ack(ctx context.Context, id, token string, req *subscriptions.AckRequest) (subscriptions.AckResult, error)
	Release(ctx context.Context, id, token string, req *subscriptions.AckRequest) error
	JWKS() subscriptions.JWKS
	Appended(path, tail string)
}

// appended reports an acknowledged append to the subscriptions.
func (a *API) appended(path, tail string) {
	if a.opt.Subscriptions != nil {
		a.opt.Subscriptions.Appended(path, tail)
	}
}

// isControlPath reports whether a stream-root-relative path is reserved.
func isControlPath(name string) bool {
	return name == subscriptions.ControlPrefix || strings.HasPrefix(name, subscriptions.ControlPrefix+"/")
}

// tokenAuthenticated reports whether r is a control request that carries
// its own credential (a wake's token) or needs none (the public keys), so
// that the server's access control does not read its Authorization.
func tokenAuthenticated(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, ControlRoute)
	if !ok {
		return false
	}
	if rest == "jwks.json" {
		return true
	}
	_, action, _ := strings.Cut(strings.TrimPrefix(rest, "subscriptions/"), "/")
	return strings.HasPrefix(rest, "subscriptions/") && r.Method == http.MethodPost &&
		(action == "callback" || action == "ack" || action == "release")
}

// subError writes a control error in the protocol's shape:
// {"error": {"code": ..., "message": ...}}.
func (a *API) subError(c echo.Context, err error) error {
	var se *subscriptions.Error
	if !errors.As(err, &se) {
		a.lg.ErrorContext(c.Request().Context(), "subscription request failed", "path", c.Request().URL.Path, "err", err)
		se = &subscriptions.Error{Code: subscriptions.CodeInternal, Message: "internal error"}
	}
	cache.SetNoStore(c.Response().Header())
	return c.JSON(se.Status(), struct {
		Error *subscriptions.Error `json:"error"`
	}{se})
}

func subErrorf(code, msg string) *subscriptions.Error {
	return &subscriptions.Error{Code: code, Message: msg}
}

// streamRoot is the URL of the stream root as the client sees it, mount
// prefix included.
func streamRoot(r *http.Request) string {
	ext := externalURL(r)
	i := strings.Index(ext, "://") + len("://") + len(r.Host)
	return ext[:i] + mountPrefix(r) + strings.TrimSuffix(StreamsRoute, "/")
}

// readJSON decodes a control request's body into v; an empty body is {}.
func readJSON(c echo.Context, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxControlBody))
	if err != nil {
		return subErrorf(subscriptions.CodeInvalidRequest, "request body unreadable or larger than 1 MiB")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return subErrorf(subscriptions.CodeInvalidRequest, "invalid JSON body: "+err.Error())
	}
	return nil
}

func bearer(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", subErrorf(subscriptions.CodeTokenInvalid, "missing or malformed Authorization: Bearer header")
	}
	return tok, nil
}

// control serves ControlRoute.
func (a *API) control(c echo.Context) error {
	r := c.Request()
	rest := strings.TrimPrefix(r.URL.Path, ControlRoute)
	svc := a.opt.Subscriptions
	if svc == nil {
		return a.subError(c, subErrorf(subscriptions.CodeNotFound, "subscriptions are not enabled on this server"))
	}
	if rest == "jwks.json" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return a.controlMethod(c, "GET, HEAD, OPTIONS")
		}
		h := c.Response().Header()
		cache.SetKeySet(h)
		b, err := json.Marshal(svc.JWKS())
		if err != nil {
			return a.subError(c, err)
		}
		return c.Blob(http.StatusOK, "application/jwk-set+json", b)
	}
	tail, ok := strings.CutPrefix(rest, "subscriptions/")
	id, action, _ := strings.Cut(tail, "/")
	if !ok || id == "" {
		return a.subError(c, subErrorf(subscriptions.CodeNotFound, "no such control route"))
	}
	ctx := r.Context()
	switch {
	case action == "":
		return a.subscription(c, svc, id)
	case action == "streams":
		if r.Method != http.MethodPost {
			return a.controlMethod(c, "POST, OPTIONS")
		}
		var body struct {
			Streams []string `json:"streams"`
		}
		if err := readJSON(c, &body); err != nil {
			return a.subError(c, err)
		}
		if err := svc.AddStreams(ctx, id, body.Streams); err != nil {
			return a.subError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	case strings.HasPrefix(action, "streams/"):
		if r.Method != http.MethodDelete {
			return a.controlMethod(c, "DELETE, OPTIONS")
		}
		if err := svc.RemoveStream(ctx, id, strings.TrimPrefix(action, "streams/")); err != nil {
			return a.subError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	case action == "claim":
		if r.Method != http.MethodPost {
			return a.controlMethod(c, "POST, OPTIONS")
		}
		var body struct {
			Worker string `json:"worker"`
		}
		if err := readJSON(c, &body); err != nil {
			return a.subError(c, err)
		}
		cl, err := svc.Claim(ctx, id, body.Worker)
		if err != nil {
			return a.subError(c, err)
		}
		cache.SetNoStore(c.Response().Header())
		return c.JSON(http.StatusOK, cl)
	case action == "callback" || action == "ack" || action == "release":
		if r.Method != http.MethodPost {
			return a.controlMethod(c, "POST, OPTIONS")
		}
		tok, err := bearer(r)
		if err != nil {
			return a.subError(c, err)
		}
		var req subscriptions.AckRequest
		if err := readJSON(c, &req); err != nil {
			return a.subError(c, err)
		}
		var res subscriptions.AckResult
		switch action {
		case "callback":
			res, err = svc.Callback(ctx, id, tok, &req)
		case "ack":
			res, err = svc.Ack(ctx, id, tok, &req)
		default:
			if err = svc.Release(ctx, id, tok, &req); err == nil {
				return c.NoContent(http.StatusNoContent)
			}
		}
		if err != nil {
			return a.subError(c, err)
		}
		cache.SetNoStore(c.Response().Header())
		return c.JSON(http.StatusOK, res)
	}
	return a.subError(c, subErrorf(subscriptions.CodeNotFound, "no such control route"))
}

// subscription serves PUT, GET and DELETE of one subscription.
func (a *API) subscription(c echo.Context, svc Subscriptions, id string) error {
	r := c.Request()
	cache.SetNoStore(c.Response().Header())
	switch r.Method {
	case http.MethodPut:
		var req subscriptions.CreateRequest
		if err := readJSON(c, &req); err != nil {
			return a.subError(c, err)
		}
		v, created, err := svc.Put(r.Context(), id, &req, streamRoot(r))
		if err != nil {
			return a.subError(c, err)
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return c.JSON(status, v)
	case http.MethodGet, http.MethodHead:
		v, err := svc.Get(r.Context(), id, streamRoot(r))
		if err != nil {
			return a.subError(c, err)
		}
		return c.JSON(http.StatusOK, v)
	case http.MethodDelete:
		if err := svc.Delete(r.Context(), id); err != nil {
			return a.subError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
	return a.controlMethod(c, "GET, HEAD, PUT, DELETE, OPTIONS")
}

func (a *API) controlMethod(c echo.Context, allow string) error {
	c.Response().Header().Set("Allow", allow)
	return &httpError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", msg: "method not allowed on this control route"}
}
