package segment

import (
	"context"
	"fmt"
)

// TailFetch is how many bytes at the end of an object NewReader fetches
// first. It holds the footer of objects of up to about 13 MiB of body
// (with the default stride and a short content type), so that for them
// one fetch yields the whole index.
const TailFetch = 64 << 10

// Fetch reads length bytes at offset off of an object, as one ranged GET.
// It must return exactly length bytes (fewer is treated as a truncated
// object) in a slice that the caller may keep: the messages a Reader
// returns point into it.
type Fetch func(ctx context.Context, off, length int64) ([]byte, error)

// Reader serves reads of one object through ranged fetches. NewReader
// fetches the footer once; each Read then costs one fetch (none for
// objects small enough to have come whole with the first fetch). A Reader
// is safe for concurrent use if its fetch function is.
type Reader struct {
	ix    *Index
	fetch Fetch
	// body holds the whole body when the first fetch brought it along.
	body []byte
}

// NewReader reads and verifies the footer of an object of size bytes: one
// fetch of the last min(size, TailFetch) bytes, and a second one of the
// rest of the footer if the index is larger than that.
func NewReader(ctx context.Context, fetch func(ctx context.Context, off, length int64) ([]byte, error), size int64) (*Reader, error) {
	if size < MinObjectSize {
		return nil, corrupt("object of %d bytes, need at least %d", size, MinObjectSize)
	}
	n := min(size, TailFetch)
	tail, err := get(ctx, fetch, size-n, n)
	if err != nil {
		return nil, err
	}
	t, err := ParseTrailer(tail, size)
	if err != nil {
		return nil, err
	}
	if need := t.TailLen(); need > n {
		more, err := get(ctx, fetch, t.FooterOff, need-n)
		if err != nil {
			return nil, err
		}
		tail = append(more, tail...)
	}
	foot := tail[int64(len(tail))-t.TailLen():]
	ix, err := parseFooter(t, foot)
	if err != nil {
		return nil, err
	}
	r := &Reader{ix: ix, fetch: fetch}
	if n == size {
		r.body = tail[ix.BodyOff:ix.BodyEnd]
	}
	return r, nil
}

// Index returns the object's index. It must not be modified.
func (r *Reader) Index() *Index { return r.ix }

// Read returns the messages overlapping [from, limit) within budget bytes,
// with the semantics of [Index.DecodeRange], fetching the one body range
// that [Index.Locate] names. Every block decoded is verified against its
// checksum. The returned Data slices point into the fetched buffer.
func (r *Reader) Read(ctx context.Context, from, limit int64, budget int) ([]Message, error) {
	off, end := r.ix.Locate(from, limit, budget)
	if off == end {
		return []Message{}, nil
	}
	var buf []byte
	if r.body != nil {
		buf = append([]byte(nil), r.body[off-r.ix.BodyOff:end-r.ix.BodyOff]...)
	} else {
		var err error
		if buf, err = get(ctx, r.fetch, off, end-off); err != nil {
			return nil, err
		}
	}
	msgs, err := r.ix.DecodeRange(buf, off, from, limit, budget)
	if err != nil {
		h := r.ix.Header
		return nil, fmt.Errorf("stream %d segment %d at %d: %w", h.StreamID, h.Segment, from, err)
	}
	return msgs, nil
}

func get(ctx context.Context, fetch Fetch, off, n int64) ([]byte, error) {
	b, err := fetch(ctx, off, n)
	if err != nil {
		return nil, fmt.Errorf("segment: fetch [%d, %d): %w", off, off+n, err)
	}
	if int64(len(b)) != n {
		return nil, corrupt("fetch [%d, %d) returned %d bytes", off, off+n, len(b))
	}
	return b, nil
}
