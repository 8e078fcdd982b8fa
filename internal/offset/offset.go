// Package offset defines the stream offset tokens handed to clients.
//
// A token is "<segment>_<position>", both 16-digit zero-padded decimals.
// Position is a byte position in the stream's logical byte space (for JSON
// streams, the bytes of the stored compact messages). Segment is the number
// of the segment that holds the byte just before Position, or the stream's
// first segment when Position is zero. Because segment numbers never
// decrease as positions grow, lexicographic order of tokens is position
// order. See docs/offsets.md for the invariants.
package offset

import (
	"errors"
	"fmt"
	"strconv"
)

// Width is the number of decimal digits in each half of a token.
const Width = 16

// Max is the largest value either half of a token can hold.
const Max = 9999999999999999

// Sentinels accepted in the offset query parameter.
const (
	Start = "-1"  // the beginning of the stream
	Now   = "now" // the current tail
)

// Token is a parsed offset: a position and the segment that locates it.
type Token struct {
	Segment  int64
	Position int64
}

// Zero is the token of position 0 in segment 0.
var Zero = Token{}

// ErrMalformed reports a token that is not of the form described above.
var ErrMalformed = errors.New("malformed offset")

// String formats t as a 33-character token.
func (t Token) String() string {
	var b [2*Width + 1]byte
	putPadded(b[:Width], t.Segment)
	b[Width] = '_'
	putPadded(b[Width+1:], t.Position)
	return string(b[:])
}

// Less reports whether t sorts before u.
func (t Token) Less(u Token) bool {
	if t.Position != u.Position {
		return t.Position < u.Position
	}
	return t.Segment < u.Segment
}

func putPadded(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// Parse parses a token. It does not accept the sentinels; callers check
// for Start and Now first.
func Parse(s string) (Token, error) {
	if len(s) != 2*Width+1 || s[Width] != '_' {
		return Token{}, fmt.Errorf("%w: want <16 digits>_<16 digits>", ErrMalformed)
	}
	seg, ok1 := parseDigits(s[:Width])
	pos, ok2 := parseDigits(s[Width+1:])
	if !ok1 || !ok2 {
		return Token{}, fmt.Errorf("%w: want <16 digits>_<16 digits>", ErrMalformed)
	}
	return Token{Segment: seg, Position: pos}, nil
}

func parseDigits(s string) (int64, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}
