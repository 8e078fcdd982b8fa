package server

import (
	"github.com/streamtier/durable-streams/internal/httpcall"

	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/api"
)

func TestListStreams(t *testing.T) {
	_, hs := startServer(t, Config{})
	st := hs.URL + "/v1/stream/"
	var want []string
	for i := range 25 {
		p := fmt.Sprintf("logs/%02d", i)
		httpcall.Do(t, "PUT", st+p, "", "Content-Type", "text/plain").Want(t, 201)
		if i%5 == 0 {
			httpcall.Do(t, "DELETE", st+p, "").Want(t, 204)
			continue
		}
		want = append(want, p)
	}
	httpcall.Do(t, "PUT", st+"logs/07.fork", "", "Stream-Forked-From", "/v1/stream/logs/07").Want(t, 201)
	httpcall.Do(t, "DELETE", st+"logs/07", "").Want(t, 204) // soft-deleted: still there for the fork, not listed
	want = slices.DeleteFunc(want, func(p string) bool { return p == "logs/07" })
	want = append(want, "logs/07.fork")
	slices.Sort(want)
	httpcall.Do(t, "PUT", st+"other", "", "Content-Type", "application/json", "Stream-TTL", "3600").Want(t, 201)
	httpcall.Do(t, "PUT", st+"logsx", "", "Content-Type", "text/plain").Want(t, 201)

	var got []string
	cursor, pages := "", 0
	for {
		q := url.Values{"prefix": {"logs/"}, "limit": {"7"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page api.StreamList
		body := httpcall.Do(t, "GET", hs.URL+api.ListRoute+"?"+q.Encode(), "").Want(t, 200).Body
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Streams) > 7 {
			t.Fatalf("page of %d", len(page.Streams))
		}
		for _, s := range page.Streams {
			got = append(got, s.Path)
			if s.CreatedAt.IsZero() || (s.Path != "logs/07.fork" && s.ContentType != "text/plain") {
				t.Errorf("entry %+v", s)
			}
			if s.Fork != (s.Path == "logs/07.fork") {
				t.Errorf("entry %+v: fork flag", s)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("listed %q in %d pages, want %q in 3", got, pages, want)
	}

	// Without a prefix, everything live; fields of a stream with a TTL.
	var all api.StreamList
	body := httpcall.Do(t, "GET", hs.URL+api.ListRoute, "").Want(t, 200).Body
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Streams) != len(want)+2 || all.NextCursor != "" {
		t.Fatalf("unfiltered listing: %d streams, cursor %q", len(all.Streams), all.NextCursor)
	}
	last := all.Streams[len(all.Streams)-1]
	if last.Path != "other" || last.TTLSeconds != 3600 || last.ContentType != "application/json" {
		t.Errorf("entry %+v", last)
	}
	if !strings.Contains(body, `"closed":false`) {
		t.Errorf("closed flag missing in %s", body)
	}
}

func TestListStreamsBadRequests(t *testing.T) {
	_, hs := startServer(t, Config{})
	tests := []struct{ query, msg string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=x", "limit"},
		{"cursor=***", "cursor"},
		{"cursor=", "cursor"},
		{"after=a", "unknown query parameter"},
	}
	for _, tt := range tests {
		r := httpcall.Do(t, "GET", hs.URL+api.ListRoute+"?"+tt.query, "").Want(t, 400)
		if code, msg := r.ErrorBody(t); code != "BAD_REQUEST" || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %q %q", tt.query, code, msg)
		}
	}
	httpcall.Do(t, "POST", hs.URL+api.ListRoute, "").Want(t, 405)
}
