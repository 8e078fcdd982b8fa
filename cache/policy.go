// Package cache makes every HTTP caching decision of the server in one
// place: Cache-Control, ETag, Vary and whether a response carries a
// Stream-Cursor, for each kind of response, in the shared (CDN-cacheable)
// and private cache modes. It also holds the in-process read collapser
// (Collapser) that lets identical concurrent reads share one storage read.
//
// The rules are described in docs/caching.md.
package cache

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Mode selects who may cache stream reads.
type Mode int

const (
	// Shared lets CDNs and proxies cache reads ("public").
	Shared Mode = iota
	// Private keeps reads out of every cache ("private, no-store").
	Private
)

// ParseMode parses "shared" (or its alias "public") or "private".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "shared", "public":
		return Shared, nil
	case "private":
		return Private, nil
	}
	return Shared, fmt.Errorf("cache mode must be shared or private, got %q", s)
}

// String returns "shared" or "private", the form ParseMode accepts.
func (m Mode) String() string {
	if m == Private {
		return "private"
	}
	return "shared"
}

// Headers a trusted edge uses to pick the cache mode of one request.
const (
	// HeaderCacheMode carries "shared" or "private".
	HeaderCacheMode = "X-Cache-Mode"
	// HeaderEdgeSecret carries the configured edge secret; without it
	// HeaderCacheMode is ignored.
	HeaderEdgeSecret = "X-Edge-Secret"
)

// Policy is the server-wide caching configuration: the default mode and
// the secret that lets a trusted edge override it per request.
type Policy struct {
	mode Mode
	// secret is the SHA-256 of the edge secret, so that the comparison
	// takes the same time whatever the length of the presented value.
	secret  [sha256.Size]byte
	hasEdge bool
}

// NewPolicy returns a policy with default mode and, if edgeSecret is not
// empty, per-request mode selection for requests that present it.
func NewPolicy(mode Mode, edgeSecret string) *Policy {
	p := &Policy{mode: mode}
	if edgeSecret != "" {
		p.secret = sha256.Sum256([]byte(edgeSecret))
		p.hasEdge = true
	}
	return p
}

// Default returns the mode used when no trusted edge selects one.
func (p *Policy) Default() Mode { return p.mode }

// EdgeSelectable reports whether a trusted edge may select the mode, which
// makes cacheable responses vary with HeaderCacheMode.
func (p *Policy) EdgeSelectable() bool { return p.hasEdge }

// ModeFor returns the cache mode of a request with headers h: the value of
// HeaderCacheMode when h also carries the edge secret, the default
// otherwise. An edge that presents the secret with a malformed mode gets
// an error: it is trusted, so the mistake is reported rather than hidden.
func (p *Policy) ModeFor(h http.Header) (Mode, error) {
	if !p.hasEdge {
		return p.mode, nil
	}
	v := h.Get(HeaderCacheMode)
	if v == "" || !p.trusted(h.Get(HeaderEdgeSecret)) {
		return p.mode, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "shared":
		return Shared, nil
	case "private":
		return Private, nil
	}
	return p.mode, fmt.Errorf("%s must be shared or private, got %q", HeaderCacheMode, v)
}

func (p *Policy) trusted(presented string) bool {
	if presented == "" {
		return false
	}
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], p.secret[:]) == 1
}

// Kind is a kind of response with its own caching rules.
type Kind int

// Kinds of responses.
const (
	// CatchUp is a GET without live mode that returned data or an empty
	// read at the tail.
	CatchUp Kind = iota
	// SealedChunk is a CatchUp whose bytes lie in a sealed segment; it is
	// the same as CatchUp with Request.Sealed set.
	SealedChunk
	// LongPollData is a long-poll 200.
	LongPollData
	// NoStore is offset=now, HEAD, writes and errors.
	NoStore
	// EventStream is an SSE response.
	EventStream
	// LongPollEmpty is a long-poll 204: nothing new before the timeout, or
	// the stream is closed at the requested offset.
	LongPollEmpty
)

// Max-ages. The hot values are the protocol's (section 8.1); sealed and
// final data never change, so they may be kept for a year.
const (
	hotMaxAge      = 60
	hotStale       = 300
	immutableAge   = 365 * 24 * 3600
	noStoreControl = "no-store"
	privateNoStore = "private, no-store"
)

// Request describes what the caching decision of one response depends on.
// The zero value of every field but Kind is the common, unauthenticated,
// shared case.
type Request struct {
	Kind Kind
	Mode Mode
	// Remaining is the time until the stream expires; 0 means no expiry.
	// No response may be cached past it.
	Remaining time.Duration

	// Sealed: the response's bytes lie in a sealed segment.
	Sealed bool
	// UpToDate: the response ends at the stream's tail.
	UpToDate bool
	// Closed: the response ends at the tail of a closed stream, so it is
	// final: neither its bytes nor its end will ever change.
	Closed bool
	// Empty: the response carries no data (a read at the tail).
	Empty bool

	// Authenticated: the request carried credentials that were verified.
	Authenticated bool
	// PublicReadable: the stream can be read without credentials.
	PublicReadable bool
	// EdgeSelectable: a trusted edge may pick the mode with
	// HeaderCacheMode (Policy.EdgeSelectable).
	EdgeSelectable bool
}

