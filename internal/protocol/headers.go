// Package protocol parses and validates the inputs of Durable Streams
// requests: headers, query parameters, stream paths, content types and JSON
// bodies.
//
// Every function here is pure and safe to call on arbitrary client input.
// Errors carry a short reason meant to be shown to the client in a
// 400 Bad Request response. They do not repeat the offending value, which
// may hold bytes that do not belong in a response; at most, a JSON syntax
// error names one escaped character.
package protocol

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names used by the protocol, in canonical form.
const (
	HeaderStreamTTL           = "Stream-TTL"
	HeaderStreamExpiresAt     = "Stream-Expires-At"
	HeaderStreamSeq           = "Stream-Seq"
	HeaderStreamCursor        = "Stream-Cursor"
	HeaderStreamNextOffset    = "Stream-Next-Offset"
	HeaderStreamUpToDate      = "Stream-Up-To-Date"
	HeaderStreamClosed        = "Stream-Closed"
	HeaderProducerID          = "Producer-Id"
	HeaderProducerEpoch       = "Producer-Epoch"
	HeaderProducerSeq         = "Producer-Seq"
	HeaderProducerExpectedSeq = "Producer-Expected-Seq"
	HeaderProducerReceivedSeq = "Producer-Received-Seq"
	HeaderForkedFrom          = "Stream-Forked-From"
	HeaderForkOffset          = "Stream-Fork-Offset"
	HeaderForkSubOffset       = "Stream-Fork-Sub-Offset"
	HeaderSSEDataEncoding     = "Stream-SSE-Data-Encoding"
)

// MaxSafeInteger is 2^53-1, the largest integer the protocol allows in
// numeric headers. Larger values cannot be represented exactly by
// JavaScript clients.
const MaxSafeInteger = 1<<53 - 1

// maxSafeDigits is the number of decimal digits in MaxSafeInteger; longer
// inputs are rejected before any arithmetic so that overflow is impossible.
const maxSafeDigits = 16

// MaxProducerIDLen is the largest accepted Producer-Id, in bytes. Producer
// ids are stored with every producer's state, so they are kept short.
const MaxProducerIDLen = 256

// ParseUint parses a protocol integer: decimal digits only, no sign, no
// leading zeros (except "0" itself), no decimal point or exponent, and a
// value of at most MaxSafeInteger. name identifies the input in the error
// message, typically a header name.
//
// The grammar is stricter than strconv.ParseInt so that every value has
// exactly one spelling; sequence numbers are compared as numbers, and two
// spellings of one number would otherwise be an easy source of confusion.
func ParseUint(name, s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s must not be empty", name)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%s must be a non-negative integer without leading zeros", name)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%s must be a non-negative integer without leading zeros", name)
		}
	}
	if len(s) > maxSafeDigits {
		return 0, fmt.Errorf("%s must not exceed %d", name, MaxSafeInteger)
	}
	var v int64
	for i := 0; i < len(s); i++ {
		v = v*10 + int64(s[i]-'0')
	}
	if v > MaxSafeInteger {
		return 0, fmt.Errorf("%s must not exceed %d", name, MaxSafeInteger)
	}
	return v, nil
}

// maxTTLSeconds is the largest whole number of seconds a time.Duration
// holds (about 292 years).
const maxTTLSeconds = int64(1<<63-1) / int64(time.Second)

// MaxTTL is the longest TTL a stream keeps: larger Stream-TTL values are
// stored as MaxTTL. It is a whole number of seconds, so that it survives
// being stored (in milliseconds) unchanged and an identical PUT compares
// equal to the stream it created.
const MaxTTL = time.Duration(maxTTLSeconds) * time.Second

// ParseTTL parses a Stream-TTL value, a number of seconds following the
// ParseUint rules, into a duration. "0" is allowed.
//
// The protocol allows TTLs up to MaxSafeInteger seconds, far beyond the
// roughly 292 years a time.Duration can hold. Such TTLs saturate to MaxTTL
// rather than being rejected: no stream will outlive either, and refusing
// a value the protocol permits would be a gratuitous incompatibility.
func ParseTTL(s string) (time.Duration, error) {
	n, err := ParseUint(HeaderStreamTTL, s)
	if err != nil {
		return 0, err
	}
	if n > maxTTLSeconds {
		return MaxTTL, nil
	}
	return time.Duration(n) * time.Second, nil
}

var errExpiresAt = errors.New(HeaderStreamExpiresAt + " must be an RFC 3339 timestamp such as 2026-01-02T03:04:05Z")

// ParseExpiresAt parses a Stream-Expires-At value: an RFC 3339 timestamp
// with optional fractional seconds and either "Z" or a numeric offset,
// such as 2026-01-02T03:04:05.123Z or 2026-01-02T03:04:05+00:00. The result
// is in UTC.
//
// Instants before 1970-01-01T00:00:00Z are returned as that instant: all
// of them are in the past, so the stream expires at once either way, and
// the earliest of them, 0001-01-01T00:00:00Z, is Go's zero time, which
// elsewhere means "no expiry" (the reference server, too, treats any past
// instant as expired).
//
// It does not use time.Parse, which also accepts forms RFC 3339 does not
// (single-digit hours, a comma before the fraction, offsets of 24 hours).
// Only an uppercase "T" and "Z" are accepted, as every common client
// library produces.
func ParseExpiresAt(s string) (time.Time, error) {
	const prefix = len("2006-01-02T15:04:05")
	if len(s) < prefix+1 {
		return time.Time{}, errExpiresAt
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, errExpiresAt
	}
	// RFC 3339 allows a leap second (60), but time.Time cannot represent
	// one; rejecting it is simpler than picking a neighbour silently.
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errExpiresAt
	}
	rest := s[prefix:]

	var nsec int
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			// Digits past nanoseconds carry no information time.Time
			// can hold, so they are validated and dropped.
			if n <= 9 {
				nsec = nsec*10 + int(rest[n]-'0')
			}
			n++
		}
		if n == 1 {
			return time.Time{}, errExpiresAt
		}
		for i := n; i <= 9; i++ {
			nsec *= 10
		}
		rest = rest[n:]
	}

	var offset int
	switch {
	case rest == "Z":
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, errExpiresAt
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, errExpiresAt
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	t = t.Add(-time.Duration(offset) * time.Second)
	if t.Before(unixEpoch) {
		return unixEpoch, nil
	}
	return t, nil
}

