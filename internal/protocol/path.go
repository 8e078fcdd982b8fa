package protocol

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxStreamPathLen is the largest accepted stream path, in bytes.
const MaxStreamPathLen = 1024

// ValidateStreamPath checks a stream path: the part of the URL path after
// the streams route prefix, already percent-decoded, without a leading
// slash. A valid path is 1 to MaxStreamPathLen bytes of valid UTF-8 with
// no control characters and no backslash, made of non-empty segments
// separated by "/", none of which is "." or "..".
//
// The rules keep names unambiguous: each stream has exactly one spelling
// that cannot be rewritten by path cleaning in clients, proxies or
// storage layers, so two requests never disagree about which stream they
// name.
func ValidateStreamPath(p string) error {
	if p == "" {
		return errors.New("stream path must not be empty")
	}
	if len(p) > MaxStreamPathLen {
		return errors.New("stream path must be at most 1024 bytes")
	}
	if !utf8.ValidString(p) {
		return errors.New("stream path must be valid UTF-8")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return errors.New("stream path must not contain control characters")
		case c == '\\':
			// Some servers and clients treat a backslash as a separator.
			return errors.New("stream path must not contain a backslash")
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return errors.New("stream path must not start or end with a slash or contain empty segments")
		case ".", "..":
			return errors.New(`stream path must not contain "." or ".." segments`)
		}
	}
	return nil
}
