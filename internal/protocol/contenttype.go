package protocol

import (
	"errors"
	"fmt"
	"mime"
	"strings"
)

// ContentType is a normalized media type.
type ContentType struct {
	// Full is the lowercased type/subtype followed by the parameters as
	// re-serialized by mime.FormatMediaType, such as
	// "application/json; charset=utf-8". Parameter values keep their case.
	Full string
	// Media is the lowercased "type/subtype".
	Media string
}

var errContentType = errors.New("Content-Type must be a valid media type such as application/octet-stream")

// MaxContentTypeLen is the largest accepted Content-Type, in bytes. A
// stream's content type is stored with it and sent with every read;
// registered media types are at most 127 bytes each side of the slash, so
// this leaves room for parameters such as a charset.
const MaxContentTypeLen = 256

// ParseContentType normalizes a Content-Type header value. An empty value
// is an error; callers decide what default, if any, applies.
//
// Normalizing lets a stream's content type be stored once and compared
// and echoed consistently, whatever spelling the creating client used.
func ParseContentType(s string) (ContentType, error) {
	if s == "" {
		return ContentType{}, errors.New("Content-Type must not be empty")
	}
	if len(s) > MaxContentTypeLen {
		return ContentType{}, fmt.Errorf("Content-Type must be at most %d bytes", MaxContentTypeLen)
	}
	if simpleMediaType(s) {
		// Already normal: what the slow path below would return, without
		// its allocations (it runs several times per append).
		return ContentType{Full: s, Media: s}, nil
	}
	return parseMediaType(s)
}

// parseMediaType is ParseContentType for any non-empty s.
func parseMediaType(s string) (ContentType, error) {
	media, params, err := mime.ParseMediaType(s)
	// ParseMediaType also accepts a bare token (a Content-Disposition
	// form), which is not a media type.
	if err != nil || !strings.Contains(media, "/") {
		return ContentType{}, errContentType
	}
	full := mime.FormatMediaType(media, params)
	if full == "" {
		return ContentType{}, errContentType
	}
	return ContentType{Full: full, Media: media}, nil
}

// simpleMediaType reports whether s is a lowercase type/subtype without
// parameters or spaces, which normalizes to itself.
func simpleMediaType(s string) bool {
	slash := strings.IndexByte(s, '/')
	if slash <= 0 || slash == len(s)-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == slash:
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// IsJSON reports whether c is application/json, whose streams keep message
// boundaries.
func (c ContentType) IsJSON() bool {
	return strings.EqualFold(c.Media, "application/json")
}

// IsText reports whether SSE can carry data of type c as text: text/* or
// application/json. SSE events cannot hold arbitrary bytes, so data of
// any other type is sent base64-encoded.
func (c ContentType) IsText() bool {
	return c.IsJSON() || (len(c.Media) > len("text/") && strings.EqualFold(c.Media[:len("text/")], "text/"))
}

// SameMedia reports whether c and d denote the same media type: the same
// type/subtype, ignoring case and parameters.
func (c ContentType) SameMedia(d ContentType) bool {
	return strings.EqualFold(c.Media, d.Media)
}
