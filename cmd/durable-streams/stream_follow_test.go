package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonlLines decodes --jsonl output.
func jsonlLines(t *testing.T, out string) []jsonLine {
	t.Helper()
	var lines []jsonLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var jl jsonLine
		if err := json.Unmarshal([]byte(l), &jl); err != nil || jl.Offset == "" {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, jl)
	}
	return lines
}

func TestStreamCountAndJSONL(t *testing.T) {
	streamServer(t)
	ds(t, "", "stream", "create", "f/j", "--json")
	ds(t, "", "stream", "append", "f/j", "-e", "1", "-e", "2")
	ds(t, "", "stream", "append", "f/j", "-e", "3", "-e", `{"four":4}`)
	_, tail, _ := ds(t, "", "stream", "append", "f/j", "-e", `"five"`)
	tail = strings.TrimSpace(tail)

	code, out, errs := ds(t, "", "stream", "get", "f/j", "--jsonl")
	lines := jsonlLines(t, out)
	if code != exitOK || len(lines) != 5 || string(lines[3].Data) != `{"four":4}` || lines[4].Offset != tail {
		t.Fatalf("get --jsonl: %d %q %s", code, out, errs)
	}
	// -n stops after n messages. The catch-up read answers all five in
	// one batch, so the next offset lies after the messages left out,
	// and says so.
	code, out, errs = ds(t, "", "stream", "get", "f/j", "-n", "4", "--output", "lines")
	if code != exitOK || out != "1\n2\n3\n{\"four\":4}\n" || !strings.Contains(errs, "next offset: "+tail+" (after 1 more messages of the last batch, not printed)") {
		t.Errorf("get -n 4: %d %q %q", code, out, errs)
	}
	code, out, errs = ds(t, "", "stream", "get", "f/j", "-n", "5")
	if code != exitOK || out != `[1,2,3,{"four":4},"five"]`+"\n" || errs != "next offset: "+tail+"\n" {
		t.Errorf("get -n 5: %d %q %q", code, out, errs)
	}
	for _, bad := range [][]string{{"-n", "-1"}, {"--output", "xml"}, {"--jsonl", "--json-lines"}, {"--jsonl", "--output", "raw"}} {
		if code, _, _ := ds(t, "", append([]string{"stream", "get", "f/j"}, bad...)...); code != exitUsage {
			t.Errorf("get %q: exit %d, want %d", bad, code, exitUsage)
		}
	}

	// tail -n stops on its own, from the start.
	code, out, _ = ds(t, "", "stream", "tail", "f/j", "-n", "2", "--jsonl")
	if lines := jsonlLines(t, out); code != exitOK || len(lines) != 2 || string(lines[1].Data) != "2" {
		t.Errorf("tail -n 2 --jsonl: %d %q", code, out)
	}

	// subscribe starts at the tail: it sees only what comes later. It
	// connects at some moment during the appends: whatever it prints are
	// two consecutive values of them.
	done := make(chan struct{})
	var sout, serr string
	go func() {
		defer close(done)
		code, sout, serr = ds(t, "", "stream", "subscribe", "f/j", "-n", "2", "--output", "jsonl")
	}()
	appendUntil(t, done, "f/j", 6)
	lines = jsonlLines(t, sout)
	if code != exitOK || len(lines) != 2 || !strings.Contains(serr, "next offset: ") {
		t.Fatalf("subscribe -n 2: %d %q %q", code, sout, serr)
	}
	if a, err1 := strconv.Atoi(string(lines[0].Data)); err1 != nil || a < 6 || string(lines[1].Data) != strconv.Itoa(a+1) {
		t.Errorf("subscribe -n 2 printed %q, want two consecutive values appended after it started", sout)
	}

	// Text streams: chunks, with their text as a JSON string.
	ds(t, "", "stream", "create", "f/t", "--content-type", "text/plain")
	ds(t, "", "stream", "append", "f/t", "-m", "line one\n")
	code, out, _ = ds(t, "", "stream", "tail", "f/t", "-n", "1", "--jsonl")
	if lines := jsonlLines(t, out); code != exitOK || len(lines) != 1 || string(lines[0].Data) != `"line one\n"` {
		t.Errorf("tail of text --jsonl: %d %q", code, out)
	}
	if code, out, _ := ds(t, "", "stream", "tail", "f/t", "-n", "1", "--output", "raw"); code != exitOK || out != "line one\n" {
		t.Errorf("tail of text --output raw: %d %q", code, out)
	}
	// An interrupted subscribe exits 130, as tail does.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if code, out, _ := dsCtx(ctx, t, "", "stream", "subscribe", "f/t"); code != exitInterrupted || out != "" {
		t.Errorf("interrupted subscribe: %d %q", code, out)
	}
}

