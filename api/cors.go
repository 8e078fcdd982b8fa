package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/internal/requestid"
)

// CORS is the cross-origin policy: which web pages, by origin, may use the
// server from a browser. The zero value allows every origin.
type CORS struct {
	// Off sends no CORS headers at all: pages on other origins cannot read
	// any response (same-origin pages and non-browser clients are not
	// affected). A CDN or proxy in front may then add its own.
	Off bool
	// Origins lists the allowed origins, e.g. "https://app.example.com";
	// empty, or holding "*", allows every origin. With a list, responses
	// carry Vary: Origin, so caches keep one copy per origin.
	Origins []string
}

// ParseCORS parses the --cors-origins setting: "*" allows every origin,
// "off" or "" none, anything else is a comma-separated list of origins
// (scheme://host[:port]).
func ParseCORS(s string) (CORS, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "off", "none":
		return CORS{Off: true}, nil
	case "*":
		return CORS{}, nil
	}
	var c CORS
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			norm, err := normalizeOrigin(o)
			if err != nil {
				return CORS{}, err
			}
			o = norm
		}
		c.Origins = append(c.Origins, o)
	}
	return c, nil
}

// normalizeOrigin checks that o is an origin as browsers send it in the
// Origin header and returns it in lower case.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("CORS origin %q must be scheme://host[:port] with scheme http or https", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// corsAllowMethods is every method the protocol uses.
const corsAllowMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS"

var (
	corsAllowHeaders = strings.Join([]string{"Content-Type", "Authorization", "If-None-Match", "Last-Event-ID",
		protocol.HeaderStreamTTL, protocol.HeaderStreamExpiresAt, protocol.HeaderStreamSeq, protocol.HeaderStreamClosed,
		protocol.HeaderProducerID, protocol.HeaderProducerEpoch, protocol.HeaderProducerSeq,
		protocol.HeaderForkedFrom, protocol.HeaderForkOffset, protocol.HeaderForkSubOffset, requestid.Header}, ", ")
	// corsExposeHeaders is every response header a client reads: the
	// protocol's, and the standard ones scripts cannot see without this.
	corsExposeHeaders = strings.Join([]string{"ETag", "Location", "Content-Type", "Content-Encoding", "Vary",
		"WWW-Authenticate", "Retry-After", requestid.Header,
		protocol.HeaderStreamNextOffset, protocol.HeaderStreamCursor, protocol.HeaderStreamUpToDate, protocol.HeaderStreamClosed,
		protocol.HeaderStreamTTL, protocol.HeaderStreamExpiresAt, protocol.HeaderSSEDataEncoding,
		protocol.HeaderProducerEpoch, protocol.HeaderProducerSeq, protocol.HeaderProducerExpectedSeq, protocol.HeaderProducerReceivedSeq}, ", ")
)

// corsMiddleware applies p to every response, errors included, and answers
// preflight (OPTIONS) requests itself.
func corsMiddleware(p CORS) echo.MiddlewareFunc {
	anyOrigin := len(p.Origins) == 0
	allowed := make(map[string]bool, len(p.Origins))
	for _, o := range p.Origins {
		if o == "*" {
			anyOrigin = true
		}
		allowed[strings.ToLower(o)] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			h := c.Response().Header()
			ok := !p.Off
			if ok && !anyOrigin {
				// The answer depends on Origin, allowed or not.
				h.Add("Vary", "Origin")
				origin := r.Header.Get("Origin")
				ok = origin != "" && allowed[strings.ToLower(origin)]
				if ok {
					h.Set("Access-Control-Allow-Origin", origin)
				}
			} else if ok {
				h.Set("Access-Control-Allow-Origin", "*")
			}
			if ok {
				h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			}
			if r.Method != http.MethodOptions {
				return next(c)
			}
			// A preflight from an origin that is not allowed gets no
			// Access-Control headers, which the browser takes as a refusal.
			h.Set("Allow", corsAllowMethods)
			if ok {
				h.Set("Access-Control-Allow-Methods", corsAllowMethods)
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "86400")
			}
			return c.NoContent(http.StatusNoContent)
		}
	}
}
