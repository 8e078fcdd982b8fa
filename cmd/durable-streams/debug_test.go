package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestServeDebug(t *testing.T) {
	addr, stop, err := serveDebug("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/debug/pprof/", http.StatusOK, "goroutine"},
		{"/debug/pprof/cmdline", http.StatusOK, ""},
		{"/v1/stream/x", http.StatusNotFound, ""},
	} {
		resp, err := http.Get("http://" + addr.String() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s: %d %.80q, want %d containing %q", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
	}
	if _, _, err := serveDebug(addr.String(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a second listener on the same address started")
	}
}
