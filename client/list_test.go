package client

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestList pages through a fake listing of 5 streams, 2 per page.
func TestList(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		q := r.URL.Query()
		if r.URL.Path != DefaultListPath || q.Get("prefix") != "logs/" || q.Get("limit") != "2" {
			http.Error(w, `{"error":"BAD_REQUEST"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch q.Get("cursor") {
		case "":
			fmt.Fprint(w, `{"streams":[{"path":"logs/a","contentType":"text/plain","createdAt":"2026-01-02T03:04:05Z","ttlSeconds":60},{"path":"logs/b","contentType":"application/json","closed":true}],"nextCursor":"c1"}`)
		case "c1":
			fmt.Fprint(w, `{"streams":[{"path":"logs/c","expiresAt":"2027-01-01T00:00:00Z"},{"path":"logs/d","fork":true}],"nextCursor":"c2"}`)
		case "c2":
			fmt.Fprint(w, `{"streams":[{"path":"logs/e"}]}`)
		default:
			http.Error(w, `{"error":"BAD_REQUEST"}`, http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	c := New(srv.URL)
	ctx := testCtx(t)

	var got []StreamInfo
	for info, err := range c.List(ctx, ListOptions{Prefix: "logs/", PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info)
	}
	var paths []string
	for _, s := range got {
		paths = append(paths, s.Path)
	}
	if fmt.Sprint(paths) != "[logs/a logs/b logs/c logs/d logs/e]" || requests.Load() != 3 {
		t.Fatalf("listed %v in %d requests", paths, requests.Load())
	}
	want0 := StreamInfo{Path: "logs/a", ContentType: "text/plain", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), TTL: time.Minute}
	if !got[0].CreatedAt.Equal(want0.CreatedAt) || got[0].TTL != want0.TTL || got[0].ContentType != want0.ContentType {
		t.Errorf("first entry %+v, want %+v", got[0], want0)
	}
	if !got[1].Closed || got[2].ExpiresAt.Year() != 2027 || !got[3].Fork {
		t.Errorf("entries %+v", got[1:4])
	}

	// Stopping early fetches no further page.
	requests.Store(0)
	for range c.List(ctx, ListOptions{Prefix: "logs/", PageSize: 2}) {
		break
	}
	if requests.Load() != 1 {
		t.Errorf("an early break made %d requests, want 1", requests.Load())
	}

	// Errors end the sequence with a typed error.
	var n int
	for _, err := range c.List(ctx, ListOptions{Prefix: "other/"}) {
		n++
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
			t.Errorf("error %v, want an HTTPError with status 400", err)
		}
	}
	if n != 1 {
		t.Errorf("a failing listing yielded %d times, want 1", n)
	}
}
