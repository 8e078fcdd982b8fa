package protocol

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/streamtier/durable-streams/internal/offset"
)

// Query parameter names used by the protocol.
const (
	QueryOffset = "offset"
	QueryLive   = "live"
	QueryCursor = "cursor"
)

// OffsetKind says which form a read offset took.
type OffsetKind int

// The forms of a read offset.
const (
	OffsetStart OffsetKind = iota // absent or "-1": the beginning of the stream
	OffsetNow                     // "now": the current tail
	OffsetToken                   // an offset token previously handed out
)

// ReadOffset describes the offset query parameter of a read.
type ReadOffset struct {
	Kind  OffsetKind
	Token offset.Token // set when Kind is OffsetToken
	Given bool         // the parameter was present
}

var errOffset = errors.New("offset must be -1, now, or <16 digits>_<16 digits>")

// ParseReadOffset parses the offset query parameter from q. An absent
// parameter reads from the start; "-1" does too, explicitly; "now" reads
// from the current tail; anything else must be an offset token. An empty
// or repeated parameter is an error rather than a default, since it most
// likely reflects a client bug that would otherwise replay the stream.
func ParseReadOffset(q url.Values) (ReadOffset, error) {
	vs := q[QueryOffset]
	switch len(vs) {
	case 0:
		return ReadOffset{Kind: OffsetStart}, nil
	case 1:
	default:
		return ReadOffset{}, errors.New("offset must be given at most once")
	}
	switch v := vs[0]; v {
	case "":
		return ReadOffset{}, errors.New("offset must not be empty")
	case offset.Start:
		return ReadOffset{Kind: OffsetStart, Given: true}, nil
	case offset.Now:
		return ReadOffset{Kind: OffsetNow, Given: true}, nil
	default:
		tok, err := offset.Parse(v)
		if err != nil {
			return ReadOffset{}, errOffset
		}
		return ReadOffset{Kind: OffsetToken, Token: tok, Given: true}, nil
	}
}

// LiveMode is the live query parameter of a read.
type LiveMode int

// The live modes of a read.
const (
	LiveNone     LiveMode = iota // a plain catch-up read
	LiveLongPoll                 // "long-poll": wait for data at the tail
	LiveSSE                      // "sse": a Server-Sent Events stream
)

// ParseLive parses the live query parameter from q. An absent or empty
// parameter means LiveNone; "long-poll" and "sse" select those modes;
// anything else, or a repeated parameter, is an error.
func ParseLive(q url.Values) (LiveMode, error) {
	vs := q[QueryLive]
	switch len(vs) {
	case 0:
		return LiveNone, nil
	case 1:
	default:
		return LiveNone, errors.New("live must be given at most once")
	}
	switch vs[0] {
	case "":
		return LiveNone, nil
	case "long-poll":
		return LiveLongPoll, nil
	case "sse":
		return LiveSSE, nil
	}
	return LiveNone, errors.New(`live must be "long-poll" or "sse"`)
}

// Defaults of the cursor clock (protocol section 8.1).
var (
	// DefaultCursorEpoch is the instant from which cursor intervals are
	// counted.
	DefaultCursorEpoch = time.Date(2024, time.October, 9, 0, 0, 0, 0, time.UTC)
	// DefaultCursorInterval is the length of one cursor interval.
	DefaultCursorInterval = 20 * time.Second
)

// maxCursorJitter is the most a cursor is pushed ahead of a client's
// cursor (the protocol's 1 to 3600 seconds).
const maxCursorJitter = 3600 * time.Second

// CursorClock computes Stream-Cursor values: the number of Intervals since
// Epoch, in decimal. The zero value uses the defaults.
//
// Its purpose is to make consecutive long-poll URLs differ so that a
// shared cache cannot answer a client with the response it has already
// seen: if the client's cursor (the cursor query parameter) is not behind
// the current interval, the result is the client's cursor plus a random
// jitter of up to 3600 seconds (at least one interval), and so always
// strictly greater. The jitter spreads clients that were in lockstep
// across different URLs. An empty or malformed client cursor is ignored.
type CursorClock struct {
	Epoch    time.Time     // zero: DefaultCursorEpoch
	Interval time.Duration // zero: DefaultCursorInterval
}

// Validate reports what is wrong with c, if anything.
func (c CursorClock) Validate() error {
	if c.Interval != 0 && c.Interval < time.Second {
		return fmt.Errorf("cursor interval %v is shorter than a second", c.Interval)
	}
	if c.Interval > maxCursorJitter {
		return fmt.Errorf("cursor interval %v is longer than %v", c.Interval, maxCursorJitter)
	}
	return nil
}

// Cursor computes the cursor of a live response at now for a request
// with clientCursor.
//
// rnd supplies the jitter; if it is nil, the global source of
// math/rand/v2 is used.
func (c CursorClock) Cursor(now time.Time, clientCursor string, rnd *rand.Rand) string {
	epoch, interval := c.Epoch, c.Interval
	if epoch.IsZero() {
		epoch = DefaultCursorEpoch
	}
	if interval <= 0 {
		interval = DefaultCursorInterval
	}
	cur := int64(0)
	// Before the epoch the cursor stays at 0 rather than going negative,
	// which ParseUint would refuse when the client sends it back.
	if d := now.Sub(epoch); d > 0 {
		cur = int64(d / interval)
	}
	client, err := ParseUint(QueryCursor, clientCursor)
	if err != nil || client < cur {
		return strconv.FormatInt(cur, 10)
	}
	maxJitter := max(int64(maxCursorJitter/interval), 1)
	var jitter int64
	if rnd != nil {
		jitter = rnd.Int64N(maxJitter) + 1
	} else {
		jitter = rand.Int64N(maxJitter) + 1
	}
	// client <= MaxSafeInteger and jitter <= 3600, so the sum cannot
	// overflow.
	return strconv.FormatInt(client+jitter, 10)
}

// Cursor computes a Stream-Cursor value with the default clock: 20-second
// intervals since 2024-10-09T00:00:00Z, a jitter of 1 to 180 intervals.
// See CursorClock.
func Cursor(now time.Time, clientCursor string, rnd *rand.Rand) string {
	return CursorClock{}.Cursor(now, clientCursor, rnd)
}
