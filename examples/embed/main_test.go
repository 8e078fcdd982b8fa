package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/httpcall"
)

func TestEmbed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- run(ctx, "127.0.0.1:0", t.TempDir(), lg, func(a net.Addr) { addrc <- a.String() }) }()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	streams := base + "/streams/v1/stream/"

	steps := []struct {
		method, url, body string
		header            []string
		want              int
	}{
		{"PUT", streams + "announcements", "", []string{"Content-Type", "application/json"}, 201},
		{"POST", streams + "announcements", `{"text":"hi"}`, []string{"Content-Type", "application/json"}, 403},
		{"POST", streams + "announcements", `{"text":"hi"}`, []string{"Content-Type", "application/json", "X-Role", "editor"}, 204},
		{"PUT", streams + "chat", "hello", []string{"Content-Type", "text/plain"}, 201},
		{"DELETE", streams + "chat", "", nil, 204},
		{"POST", streams + "__registry__", `{}`, []string{"Content-Type", "application/json"}, 403},
	}
	for i, s := range steps {
		status, body := do(t, s.method, s.url, s.body, s.header...)
		if status != s.want {
			t.Fatalf("step %d: %s %s: %d %s, want %d", i, s.method, s.url, status, body, s.want)
		}
	}

	// Hooks run off the request path: poll until they have.
	var stats struct{ Appends int }
	var events []struct{ Type, Path string }
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := do(t, "GET", base+"/stats", "")
		if err := json.Unmarshal([]byte(body), &stats); err != nil {
			t.Fatal(err)
		}
		_, body = do(t, "GET", streams+"__registry__?offset=-1", "")
		if err := json.Unmarshal([]byte(body), &events); err != nil {
			t.Fatal(err)
		}
		if (stats.Appends == 2 && len(events) == 3) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stats.Appends != 2 {
		t.Errorf("appends = %d, want 2 (the announcement and the chat's initial data)", stats.Appends)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.Path)
	}
	if want := "created announcements,created chat,deleted chat"; strings.Join(got, ",") != want {
		t.Errorf("registry %q, want %q", got, want)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func do(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	r := httpcall.Do(t, method, url, body, header...)
	return r.Status, r.Body
}
