package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// Access rules, by route:
//
//	OPTIONS (CORS preflight), /healthz, /readyz    open
//	GET, HEAD /v1/stream/<path>                    read on <path> (or <path> is public-read)
//	PUT, POST, DELETE /v1/stream/<path>            write on <path>
//	PUT with Stream-Forked-From: <src>             also read on <src>
//	GET /v1/stream/__ds/jwks.json, POST            open (subscriptions.go: a wake's
//	/v1/stream/__ds/subscriptions/:id/callback,    token authenticates the last three)
//	.../ack, .../release
//	everything else (/v1/admin/*, /metrics,        admin scope on all streams
//	/v1/streams, /_test/*, /v1/stream/__ds/*,
//	unknown routes)
//
// Unknown routes need admin so that a route added later is closed until
// it is given a rule here.

const authRealm = `Bearer realm="durable-streams"`

// guard authenticates and rate-limits every request, then checks that the
// principal may make it. The principal goes into the request's context
// (auth.FromContext) for the handlers and the cache policy.
func (a *API) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodOptions || r.URL.Path == HealthRoute || r.URL.Path == ReadyRoute {
			return next(c)
		}
		p, authErr := a.opt.Auth.Authenticate(r.Header.Get("Authorization"))
		if ok, wait := a.opt.RateLimit.Allow(a.clientKey(r, p, authErr)); !ok {
			return tooManyRequests(wait)
		}
		if !a.opt.Auth.Enabled() || tokenAuthenticated(r) {
			return next(c)
		}
		if authErr != nil {
			return invalidToken(authErr)
		}
		if err := a.authorize(r, p); err != nil {
			return err
		}
		c.SetRequest(r.WithContext(auth.NewContext(r.Context(), p)))
		return next(c)
	}
}

// clientKey names the rate-limit bucket of a request: the token's subject
// when it has a valid one, so that a client keeps its budget across
// addresses, else its address.
func (a *API) clientKey(r *http.Request, p auth.Principal, authErr error) string {
	if a.opt.RateLimit == nil {
		return ""
	}
	if authErr == nil && !p.Anonymous && p.Subject != "" {
		return "sub:" + p.Subject
	}
	return "ip:" + a.opt.RateLimit.ClientIP(r)
}

// authorize applies the access rules to an authenticated request.
func (a *API) authorize(r *http.Request, p auth.Principal) error {
	name, isStream := strings.CutPrefix(r.URL.Path, StreamsRoute)
	if !isStream || isControlPath(name) {
		if p.IsAdmin() {
			return nil
		}
		return denied(p, auth.Admin, "this endpoint needs the admin scope on all streams")
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return a.canRead(p, name)
	}
	if !p.CanAccess(auth.Write, name) {
		return denied(p, auth.Write, scopeMessage(p, auth.Write, name))
	}
	if r.Method == http.MethodPut && len(r.Header.Values(protocol.HeaderForkedFrom)) > 0 {
		src, err := forkSource(r, r.Header.Get(protocol.HeaderForkedFrom))
		if err != nil {
			return err
		}
		return a.canRead(p, src)
	}
	return nil
}

func (a *API) canRead(p auth.Principal, name string) error {
	if a.opt.Auth.AnonymousRead(name) || p.CanAccess(auth.Read, name) {
		return nil
	}
	return denied(p, auth.Read, scopeMessage(p, auth.Read, name))
}

// scopeMessage says why p may not use scope on the stream at name. Claims
// may be echoed; the token never is.
func scopeMessage(p auth.Principal, scope auth.Scope, name string) string {
	if !p.Scopes.Has(scope) {
		return "the token does not grant the " + scope.String() + " scope"
	}
	return "the token is limited to streams under " + strconv.Quote(p.Prefix) + ", not " + strconv.Quote(name)
}

// denied is 401 for an anonymous request (it may succeed with a token)
// and 403 for an authenticated one (another token is needed).
func denied(p auth.Principal, scope auth.Scope, msg string) *httpError {
	if p.Anonymous {
		return &httpError{status: http.StatusUnauthorized, code: "UNAUTHORIZED",
			msg:    "this request needs an Authorization: Bearer <token> header",
			header: map[string]string{"WWW-Authenticate": authRealm}}
	}
	return &httpError{status: http.StatusForbidden, code: "FORBIDDEN", msg: msg,
		header: map[string]string{"WWW-Authenticate": authRealm + `, error="insufficient_scope", scope="` + scope.String() + `"`}}
}

func invalidToken(err error) *httpError {
	reason := "invalid token"
	if errors.Is(err, auth.ErrInvalidToken) {
		reason = err.Error()
	}
	return &httpError{status: http.StatusUnauthorized, code: "INVALID_TOKEN", msg: reason,
		header: map[string]string{"WWW-Authenticate": authRealm + `, error="invalid_token"`}}
}

func tooManyRequests(wait time.Duration) *httpError {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &httpError{status: http.StatusTooManyRequests, code: "RATE_LIMITED",
		msg:    "too many requests from this client; retry in " + strconv.Itoa(secs) + "s",
		header: map[string]string{"Retry-After": strconv.Itoa(secs)}}
}
