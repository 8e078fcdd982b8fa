package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestSSEParse(t *testing.T) {
	t.Parallel()
	in := ": comment\r\n" +
		"event: data\r\n" +
		"data:[1,\n" +
		"data: 2]\n" +
		"\n" +
		"\n" + // blank lines between events are ignored
		"event:control\n" +
		"id: 7\n" +
		`data: {"streamNextOffset":"5"}` + "\n\n" +
		"data:  two spaces\n\n" +
		"event: data\n" // unterminated: EOF
	c := &sseConn{br: bufio.NewReaderSize(strings.NewReader(in), 16)} // small buffer: long lines in fragments
	want := []sseEvent{
		{"data", []byte("[1,\n2]")},
		{"control", []byte(`{"streamNextOffset":"5"}`)},
		{"message", []byte(" two spaces")},
	}
	for i, w := range want {
		ev, err := c.next()
		if err != nil || ev.name != w.name || string(ev.data) != string(w.data) {
			t.Fatalf("event %d = %q %q, %v; want %q %q", i, ev.name, ev.data, err, w.name, w.data)
		}
	}
	if _, err := c.next(); err != io.EOF {
		t.Fatalf("after the last event: %v, want io.EOF", err)
	}
}

func TestJoinPayloads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		json bool
		want string
	}{
		{nil, true, ""},
		{[]string{"[]"}, true, ""},
		{[]string{"[1]"}, true, "[1]"},
		{[]string{"[1,2]", "[]", "[ 3 ]"}, true, "[1,2,3]"},
		{[]string{"ab", "cd"}, false, "abcd"},
	} {
		var in [][]byte
		for _, s := range tc.in {
			in = append(in, []byte(s))
		}
		if got := string(joinPayloads(in, tc.json)); got != tc.want {
			t.Errorf("joinPayloads(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestReaderSSEReconnect serves an SSE stream that breaks after a data
// event whose control event never came: the Reader must drop that data
// and resume from the last confirmed offset, echoing the cursor.
func TestReaderSSEReconnect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "application/octet-stream")
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		n := len(queries)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Stream-SSE-Data-Encoding", "base64")
		switch n {
		case 1:
			fmt.Fprint(w, "event: data\ndata:YQ==\n\nevent: control\n"+`data:{"streamNextOffset":"1","streamCursor":"c1","upToDate":true}`+"\n\n")
			fmt.Fprint(w, "event: data\ndata:eA==\n\n") // "x", never confirmed
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, "event: data\ndata:Yg==\n\nevent: control\n"+`data:{"streamNextOffset":"2","upToDate":true,"streamClosed":true}`+"\n\n")
		}
	}))
	defer srv.Close()
	c := New(srv.URL, WithRetry(fastRetry))
	r := c.Stream("s").Read(testCtx(t), ReadOptions{Live: LiveSSE})
	var got []string
	for b, err := range r.Batches() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%s", b.Data, b.NextOffset))
	}
	if strings.Join(got, " ") != "a@1 b@2" {
		t.Fatalf("batches %v, want [a@1 b@2]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"offset=-1&live=sse", "offset=1&live=sse&cursor=c1", "offset=1&live=sse&cursor=c1"}
	if strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Fatalf("queries %q, want %q", queries, want)
	}
}

// TestReaderLongPoll walks a Reader through catch-up, a long-poll
// timeout, a transient error, new data and the end of the stream.
func TestReaderLongPoll(t *testing.T) {
	t.Parallel()
	type answer struct {
		status int
		body   string
		hdr    map[string]string
	}
	answers := []answer{
		{200, `[1,2]`, map[string]string{"Stream-Next-Offset": "2"}},
		{200, `[3]`, map[string]string{"Stream-Next-Offset": "3", "Stream-Up-To-Date": "true"}},
		{204, "", map[string]string{"Stream-Next-Offset": "3", "Stream-Up-To-Date": "true", "Stream-Cursor": "k"}},
		{502, "", nil},
		{200, `[4]`, map[string]string{"Stream-Next-Offset": "4", "Stream-Up-To-Date": "true"}},
		{204, "", map[string]string{"Stream-Next-Offset": "4", "Stream-Up-To-Date": "true", "Stream-Closed": "true"}},
	}
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		a := answers[len(queries)-1]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		for k, v := range a.hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()
	r := New(srv.URL, WithRetry(fastRetry)).Stream("s").Read(testCtx(t), ReadOptions{Live: LiveLongPoll})
	var got []string
	for m, err := range r.Messages() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%s/%v/%v", m.Data, m.NextOffset, m.LastInBatch, m.UpToDate))
	}
	want := "1@2/false/false 2@2/true/false 3@3/true/true 4@4/true/true"
	if strings.Join(got, " ") != want {
		t.Fatalf("messages %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	wantQ := []string{"offset=-1", "offset=2", "offset=3&live=long-poll", "offset=3&live=long-poll&cursor=k",
		"offset=3&live=long-poll&cursor=k", "offset=4&live=long-poll&cursor=k"}
	if strings.Join(queries, " ") != strings.Join(wantQ, " ") {
		t.Fatalf("queries %q, want %q", queries, wantQ)
	}
}

func TestReaderPermanentErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	r := New(srv.URL, WithRetry(fastRetry)).Stream("s").Read(testCtx(t), ReadOptions{Live: LiveAuto})
	if _, err := r.Next(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Next = %v, want ErrNotFound", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Next = %v, want the same error", err)
	}
	r2 := New(srv.URL).Stream("s").Read(testCtx(t), ReadOptions{})
	r2.Close()
	if _, err := r2.Next(); !errors.Is(err, errReaderClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}

// TestReaderAutoMode checks which live mode LiveAuto follows a stream
// with: SSE only for JSON, whose messages it carries exactly; text and
// binary long-poll, since SSE would change text (CRLF to LF, one leading
// space of a line dropped) and carries binary as base64.
func TestReaderAutoMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ct, body, live string
	}{
		{"text/plain; charset=utf-8", " indented\r\n  two", "long-poll"},
		{"application/octet-stream", "\x00 \r\n", "long-poll"},
		{"application/json", `[{"a":1}]`, "sse"},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var live []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				live = append(live, r.URL.Query().Get("live"))
				mu.Unlock()
				h := w.Header()
				h.Set("Stream-Up-To-Date", "true")
				switch r.URL.Query().Get("live") {
				case "":
					h.Set("Content-Type", tc.ct)
					h.Set("Stream-Next-Offset", "1")
					_, _ = io.WriteString(w, tc.body)
				case "sse":
					h.Set("Content-Type", "text/event-stream")
					fmt.Fprint(w, "event: control\n"+`data:{"streamNextOffset":"1","upToDate":true,"streamClosed":true}`+"\n\n")
				default:
					h.Set("Content-Type", tc.ct)
					h.Set("Stream-Next-Offset", "1")
					h.Set("Stream-Closed", "true")
					w.WriteHeader(http.StatusNoContent)
				}
			}))
			defer srv.Close()
			r := New(srv.URL, WithRetry(fastRetry)).Stream("s").Read(testCtx(t), ReadOptions{Live: LiveAuto})
			var got []byte
			for b, err := range r.Batches() {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, b.Data...)
			}
			if string(got) != tc.body {
				t.Fatalf("read %q, want %q", got, tc.body)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"", tc.live}; strings.Join(live, ",") != strings.Join(want, ",") {
				t.Fatalf("live modes of the requests %q, want %q", live, want)
			}
		})
	}
}
