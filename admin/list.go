package admin

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// Limits of a page of ListSegments and ClusterLeases.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Filter selects rows of the admin index. Empty fields do not filter.
type Filter struct {
	StreamPath string // exactly this stream
	Prefix     string // streams whose path starts with this (byte-wise)
	State      string // "sealed" or "uploaded" (StateSealed, StateUploaded)
	After      string // cursor: Page.Next of the previous page
	Limit      int    // page size: default DefaultLimit, at most MaxLimit
}

// Segment is one row of the admin index with its stream's path.
type Segment struct {
	StreamID int64 `json:"stream_id"`
	// Stream is the stream's path; "" once the stream is deleted for real
	// (its rows stay until the collector has removed its objects).
	Stream      string `json:"stream"`
	StreamState string `json:"stream_state"` // StreamLive, StreamSoftDeleted or StreamDeleted
	Seg         int64  `json:"seg"`
	FirstPos    int64  `json:"first_pos"` // byte position of the first message
	EndPos      int64  `json:"end_pos"`   // byte position just past the last message
	// Bytes is the object's size once uploaded; while sealed, the size of
	// the messages' data in the hot log.
	Bytes     int64         `json:"bytes"`
	Messages  int64         `json:"messages"`
	ObjectKey string        `json:"object_key"`
	Checksum  uint32        `json:"checksum"` // CRC32C of the object; 0 until uploaded
	CreatedAt time.Time     `json:"created_at"`
	State     segment.State `json:"state"`
}

// Page is one page of ListSegments, in (stream id, segment) order.
type Page struct {
	Segments []Segment `json:"segments"`
	// Next is the cursor of the next page (Filter.After); empty on the last.
	Next string `json:"next,omitempty"`
}

// ListSegments returns one page of the admin index joined with the stream
// directory.
func (s *Service) ListSegments(ctx context.Context, f Filter) (Page, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return Page{}, err
	}
	cf := catalog.SegmentFilter{StreamPath: f.StreamPath, Prefix: f.Prefix, State: segment.State(f.State), Limit: limit + 1}
	if !cf.State.Valid() && cf.State != "" {
		return Page{}, invalid("unknown state %q (want %s or %s)", f.State, StateSealed, StateUploaded)
	}
	if f.After != "" {
		key, err := decodeCursor(f.After, segmentCursor, 2)
		if err != nil {
			return Page{}, err
		}
		cf.After = &[2]int64{key[0], key[1]}
	}
	rows, err := s.cat.ListSegments(ctx, cf)
	if err != nil {
		return Page{}, fmt.Errorf("admin: list segments: %w", err)
	}
	page := Page{Segments: make([]Segment, 0, len(rows))}
	for _, r := range rows {
		page.Segments = append(page.Segments, Segment{StreamID: r.StreamID, Stream: r.Path,
			StreamState: streamState(r.StreamExists, r.SoftDeleted), Seg: r.Seg, FirstPos: r.FirstPos, EndPos: r.EndPos,
			Bytes: r.Bytes, Messages: r.Messages, ObjectKey: r.ObjectKey, Checksum: r.Checksum,
			CreatedAt: r.CreatedAt.UTC(), State: r.State})
	}
	if len(page.Segments) > limit {
		page.Segments = page.Segments[:limit]
		last := page.Segments[limit-1]
		page.Next = encodeCursor(segmentCursor, last.StreamID, last.Seg)
	}
	return page, nil
}

// pageLimit is the size of a page asked for with limit: DefaultLimit for
// 0, at most MaxLimit.
func pageLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, invalid("negative limit %d", limit)
	case limit == 0:
		return DefaultLimit, nil
	}
	return min(limit, MaxLimit), nil
}

// Cursors are the last key of a page, numbers prefixed with a version that
// names the list; they are encoded so that clients treat them as opaque.
const (
	segmentCursor = "s1" // (stream id, segment) of ListSegments
	leaseCursor   = "l1" // stream id of ClusterLeases
)

func encodeCursor(version string, key ...int64) string {
	b := []byte(version)
	for _, k := range key {
		b = strconv.AppendInt(append(b, ':'), k, 10)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the n numbers of a cursor of the given version.
func decodeCursor(c, version string, n int) ([]int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, invalid("malformed cursor")
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != n+1 || parts[0] != version {
		return nil, invalid("malformed cursor")
	}
	key := make([]int64, n)
	for i, p := range parts[1:] {
		if key[i], err = strconv.ParseInt(p, 10, 64); err != nil {
			return nil, invalid("malformed cursor")
		}
	}
	return key, nil
}