// unixEpoch is the earliest expiry ParseExpiresAt returns.
var unixEpoch = time.Unix(0, 0).UTC()

// digits parses s, which must consist of ASCII digits only.
func digits(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	// Day 0 of the following month normalizes to the last day of month.
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Producer is the (id, epoch, seq) triple of an idempotent producer request.
type Producer struct {
	ID    string
	Epoch int64
	Seq   int64
}

// ParseProducer reads the Producer-Id, Producer-Epoch and Producer-Seq
// headers from h. If all three are absent it returns (nil, nil); if only
// some are present it returns an error. The id must be non-empty valid
// UTF-8 of at most MaxProducerIDLen bytes without control characters;
// epoch and seq follow the ParseUint rules.
//
// A header counts as present even when its value is empty, so that an
// empty Producer-Id is reported as invalid rather than silently turning
// the request into a non-idempotent append.
func ParseProducer(h http.Header) (*Producer, error) {
	idv := h.Values(HeaderProducerID)
	epv := h.Values(HeaderProducerEpoch)
	sqv := h.Values(HeaderProducerSeq)
	hasID, hasEpoch, hasSeq := len(idv) > 0, len(epv) > 0, len(sqv) > 0
	if !hasID && !hasEpoch && !hasSeq {
		return nil, nil
	}
	if !hasID || !hasEpoch || !hasSeq {
		var missing []string
		if !hasID {
			missing = append(missing, HeaderProducerID)
		}
		if !hasEpoch {
			missing = append(missing, HeaderProducerEpoch)
		}
		if !hasSeq {
			missing = append(missing, HeaderProducerSeq)
		}
		return nil, fmt.Errorf("missing %s: %s, %s and %s must be sent together",
			strings.Join(missing, " and "), HeaderProducerID, HeaderProducerEpoch, HeaderProducerSeq)
	}
	// Repeated headers would make the request's identity ambiguous.
	for _, hv := range []struct {
		name string
		n    int
	}{{HeaderProducerID, len(idv)}, {HeaderProducerEpoch, len(epv)}, {HeaderProducerSeq, len(sqv)}} {
		if hv.n > 1 {
			return nil, fmt.Errorf("%s must be sent at most once", hv.name)
		}
	}
	id := idv[0]
	if err := validateProducerID(id); err != nil {
		return nil, err
	}
	epoch, err := ParseUint(HeaderProducerEpoch, epv[0])
	if err != nil {
		return nil, err
	}
	seq, err := ParseUint(HeaderProducerSeq, sqv[0])
	if err != nil {
		return nil, err
	}
	return &Producer{ID: id, Epoch: epoch, Seq: seq}, nil
}

func validateProducerID(id string) error {
	if id == "" {
		return errors.New(HeaderProducerID + " must not be empty")
	}
	if len(id) > MaxProducerIDLen {
		return fmt.Errorf("%s must be at most %d bytes", HeaderProducerID, MaxProducerIDLen)
	}
	// Ids are stored and echoed back in JSON and logs; invalid UTF-8
	// would not survive those round trips unchanged.
	if !utf8.ValidString(id) {
		return errors.New(HeaderProducerID + " must be valid UTF-8")
	}
	if hasControl(id) {
		return errors.New(HeaderProducerID + " must not contain control characters")
	}
	return nil
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// ParseClosed reads the Stream-Closed header from h: true only for a
// single "true" in any case. The protocol asks that any other value be
// treated as if the header were absent, never as an error, so "false",
// "yes", "1", an empty value and a repeated header all mean false.
func ParseClosed(h http.Header) bool {
	vs := h.Values(HeaderStreamClosed)
	return len(vs) == 1 && strings.EqualFold(vs[0], "true")
}

// MaxStreamSeqLen is the largest accepted Stream-Seq, in bytes. The value
// is stored with the stream and echoed in the 409 of a regression.
const MaxStreamSeqLen = 256

// ParseStreamSeq reads the optional Stream-Seq header from h ("" when
// absent). The value is opaque, compared byte-wise; it must be sent at
// most once, be at most MaxStreamSeqLen bytes and hold no control
// characters, since it is stored and echoed.
func ParseStreamSeq(h http.Header) (string, error) {
	vs := h.Values(HeaderStreamSeq)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", errors.New(HeaderStreamSeq + " must be sent at most once")
	case len(vs[0]) > MaxStreamSeqLen:
		return "", fmt.Errorf("%s must be at most %d bytes", HeaderStreamSeq, MaxStreamSeqLen)
	case hasControl(vs[0]):
		return "", errors.New(HeaderStreamSeq + " must not contain control characters")
	}
	return vs[0], nil
}
