//go:build linux

package server

import (
	"github.com/streamtier/durable-streams/internal/httpcall"

	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/streamtier/durable-streams/coldstore"
)

// mountTiny mounts a small tmpfs on a new directory, for as long as the test
// runs. Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped.
func mountTiny(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill up (needs root): %v", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file until the file system is full; removing it frees the
// space again.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return
		}
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestDiskFull runs a server whose data directory is on a tiny file system
// and fills it: appends fail with 507 and a JSON reason, nothing
// acknowledged is lost, reads keep working, a producer's failed append is
// not recorded (its retry is appended, not a duplicate), and once space is
// back appends succeed, also after a restart.
func TestDiskFull(t *testing.T) {
	dir := mountTiny(t, "8m")
	cold, err := coldstore.NewLocal(t.TempDir()) // not on the full disk
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: dir, Store: cold, Logger: discard()}
	open := func() (*Server, *httptest.Server) {
		s, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s, httptest.NewServer(s.Handler())
	}
	stop := func(s *Server, hs *httptest.Server) {
		if err := closeServer(s, hs); err != nil {
			t.Logf("close: %v", err)
		}
	}
	s, hs := open()
	defer func() { stop(s, hs) }()
	url := hs.URL + "/v1/stream/full"
	httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, 201)

	var acked bytes.Buffer
	appendMsg := func(data string, header ...string) httpcall.Response {
		t.Helper()
		r := httpcall.Do(t, "POST", url, data, append([]string{"Content-Type", "text/plain"}, header...)...)
		if r.Status/100 == 2 {
			acked.WriteString(data)
		}
		return r
	}
	producer := func(seq int) []string {
		return []string{"Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", fmt.Sprint(seq)}
	}
	appendMsg("first;").Want(t, 204)
	appendMsg("producer-0;", producer(0)...).Want(t, 200)

	// Freed blocks (the journal cuts a failed group back off) and room
	// left in allocated ones let small writes through on a full disk, so
	// the disk is filled again before each write meant to fail, and those
	// writes are big.
	var fillers []string
	refill := func() {
		f := filepath.Join(dir, fmt.Sprintf("filler-%d", len(fillers)))
		fillers = append(fillers, f)
		fillDisk(t, f)
	}
	refill()
	// The WAL may still have room that SQLite reuses, so appends can go on
	// succeeding for a while; big ones soon need new blocks.
	big := strings.Repeat("x", 64<<10)
	var full httpcall.Response
	for i := range 200 {
		r := appendMsg(fmt.Sprintf("big-%03d:%s;", i, big))
		if r.Status == http.StatusInsufficientStorage {
			t.Logf("disk full after %d big appends", i)
			full = r
			break
		}
		r.Want(t, 204)
	}
	if full.Status != http.StatusInsufficientStorage {
		t.Fatal("appends kept succeeding on a full disk")
	}
	if code, msg := full.ErrorBody(t); code != "INSUFFICIENT_STORAGE" || msg == "" {
		t.Errorf("507 body: %q %q", code, msg)
	}
	if full.Header.Get("Retry-After") == "" {
		t.Error("507 without Retry-After")
	}
	// The producer's append fails too, and must not count as accepted.
	producer1 := "producer-1:" + big + ";"
	refill()
	appendMsg(producer1, producer(1)...).Want(t, http.StatusInsufficientStorage)
	refill()
	appendMsg("more:"+big+";").Want(t, http.StatusInsufficientStorage)
	other := hs.URL + "/v1/stream/other"
	refill()
	httpcall.Do(t, "PUT", other, big, "Content-Type", "text/plain").Want(t, http.StatusInsufficientStorage)

	// Reads are served, with exactly the acknowledged bytes.
	if got := readStream(t, url); got != acked.String() {
		t.Fatalf("read on a full disk: %d bytes, want the %d acknowledged", len(got), acked.Len())
	}
	tail := httpcall.Do(t, "HEAD", url, "").Want(t, 200).Header.Get("Stream-Next-Offset")

	for _, f := range fillers {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if got := httpcall.Do(t, "HEAD", url, "").Want(t, 200).Header.Get("Stream-Next-Offset"); got != tail {
		t.Errorf("tail moved from %s to %s without a successful append", tail, got)
	}
	// 200, not 204: the failed attempt left no trace, so this is no duplicate.
	appendMsg(producer1, producer(1)...).Want(t, 200)
	appendMsg("after;").Want(t, 204)
	// The failed create left nothing behind that gets in the way.
	if r := httpcall.Do(t, "PUT", other, "", "Content-Type", "text/plain"); r.Status != 201 && r.Status != 200 {
		t.Fatalf("create after freeing space: %d %s", r.Status, r.Body)
	}
	httpcall.Do(t, "POST", other, "o", "Content-Type", "text/plain").Want(t, 204)
	if got := readStream(t, other); got != "o" {
		t.Errorf("new stream holds %q, want %q", got, "o")
	}
	appendMsg("producer-2;", producer(2)...).Want(t, 200)
	if got := readStream(t, url); got != acked.String() {
		t.Fatalf("read after freeing space differs from the acknowledged bytes (%d vs %d)", len(got), acked.Len())
	}

	stop(s, hs)
	s, hs = open()
	url = hs.URL + "/v1/stream/full"
	if got := readStream(t, url); got != acked.String() {
		t.Fatalf("read after restart differs from the acknowledged bytes (%d vs %d)", len(got), acked.Len())
	}
	// A duplicate now, so not appended again.
	httpcall.Do(t, "POST", url, "producer-2;", append([]string{"Content-Type", "text/plain"}, producer(2)...)...).Want(t, 204)
	appendMsg("last;").Want(t, 204)
	if got := readStream(t, url); got != acked.String() {
		t.Fatalf("read after restart and append differs from the acknowledged bytes")
	}
}

// readStream reads a whole stream, following Stream-Next-Offset.
func readStream(t *testing.T, url string) string {
	t.Helper()
	var b strings.Builder
	off := "-1"
	for {
		r := httpcall.Do(t, "GET", url+"?offset="+off, "").Want(t, 200)
		b.WriteString(r.Body)
		if r.Header.Get("Stream-Up-To-Date") == "true" {
			return b.String()
		}
		off = r.Header.Get("Stream-Next-Offset")
	}
}
