package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/client"
)

// listPage is one page of GET /v1/streams (api.StreamList), with the
// entries kept raw so --json prints what the server said.
type listPage struct {
	Streams    []json.RawMessage `json:"streams"`
	NextCursor string            `json:"nextCursor"`
}

func listCommand(fs *flag.FlagSet) streamCommand {
	var prefix string
	var limit int
	var asJSON bool
	fs.StringVar(&prefix, "prefix", "", "only streams whose path starts with this")
	fs.IntVar(&limit, "limit", 0, "page size asked of the server (default: the server's)")
	fs.BoolVar(&asJSON, "json", false, "one JSON object a line, as the server describes each stream")
	return streamCommand{run: func(ctx context.Context, e *streamEnv, _ []string) error {
		if limit < 0 {
			return usageError{errors.New("--limit must not be negative")}
		}
		var tw *tabwriter.Writer
		if !asJSON {
			tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tCONTENT TYPE\tCLOSED\tCREATED")
		}
		q := url.Values{}
		if prefix != "" {
			q.Set("prefix", strings.TrimLeft(prefix, "/"))
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		seen := map[string]bool{}
		for {
			page, err := e.listPage(ctx, q)
			if err != nil {
				return err
			}
			for _, raw := range page.Streams {
				if asJSON {
					fmt.Fprintf(e.stdout, "%s\n", raw)
					continue
				}
				var se api.StreamEntry
				if err := json.Unmarshal(raw, &se); err != nil {
					return fmt.Errorf("list: bad answer: %w", err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", se.Path, se.ContentType, se.Closed, se.CreatedAt.Local().Format(time.DateTime))
			}
			if page.NextCursor == "" {
				break
			}
			if seen[page.NextCursor] {
				return fmt.Errorf("list: the server repeated cursor %q", page.NextCursor)
			}
			seen[page.NextCursor] = true
			q.Set("cursor", page.NextCursor)
		}
		if tw != nil {
			return tw.Flush()
		}
		return nil
	}}
}

// listPage fetches one page of the listing. The client package has no
// listing call, so this is the one request the CLI makes itself.
func (e *streamEnv) listPage(ctx context.Context, q url.Values) (*listPage, error) {
	u := strings.TrimRight(e.base, "/") + api.ListRoute
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		he := &client.HTTPError{Status: resp.StatusCode, Header: resp.Header}
		var js struct {
			Code    string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &js) == nil {
			he.Code, he.Message = js.Code, js.Message
		}
		if resp.StatusCode == http.StatusNotFound {
			// Not a missing stream: the server has no listing endpoint.
			return nil, fmt.Errorf("list: %v (does this server support GET /v1/streams?)", he)
		}
		return nil, fmt.Errorf("list: %w", he)
	}
	var page listPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("list: bad answer: %w", err)
	}
	return &page, nil
}