func TestStreamAppendCreate(t *testing.T) {
	streamServer(t)
	// A server given by URL: no stream is created unasked.
	if code, _, _ := ds(t, "", "stream", "append", "new/a", "-e", "1"); code != exitNotFound {
		t.Errorf("append to a missing stream: exit %d, want %d", code, exitNotFound)
	}
	for _, tc := range []struct {
		path string
		args []string
		ct   string
		out  string
	}{
		{"new/json", []string{"-e", `{"a":1}`}, "application/json", "[{\"a\":1}]\n"},
		{"new/bytes", []string{"-m", "hi"}, "application/octet-stream", "hi"},
		{"new/text", []string{"--content-type", "text/plain", "-m", "hi"}, "text/plain", "hi"},
		{"new/jsonm", []string{"--json", "-m", "hi"}, "application/json", "[\"hi\"]\n"},
	} {
		code, _, errs := ds(t, "", append([]string{"stream", "append", tc.path, "--create"}, tc.args...)...)
		if code != exitOK || !strings.Contains(errs, "created stream "+tc.path) {
			t.Errorf("append --create %s: %d %q", tc.path, code, errs)
			continue
		}
		_, md, _ := ds(t, "", "stream", "head", tc.path, "--json")
		if !strings.Contains(md, `"contentType":"`+tc.ct) {
			t.Errorf("%s: head %s, want content type %s", tc.path, md, tc.ct)
		}
		if _, out, _ := ds(t, "", "stream", "get", tc.path); out != tc.out {
			t.Errorf("%s: get %q, want %q", tc.path, out, tc.out)
		}
	}
	// An existing stream is appended to as it is, without a notice.
	code, _, errs := ds(t, "", "stream", "append", "new/json", "--create", "-e", "2")
	if code != exitOK || strings.Contains(errs, "created") {
		t.Errorf("append --create to an existing stream: %d %q", code, errs)
	}
	if code, _, _ := ds(t, "", "stream", "append", "new/x", "--create", "--json", "--content-type", "text/plain", "-m", "x"); code != exitUsage {
		t.Errorf("--json with --content-type text/plain: exit %d", code)
	}
}

func TestWithPort(t *testing.T) {
	for _, tc := range []struct {
		addr string
		port int
		want string
	}{
		{"127.0.0.1:4437", -1, "127.0.0.1:4437"},
		{"127.0.0.1:4437", 8080, "127.0.0.1:8080"},
		{"0.0.0.0:4437", 9000, "0.0.0.0:9000"},
		{"[::1]:4437", 1, "[::1]:1"},
		{"127.0.0.1:4437", 0, "127.0.0.1:0"},
		{"127.0.0.1:4437", 65536, ""},
		{"127.0.0.1:4437", -2, ""},
		{"nonsense", 80, ""},
	} {
		got, err := withPort(tc.addr, tc.port)
		if (tc.want == "") != (err != nil) || got != tc.want {
			t.Errorf("withPort(%q, %d) = %q, %v; want %q", tc.addr, tc.port, got, err, tc.want)
		}
	}
}

// TestServerRun runs "server run --port" in the process: the foreground
// server of serve, on the port given, until its context ends.
func TestServerRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"server", "run", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--log-level", "error"}, io.Discard, io.Discard)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); !probeReady(ctx, base); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server run --port %d not ready", port)
		}
	}
	cancel()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("server run: exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server run did not stop")
	}
}

// appendUntil appends the JSON numbers from, from+1, ... to path, one per
// append, until done is closed.
func appendUntil(t *testing.T, done <-chan struct{}, path string, from int) {
	t.Helper()
	for i := from; ; i++ {
		if code, _, errs := ds(t, "", "stream", "append", path, "-e", strconv.Itoa(i)); code != exitOK {
			t.Fatalf("append %d: %d %s", i, code, errs)
		}
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
