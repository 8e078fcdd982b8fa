// Package cache makes every HTTP caching decision of the server in one
// place: Cache-Control, ETag and Vary for each kind of response, in the
// shared (CDN-cacheable) and private cache modes.
package cache

import (
	"fmt"
	"strings"
	"time"
)

// Mode selects who may cache stream reads.
type Mode int

const (
	// Shared lets CDNs and proxies cache reads ("public").
	Shared Mode = iota
	// Private restricts caching to the requesting client ("private").
	Private
)

// ParseMode parses "shared" or "private".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "shared", "public":
		return Shared, nil
	case "private":
		return Private, nil
	}
	return Shared, fmt.Errorf("cache mode must be shared or private, got %q", s)
}

func (m Mode) String() string {
	if m == Private {
		return "private"
	}
	return "shared"
}

// Response kinds with distinct caching rules.
type Kind int

// Kinds of responses.
const (
	CatchUp      Kind = iota // GET of hot (unsealed) data, or an empty read at the tail
	SealedChunk              // GET whose bytes lie in a sealed segment: never change
	LongPollData             // long-poll 200
	NoStore                  // offset=now, HEAD, long-poll 204, writes, errors
	EventStream              // SSE
)

// Standard max-ages from the protocol (section 8).
const (
	hotMaxAge      = 60
	hotStale       = 300
	immutableAge   = 365 * 24 * 3600
	noStoreControl = "no-store"
)

// Request describes what the caching decision depends on.
type Request struct {
	Kind Kind
	Mode Mode
	// Remaining is the time until the stream expires; 0 means no expiry.
	Remaining time.Duration
}

// CacheControl returns the Cache-Control header value for r.
func CacheControl(r Request) string {
	scope := "public"
	if r.Mode == Private {
		scope = "private"
	}
	switch r.Kind {
	case SealedChunk:
		if r.Remaining > 0 {
			return fmt.Sprintf("%s, max-age=%d", scope, clampAge(r.Remaining, immutableAge))
		}
		if r.Mode == Private {
			return fmt.Sprintf("private, max-age=%d, immutable", immutableAge)
		}
		return fmt.Sprintf("public, max-age=%d, immutable", immutableAge)
	case CatchUp, LongPollData:
		age := hotMaxAge
		if r.Remaining > 0 {
			age = clampAge(r.Remaining, hotMaxAge)
		}
		return fmt.Sprintf("%s, max-age=%d, stale-while-revalidate=%d", scope, age, hotStale)
	case EventStream:
		return "no-cache"
	default:
		return noStoreControl
	}
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
