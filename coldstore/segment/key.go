package segment

import (
	"fmt"
	"strconv"
	"strings"
)

// ObjectKey is the key of the object of segment seg of stream:
// "<stream id>/<segment, 16 digits>.seg" below the store's prefix. All
// objects of a stream share the prefix [StreamPrefix], which is how the
// objects of a deleted stream are found.
func ObjectKey(stream, seg int64) string { return fmt.Sprintf("%d/%016d.seg", stream, seg) }

// StreamPrefix is the key prefix of every object of stream.
func StreamPrefix(stream int64) string { return strconv.FormatInt(stream, 10) + "/" }

// ParseObjectKey returns the stream id and segment number of a key made by
// [ObjectKey], and false for any other key.
func ParseObjectKey(key string) (stream, seg int64, ok bool) {
	id, name, found := strings.Cut(key, "/")
	if !found {
		return 0, 0, false
	}
	name, found = strings.CutSuffix(name, ".seg")
	if !found {
		return 0, 0, false
	}
	stream, err1 := strconv.ParseInt(id, 10, 64)
	seg, err2 := strconv.ParseInt(name, 10, 64)
	if err1 != nil || err2 != nil || stream <= 0 || seg < 0 || ObjectKey(stream, seg) != key {
		return 0, 0, false
	}
	return stream, seg, true
}