// restricted reports whether the response depends on the request's
// credentials: it was authorised by them and would be refused without.
func (r Request) restricted() bool { return r.Authenticated && !r.PublicReadable }

// Decision is the caching headers of one response.
type Decision struct {
	// CacheControl is the Cache-Control value; never empty.
	CacheControl string
	// Vary lists the request headers a cache must add to its key.
	Vary []string
	// Cursor: the response carries a Stream-Cursor header.
	Cursor bool
}

// Decide returns the caching headers of the response described by r.
func Decide(r Request) Decision {
	var d Decision
	d.CacheControl = cacheControl(r)
	d.Cursor = r.Kind == LongPollData || (r.Kind == LongPollEmpty && !r.Closed)
	if d.CacheControl == noStoreControl {
		// Nothing is stored, so nothing needs a key.
		return d
	}
	if r.restricted() {
		d.Vary = append(d.Vary, "Authorization")
	}
	if r.EdgeSelectable {
		d.Vary = append(d.Vary, HeaderCacheMode)
	}
	return d
}

// Apply sets the decision's Cache-Control and adds its Vary entries to h,
// keeping any Vary entries already there. The Stream-Cursor value is the
// caller's (it comes from the protocol's cursor clock).
func (d Decision) Apply(h http.Header) {
	h.Set("Cache-Control", d.CacheControl)
	for _, v := range d.Vary {
		if !headerHasToken(h.Values("Vary"), v) {
			h.Add("Vary", v)
		}
	}
}

func headerHasToken(values []string, tok string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			p := strings.TrimSpace(part)
			if p == "*" || strings.EqualFold(p, tok) {
				return true
			}
		}
	}
	return false
}

// SetNoStore sets the Cache-Control of a response that no cache may keep:
// writes, errors, listings, admin, metrics and test endpoints. Every
// Cache-Control value of the server is spelled in this package.
func SetNoStore(h http.Header) { h.Set("Cache-Control", noStoreControl) }

// keySetMaxAge is how long a key set (the webhook signing JWKS) may be
// cached: long enough to spare receivers a fetch per delivery, short
// enough that a rotated key is picked up within minutes.
const keySetMaxAge = 300

// SetKeySet marks a response carrying a public key set (JWKS) cacheable
// by anyone for keySetMaxAge seconds.
func SetKeySet(h http.Header) {
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", keySetMaxAge))
}

// CacheControl returns the Cache-Control header value for r.
func CacheControl(r Request) string { return cacheControl(r) }

func cacheControl(r Request) string {
	switch r.Kind {
	case CatchUp, SealedChunk, LongPollData, EventStream:
	default:
		return noStoreControl
	}
	if r.Mode == Private {
		// Private mode keeps stream contents out of every cache, the
		// client's own included (the Durable Object design's rule). Vary
		// stays as for stored responses, so that all responses for a URL
		// agree on it.
		return privateNoStore
	}
	scope := "public"
	if r.restricted() {
		scope = "private"
	}
	switch r.Kind {
	case CatchUp, SealedChunk, LongPollData:
	case EventStream:
		// Storable but always revalidated: a collapsing edge may fan one
		// origin connection out to identical concurrent requests, and no
		// later request is answered from a stored copy.
		if scope == "private" {
			return "private, no-cache"
		}
		return "no-cache"
	default:
		return noStoreControl
	}
	switch {
	case r.Closed, (r.Kind == SealedChunk || r.Sealed) && !r.UpToDate:
		// Final or sealed: the same request always gets the same answer.
		if r.Remaining > 0 {
			return fmt.Sprintf("%s, max-age=%d", scope, clampAge(r.Remaining, immutableAge))
		}
		return fmt.Sprintf("%s, max-age=%d, immutable", scope, immutableAge)
	case r.Empty && r.UpToDate:
		// An empty read at the tail of an open stream is the only answer
		// a client asks for again with the same URL; a stored copy must
		// not hide the next append or the close. The ETag changes with
		// both, so revalidation is a cheap 304 otherwise.
		return scope + ", no-cache"
	}
	age := hotMaxAge
	if r.Remaining > 0 {
		age = clampAge(r.Remaining, hotMaxAge)
	}
	return fmt.Sprintf("%s, max-age=%d, stale-while-revalidate=%d", scope, age, hotStale)
}

// clampAge bounds a max-age so nothing is served from a cache after the
// stream expires.
func clampAge(remaining time.Duration, ceiling int) int {
	s := int(remaining / time.Second)
	if s < 0 {
		s = 0
	}
	return min(s, ceiling)
}

// ETag returns the entity tag of a read response: stream id, start and end
// offsets, and a closed marker so that a read that reaches the end of a
// closed stream never matches the same read made before the close.
func ETag(streamID int64, start, end string, closed bool) string {
	if closed {
		return fmt.Sprintf(`"%d:%s:%s:c"`, streamID, start, end)
	}
	return fmt.Sprintf(`"%d:%s:%s"`, streamID, start, end)
}

// Matches reports whether an If-None-Match header value matches etag.
func Matches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	for _, part := range strings.Split(ifNoneMatch, ",") {
		p := strings.TrimSpace(part)
		p = strings.TrimPrefix(p, "W/")
		if p == "*" || p == etag {
			return true
		}
	}
	return false
}
