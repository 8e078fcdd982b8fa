package coldstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestSeekableBody covers how Put bodies are prepared for the SDK, which
// needs a seekable body over plain HTTP ("unseekable stream is not supported
// without TLS and trailing checksum") and for retries.
func TestSeekableBody(t *testing.T) {
	ctx := t.Context()
	defer func(old int64) { maxBufferedPut = old }(maxBufferedPut)
	maxBufferedPut = 4096
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB, above the in-memory limit
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "coldstore-put-*"))
	for _, c := range []struct {
		name string
		r    io.Reader
		size int64
		want []byte
	}{
		{"seekable", bytes.NewReader(data[:100]), 100, data[:100]},
		{"unseekable-memory", struct{ io.Reader }{bytes.NewReader(data[:100])}, 100, data[:100]},
		{"unseekable-spooled", struct{ io.Reader }{bytes.NewReader(data)}, int64(len(data)), data},
	} {
		body, cleanup, err := seekableBody(ctx, c.r, c.size)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for range 2 { // a retry rewinds and reads the same bytes
			got, err := io.ReadAll(body)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("%s: read %d bytes, %v", c.name, len(got), err)
			}
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
		}
		cleanup()
	}
	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
		if _, _, err := seekableBody(ctx, struct{ io.Reader }{bytes.NewReader(data)}, size); !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("spooled size %d of %d: err = %v, want ErrSizeMismatch", size, len(data), err)
		}
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "coldstore-put-*"))
	if len(after) != len(before) {
		t.Fatalf("spool files left behind: %q", after)
	}
}
