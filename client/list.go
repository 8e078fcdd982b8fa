package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DefaultListPath is the URL path of the server's stream listing.
const DefaultListPath = "/v1/streams"

// maxListBody bounds a listing page the client will read: a full page of
// 1,000 entries with long paths is far below it.
const maxListBody = 16 << 20

// StreamInfo describes one stream in a listing.
type StreamInfo struct {
	Path        string
	ContentType string
	CreatedAt   time.Time
	Closed      bool
	TTL         time.Duration // 0 if none
	ExpiresAt   time.Time     // zero if none
	Fork        bool          // the stream was forked from another
}

// ListOptions selects the streams List returns.
type ListOptions struct {
	// Prefix keeps the streams whose path starts with it ("" for all).
	Prefix string
	// PageSize is how many streams one request asks for (1 to 1,000;
	// 0 means the server's default, 100).
	PageSize int
}

// List returns the live streams whose path starts with opts.Prefix, in
// path (byte) order, fetching pages as the loop consumes them. The server
// answers only to the admin scope when access control is on. An error
// ends the sequence:
//
//	for info, err := range c.List(ctx, client.ListOptions{Prefix: "logs/"}) {
//		if err != nil { ... }
//		fmt.Println(info.Path)
//	}
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[StreamInfo, error] {
	return func(yield func(StreamInfo, error) bool) {
		cursor := ""
		for {
			page, next, err := c.listPage(ctx, opts, cursor)
			if err != nil {
				yield(StreamInfo{}, err)
				return
			}
			for _, s := range page {
				if !yield(s, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// listPage fetches one page of the listing after cursor ("" for the
// first) and returns it with the cursor of the next page ("" on the last).
func (c *Client) listPage(ctx context.Context, opts ListOptions, cursor string) ([]StreamInfo, string, error) {
	q := url.Values{}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.PageSize != 0 {
		q.Set("limit", strconv.Itoa(opts.PageSize))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	u := c.base + DefaultListPath
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u, idempotent: true})
	if err != nil {
		return nil, "", fmt.Errorf("list streams: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Streams []struct {
			Path        string     `json:"path"`
			ContentType string     `json:"contentType"`
			CreatedAt   time.Time  `json:"createdAt"`
			Closed      bool       `json:"closed"`
			TTLSeconds  int64      `json:"ttlSeconds"`
			ExpiresAt   *time.Time `json:"expiresAt"`
			Fork        bool       `json:"fork"`
		} `json:"streams"`
		NextCursor string `json:"nextCursor"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&body); err != nil {
		return nil, "", fmt.Errorf("list streams: bad response: %w", err)
	}
	out := make([]StreamInfo, len(body.Streams))
	for i, s := range body.Streams {
		out[i] = StreamInfo{Path: s.Path, ContentType: s.ContentType, CreatedAt: s.CreatedAt, Closed: s.Closed,
			TTL: time.Duration(s.TTLSeconds) * time.Second, Fork: s.Fork}
		if s.ExpiresAt != nil {
			out[i].ExpiresAt = *s.ExpiresAt
		}
	}
	if body.NextCursor == cursor && cursor != "" {
		return nil, "", fmt.Errorf("list streams: the server repeated cursor %q", cursor)
	}
	return out, body.NextCursor, nil
}
