package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/servertest"
	"github.com/streamtier/durable-streams/server"
)

// streamServer starts a server behind httptest and points the stream
// commands at it through DURABLE_STREAMS_URL.
func streamServer(t *testing.T) string {
	t.Helper()
	_, ts := servertest.Start(t, server.Config{LongPollTimeout: time.Second}, servertest.IgnoreCloseError())
	t.Setenv("DURABLE_STREAMS_URL", ts.URL)
	t.Setenv("DURABLE_STREAMS_TOKEN", "")
	return ts.URL
}

// ds runs the command line with stdin; it returns the exit status and
// output.
func ds(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return dsCtx(t.Context(), t, stdin, args...)
}

func dsCtx(ctx context.Context, t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWithInput(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestStreamExitCodes(t *testing.T) {
	streamServer(t)
	for _, step := range []struct {
		stdin string
		args  []string
		want  int
	}{
		{"", []string{"stream", "create", "s/j", "--json"}, exitOK},
		{"", []string{"stream", "create", "s/j", "--json"}, exitOK},
		{"", []string{"stream", "create", "s/j", "--content-type", "text/plain"}, exitConflict},
		{"", []string{"stream", "get", "nope"}, exitNotFound},
		{"", []string{"stream", "head", "nope"}, exitNotFound},
		{"", []string{"stream", "delete", "nope"}, exitNotFound},
		{"", []string{"stream", "append", "nope", "-m", "x"}, exitNotFound},
		{"", []string{"stream", "get"}, exitUsage},
		{"", []string{"stream", "get", "a", "b"}, exitUsage},
		{"", []string{"stream", "get", "/"}, exitUsage},
		{"", []string{"stream", "bogus"}, exitUsage},
		{"", []string{"stream", "get", "s/j", "--bogus"}, exitUsage},
		{"", []string{"stream", "get", "s/j", "--url", "ftp://x"}, exitUsage},
		{"", []string{"stream", "get", "s/j", "--offset", "garbage"}, exitUsage}, // the server's 400
		{"", []string{"stream", "create", "s/t", "--ttl", "soon"}, exitUsage},
		{"", []string{"stream", "create", "s/t", "--expires-at", "tomorrow"}, exitUsage},
		{"", []string{"stream", "create", "s/t", "--ttl", "60", "--expires-at", "2030-01-01T00:00:00Z"}, exitUsage},
		{"", []string{"stream", "append", "s/j", "-e", "{bad"}, exitUsage},
		{"not json", []string{"stream", "append", "s/j"}, exitUsage},
		{"", []string{"stream", "append", "s/j"}, exitUsage}, // empty input
		{"", []string{"stream", "append", "s/j", "-m", "x", "file"}, exitUsage},
		{"", []string{"stream", "append", "s/j", "--chunk-size", "0", "-m", "x"}, exitUsage},
		{"", []string{"stream", "append", "s/j", "/does/not/exist"}, exitUsage},
		{"", []string{"stream", "append", "s/j", "-m", "x"}, exitOK},
		{"", []string{"stream", "close", "s/j"}, exitOK},
		{"", []string{"stream", "close", "s/j"}, exitOK},
		{"", []string{"stream", "append", "s/j", "-m", "late"}, exitConflict},
		{"", []string{"stream", "create", "s/t", "--content-type", "text/plain"}, exitOK},
		{"", []string{"stream", "append", "s/t", "-e", "1"}, exitUsage}, // -e needs JSON
		{"", []string{"stream", "append", "s/t", "-m", ""}, exitUsage},
		{"", []string{"stream", "delete", "s/j"}, exitOK},
		{"", []string{"stream", "get", "s/j"}, exitNotFound},
	} {
		code, out, errs := ds(t, step.stdin, step.args...)
		if code != step.want {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(step.args, " "), code, step.want, out, errs)
		}
		if code != exitOK && !strings.Contains(errs, "durable-streams: ") {
			t.Errorf("%s: stderr %q lacks the error", strings.Join(step.args, " "), errs)
		}
	}
}

func TestStreamAppendChunks(t *testing.T) {
	streamServer(t)
	// JSON values from stdin, many per append, never more than a chunk.
	ds(t, "", "stream", "create", "c/j", "--json")
	var in strings.Builder
	var want []string
	for i := range 200 {
		v := fmt.Sprintf(`{"i":%d,"s":"%s"}`, i, strings.Repeat("x", i%7))
		want = append(want, v)
		in.WriteString(v)
		if i%3 == 0 {
			in.WriteString("\n")
		} else {
			in.WriteString(" ")
		}
	}
	// A top-level array stays one message.
	want = append(want, `[1,2]`)
	in.WriteString("[1, 2]\n")
	if code, _, errs := ds(t, in.String(), "stream", "append", "c/j", "--chunk-size", "100"); code != exitOK {
		t.Fatalf("append: %d %s", code, errs)
	}
	code, out, errs := ds(t, "", "stream", "get", "c/j", "--json-lines")
	if code != exitOK {
		t.Fatalf("get: %d %s", code, errs)
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("get --json-lines: %d lines, want %d\n%s", len(got), len(want), out)
	}
	code, out, _ = ds(t, "", "stream", "get", "c/j")
	var arr []json.RawMessage
	if code != exitOK || json.Unmarshal([]byte(out), &arr) != nil || len(arr) != len(want) {
		t.Errorf("get: %d, %d messages", code, len(arr))
	}

	// -m wraps text as a JSON string; -e keeps a value whole.
	ds(t, "", "stream", "create", "c/m", "--json")
	if code, _, errs := ds(t, "", "stream", "append", "c/m", "-m", `say "hi"`, "-e", `[3,4]`, "-e", `{"k":null}`); code != exitOK {
		t.Fatalf("append -m -e: %d %s", code, errs)
	}
	_, out, _ = ds(t, "", "stream", "get", "c/m", "--json-lines")
	if want := "\"say \\\"hi\\\"\"\n[3,4]\n{\"k\":null}\n"; out != want {
		t.Errorf("get after -m/-e: %q, want %q", out, want)
	}

	// Raw bytes from files, in chunks, byte for byte.
	ds(t, "", "stream", "create", "c/b")
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/a", data[:3000], 0o600)
	os.WriteFile(dir+"/b", data[3000:], 0o600)
	code, out, errs = ds(t, "", "stream", "append", "c/b", dir+"/a", dir+"/b", "--chunk-size", "999")
	if code != exitOK || !strings.HasSuffix(strings.TrimSpace(out), "10000") {
		t.Fatalf("append files: %d %q %s", code, out, errs)
	}
	code, out, errs = ds(t, "", "stream", "get", "c/b")
	if code != exitOK || out != string(data) {
		t.Errorf("get: %d, %d bytes (want %d) %s", code, len(out), len(data), errs)
	}
	// --limit-bytes stops after the response that reaches the limit, and
	// the next offset resumes exactly there.
	code, first, errs := ds(t, "", "stream", "get", "c/b", "--limit-bytes", "1")
	next := strings.TrimPrefix(strings.TrimSpace(errs), "next offset: ")
	if code != exitOK || len(first) == 0 || !strings.Contains(errs, "next offset: ") {
		t.Fatalf("get --limit-bytes: %d %d bytes %q", code, len(first), errs)
	}
	_, rest, _ := ds(t, "", "stream", "get", "c/b", "--offset", next)
	if first+rest != string(data) {
		t.Errorf("get --limit-bytes then --offset: %d+%d bytes, want %d", len(first), len(rest), len(data))
	}
}

func TestStreamHeadAndTail(t *testing.T) {
	streamServer(t)
	ds(t, "", "stream", "create", "h/t", "--content-type", "text/plain", "--ttl", "1h")
	ds(t, "hello\n", "stream", "append", "h/t")
	code, out, _ := ds(t, "", "stream", "head", "h/t", "--json")
	var md struct {
		Path        string `json:"path"`
		ContentType string `json:"contentType"`
		NextOffset  string `json:"nextOffset"`
		TTLSeconds  int64  `json:"ttlSeconds"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &md) != nil || md.Path != "h/t" || !strings.HasPrefix(md.ContentType, "text/plain") || md.TTLSeconds != 3600 || md.NextOffset == "" {
		t.Errorf("head --json: %d %q", code, out)
	}
	code, out, _ = ds(t, "", "stream", "head", "h/t")
	if code != exitOK || !strings.Contains(out, "ttl:") || !strings.Contains(out, md.NextOffset) {
		t.Errorf("head: %d %q", code, out)
	}

	// An open stream: tail follows until interrupted, then exits 130.
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	code, out, errs := dsCtx(ctx, t, "", "stream", "tail", "h/t")
	if code != exitInterrupted || out != `{"offset":"`+md.NextOffset+`","data":"hello\n"}`+"\n" || !strings.Contains(errs, "next offset: "+md.NextOffset) {
		t.Errorf("tail of an open stream: %d %q %q", code, out, errs)
	}

	// Binary data is base64.
	ds(t, "", "stream", "create", "h/b")
	ds(t, "\x00\xff", "stream", "append", "h/b")
	ds(t, "", "stream", "close", "h/b")
	code, out, _ = ds(t, "", "stream", "tail", "h/b")
	var line struct {
		Offset string
		Base64 []byte
	}
	if code != exitOK || json.Unmarshal([]byte(out), &line) != nil || string(line.Base64) != "\x00\xff" {
		t.Errorf("tail of a binary stream: %d %q", code, out)
	}
	code, out, _ = ds(t, "", "stream", "tail", "h/b", "--offset", "now")
	if code != exitOK || out != "" {
		t.Errorf("tail --offset now of a closed stream: %d %q", code, out)
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  string
		m    string
	}{
		{[]string{"p", "-m", "x"}, "p", "x"},
		{[]string{"-m", "x", "p", "f1", "f2"}, "p f1 f2", "x"},
		{[]string{"p", "-", "-m", "x"}, "p -", "x"},
		{[]string{"p", "--", "-m", "x"}, "p -m x", ""},
		{nil, "", ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		m := fs.String("m", "", "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil || strings.Join(pos, " ") != tc.pos || *m != tc.m {
			t.Errorf("%q: pos %q m %q err %v; want %q %q", tc.args, pos, *m, err, tc.pos, tc.m)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"60": time.Minute, "1h": time.Hour, "90s": 90 * time.Second, "0": -1, "-5": -1, "500ms": -1, "x": -1} {
		got, err := parseTTL(in)
		if want < 0 {
			if err == nil {
				t.Errorf("parseTTL(%q) = %v, want an error", in, got)
			}
		} else if err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	now := time.Unix(1000, 0)
	p := &progress{total: 4 << 20, start: now.Add(-2 * time.Second), done: 1 << 20}
	if got, want := p.line(now), "[######..................]  1.0 MiB / 4.0 MiB   25%  512.0 KiB/s"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	p.total = -1
	if got, want := p.line(now), "1.0 MiB  512.0 KiB/s"; got != want {
		t.Errorf("line of unknown total = %q, want %q", got, want)
	}
	// Not a terminal: counts, draws nothing.
	var buf bytes.Buffer
	p = newProgress(&buf, 10<<20, true)
	p.Write(make([]byte, 5<<20))
	p.finish()
	if buf.Len() != 0 || p.done != 5<<20 {
		t.Errorf("progress on a non-terminal wrote %q, done %d", buf.String(), p.done)
	}
}

func TestStreamList(t *testing.T) {
	streamServer(t)
	for _, p := range []string{"l/a", "l/b", "l/c", "m/x"} {
		ds(t, "", "stream", "create", p)
	}
	ds(t, "", "stream", "close", "l/b")
	// Pages of one stream each: every page is followed.
	code, out, errs := ds(t, "", "stream", "list", "--prefix", "l/", "--limit", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 4 || !strings.HasPrefix(lines[0], "PATH") ||
		!strings.HasPrefix(lines[1], "l/a ") || !strings.HasPrefix(lines[2], "l/b ") || !strings.Contains(lines[2], "true") || !strings.HasPrefix(lines[3], "l/c ") {
		t.Errorf("list --prefix l/ --limit 1: %d\n%s%s", code, out, errs)
	}
	code, out, _ = ds(t, "", "stream", "list", "--json")
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct{ Path string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("list --json line %q: %v", l, err)
		}
		paths = append(paths, e.Path)
	}
	if code != exitOK || strings.Join(paths, " ") != "l/a l/b l/c m/x" {
		t.Errorf("list --json: %d %q", code, paths)
	}
	if code, _, _ := ds(t, "", "stream", "list", "--limit", "-1"); code != exitUsage {
		t.Errorf("list --limit -1: %d", code)
	}
	if code, _, _ := ds(t, "", "stream", "list", "--limit", "5000"); code != exitUsage {
		t.Errorf("list --limit 5000 (the server's 400): %d", code)
	}
}
