package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/cache"
)

// ListRoute lists streams:
//
//	GET /v1/streams?prefix=<path prefix>&limit=<1..1000, default 100>&cursor=<nextCursor>
//
// The answer is {"streams":[...],"nextCursor":"..."} in path order (byte
// order); nextCursor is absent on the last page. Deleted streams are not
// listed. With access control on, it needs the admin scope.
const ListRoute = "/v1/streams"

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// StreamEntry is one stream in a listing.
type StreamEntry struct {
	Path        string     `json:"path"`
	ContentType string     `json:"contentType"`
	CreatedAt   time.Time  `json:"createdAt"`
	Closed      bool       `json:"closed"`
	TTLSeconds  int64      `json:"ttlSeconds,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	Fork        bool       `json:"fork,omitempty"`
}

// StreamList is the answer of ListRoute.
type StreamList struct {
	Streams    []StreamEntry `json:"streams"`
	NextCursor string        `json:"nextCursor,omitempty"`
}

// cursors are the last path of a page, base64url-encoded so that any path
// travels safely in a query string; clients treat them as opaque.
func encodeCursor(path string) string { return base64.RawURLEncoding.EncodeToString([]byte(path)) }

func decodeCursor(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err == nil && len(b) > 0
}

func (a *API) listStreams(c echo.Context) error {
	cache.SetNoStore(c.Response().Header())
	q := c.Request().URL.Query()
	for k := range q {
		if k != "prefix" && k != "limit" && k != "cursor" {
			return badRequest("unknown query parameter " + strconv.Quote(k) + " (use prefix, limit, cursor)")
		}
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return badRequest("limit must be an integer from 1 to " + strconv.Itoa(maxListLimit))
		}
		limit = n
	}
	var after string
	if s, ok := q["cursor"]; ok {
		var valid bool
		if after, valid = decodeCursor(s[0]); !valid {
			return badRequest("cursor is not a nextCursor of an earlier page")
		}
	}
	// One row more than asked tells whether another page follows.
	rows, err := a.opt.Catalog.ListLive(c.Request().Context(), q.Get("prefix"), after, limit+1)
	if err != nil {
		return err
	}
	out := StreamList{Streams: make([]StreamEntry, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = encodeCursor(rows[limit-1].Path)
	}
	for _, r := range rows {
		e := StreamEntry{Path: r.Path, ContentType: r.ContentType, CreatedAt: r.CreatedAt.UTC(),
			Closed: r.Closed, TTLSeconds: int64(r.TTL / time.Second), Fork: r.ParentID != 0}
		if !r.ExpiresAt.IsZero() {
			t := r.ExpiresAt.UTC()
			e.ExpiresAt = &t
		}
		out.Streams = append(out.Streams, e)
	}
	return c.JSON(http.StatusOK, out)
}
