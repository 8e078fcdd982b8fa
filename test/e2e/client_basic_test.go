package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/client"
)

// clientTimeout bounds each client test; the whole client suite should
// stay well under a minute.
const clientTimeout = 30 * time.Second

func startClientServer(t *testing.T, opts ...Option) (*Server, *client.Client, context.Context) {
	t.Helper()
	s := StartServer(t, BuildServer(t), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	t.Cleanup(cancel)
	return s, client.New(s.URL, client.WithRetry(client.RetryPolicy{MaxBackoff: 500 * time.Millisecond})), ctx
}

func TestClientLifecycle(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	st := c.Stream("client/life")

	if _, err := st.Head(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Head of a missing stream: %v, want ErrNotFound", err)
	}
	cr, err := st.Create(ctx, client.CreateOptions{ContentType: "text/plain", TTL: time.Hour})
	if err != nil || !cr.Created || cr.NextOffset == "" {
		t.Fatalf("Create = %+v, %v", cr, err)
	}
	if cr, err = st.Create(ctx, client.CreateOptions{ContentType: "text/plain", TTL: time.Hour}); err != nil || cr.Created {
		t.Fatalf("second Create = %+v, %v; want idempotent success", cr, err)
	}
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("Create with another config: %v, want ErrConflict", err)
	}
	var last client.AppendResult
	for _, s := range []string{"hello ", "durable ", "world"} {
		if last, err = st.Append(ctx, []byte(s), client.AppendOptions{}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	md, err := st.Head(ctx)
	if err != nil || md.NextOffset != last.NextOffset || md.ContentType != "text/plain" || md.TTL != time.Hour || md.Closed {
		t.Fatalf("Head = %+v, %v; want tail %s", md, err, last.NextOffset)
	}
	got, off := readAll(t, st.Read(ctx, client.ReadOptions{}))
	if got != "hello durable world" || off != last.NextOffset {
		t.Fatalf("read %q up to %s, want %q up to %s", got, off, "hello durable world", last.NextOffset)
	}
	if _, err := st.Append(ctx, []byte("x"), client.AppendOptions{Seq: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, []byte("y"), client.AppendOptions{Seq: "a"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("Append with a lower Stream-Seq: %v, want ErrConflict", err)
	}
	res, err := st.Close(ctx)
	if err != nil || !res.Closed {
		t.Fatalf("Close = %+v, %v", res, err)
	}
	if _, err := st.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Append(ctx, []byte("z"), client.AppendOptions{}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Append to a closed stream: %v, want ErrClosed", err)
	}
	// A live read of a closed stream ends with EOF after its data.
	r := st.Read(ctx, client.ReadOptions{Live: client.LiveAuto})
	got, _ = readAll(t, r)
	if got != "hello durable worldx" {
		t.Fatalf("live read of a closed stream = %q", got)
	}
	if err := st.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Head(ctx); !errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrGone) {
		t.Fatalf("Head after Delete: %v", err)
	}
}

// readAll reads r to io.EOF and returns the data and the final offset.
func readAll(t *testing.T, r *client.Reader) (string, string) {
	t.Helper()
	defer r.Close()
	var b strings.Builder
	for batch, err := range r.Batches() {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		b.Write(batch.Data)
	}
	return b.String(), r.Offset()
}

func TestClientJSONMessages(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	st := c.Stream("client/json")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json", InitialData: []byte(`[{"n":0}]`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendJSON(ctx, []int{1, 2}, client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, []byte(`[{"n":3},{"n":4}]`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for m, err := range st.Read(ctx, client.ReadOptions{}).Messages() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Data))
	}
	want := []string{`{"n":0}`, `[1,2]`, `{"n":3}`, `{"n":4}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("messages %v, want %v", got, want)
	}
	// offset=now without live: nothing, but the tail and up-to-date.
	r := st.Read(ctx, client.ReadOptions{Offset: client.OffsetNow})
	b, err := r.Next()
	if err != nil || len(b.Data) != 0 || !b.UpToDate || b.NextOffset == "" {
		t.Fatalf("read at now = %+v, %v", b, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after up to date: %v, want io.EOF", err)
	}
}

// TestClientLive follows a stream in each live mode: catch-up, then data
// appended while the reader waits, then resuming from a saved offset.
func TestClientLive(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t, WithLongPollTimeout(500*time.Millisecond))
	for _, tc := range []struct {
		name string
		ct   string
		live client.LiveMode
	}{
		{"long-poll", "application/json", client.LiveLongPoll},
		{"sse", "application/json", client.LiveSSE},
		{"auto-json", "application/json", client.LiveAuto},
		{"sse-binary", "application/octet-stream", client.LiveSSE},
		{"auto-binary", "application/octet-stream", client.LiveAuto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := c.Stream("client/live/" + tc.name)
			if _, err := st.Create(ctx, client.CreateOptions{ContentType: tc.ct}); err != nil {
				t.Fatal(err)
			}
			msg := func(i int) []byte {
				if tc.ct == "application/json" {
					return []byte(`{"i":` + strconv.Itoa(i) + `}`)
				}
				return []byte{byte(i), '\n', 0}
			}
			for i := range 3 {
				if _, err := st.Append(ctx, msg(i), client.AppendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// units splits a batch into the messages appended: JSON values,
			// or the fixed-size binary messages.
			units := func(b client.Batch) [][]byte {
				if tc.ct == "application/json" {
					msgs, err := b.JSONMessages()
					if err != nil {
						t.Fatal(err)
					}
					out := make([][]byte, len(msgs))
					for i, m := range msgs {
						out[i] = m
					}
					return out
				}
				var out [][]byte
				for d := b.Data; len(d) >= 3; d = d[3:] {
					out = append(out, d[:3])
				}
				return out
			}
			r := st.Read(ctx, client.ReadOptions{Live: tc.live})
			defer r.Close()
			var got [][]byte
			saved := ""
			sawUpToDate := false
			appended := 3
			for b, err := range r.Batches() {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, units(b)...)
				if b.UpToDate {
					sawUpToDate = true
				}
				if len(got) == 4 {
					saved = b.NextOffset
				}
				if len(got) == appended && appended < 6 {
					// Caught up: append while the reader is waiting live.
					go func(i int) {
						time.Sleep(100 * time.Millisecond)
						_, _ = st.Append(ctx, msg(i), client.AppendOptions{})
					}(appended)
					appended++
				}
				if len(got) == 6 {
					break
				}
			}
			for i, d := range got {
				if string(d) != string(msg(i)) {
					t.Fatalf("message %d = %q, want %q", i, d, msg(i))
				}
			}
			if !sawUpToDate {
				t.Errorf("no batch was up to date")
			}
			// Resume from the offset saved after message 3.
			if saved == "" {
				t.Fatal("no offset saved")
			}
			if _, err := st.Close(ctx); err != nil {
				t.Fatal(err)
			}
			var rest [][]byte
			for b, err := range st.Read(ctx, client.ReadOptions{Offset: saved, Live: tc.live}).Batches() {
				if err != nil {
					t.Fatal(err)
				}
				rest = append(rest, units(b)...)
			}
			if len(rest) != 2 || string(rest[0]) != string(msg(4)) || string(rest[1]) != string(msg(5)) {
				t.Fatalf("resumed read = %q, want messages 4 and 5", rest)
			}
		})
	}
}

// TestClientReconnect restarts the server while a reader is tailing it.
func TestClientReconnect(t *testing.T) {
	t.Parallel()
	s, c, ctx := startClientServer(t, WithLongPollTimeout(500*time.Millisecond))
	for _, live := range []client.LiveMode{client.LiveLongPoll, client.LiveSSE} {
		t.Run(live.String(), func(t *testing.T) {
			st := c.Stream("client/reconnect/" + live.String())
			if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.AppendJSON(ctx, 0, client.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			// A fresh handle, which does not know the content type yet.
			r := c.Stream(st.Path()).Read(ctx, client.ReadOptions{Live: live})
			defer r.Close()
			var got []string
			for m, err := range r.Messages() {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(m.Data))
				if len(got) == 1 {
					s.Restart(t)
					if _, err := st.AppendJSON(ctx, 1, client.AppendOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if len(got) == 2 {
					break
				}
			}
			if strings.Join(got, ",") != "0,1" {
				t.Fatalf("got %v, want [0 1]", got)
			}
		})
	}
}

func TestClientJSONBatchDecode(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	st := c.Stream("client/decode")
	if _, err := st.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		N int `json:"n"`
	}
	for i := range 3 {
		if _, err := st.AppendJSON(ctx, ev{i}, client.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := st.Read(ctx, client.ReadOptions{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := b.JSONMessages()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("JSONMessages = %d, %v", len(msgs), err)
	}
	var e ev
	if err := json.Unmarshal(msgs[2], &e); err != nil || e.N != 2 {
		t.Fatalf("message 2 = %s", msgs[2])
	}
}

func TestClientList(t *testing.T) {
	t.Parallel()
	_, c, ctx := startClientServer(t)
	for _, p := range []string{"list/c", "list/a", "lists", "list/b/x", "list/d"} {
		if _, err := c.Stream(p).Create(ctx, client.CreateOptions{ContentType: "text/plain", TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Stream("list/d").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for info, err := range c.List(ctx, client.ListOptions{Prefix: "list/", PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if info.ContentType != "text/plain" || info.TTL != time.Hour || info.CreatedAt.IsZero() {
			t.Errorf("entry %+v", info)
		}
		paths = append(paths, info.Path)
	}
	if strings.Join(paths, " ") != "list/a list/b/x list/c" {
		t.Fatalf("listed %q, want list/a list/b/x list/c (deleted and non-matching streams left out)", paths)
	}
}
