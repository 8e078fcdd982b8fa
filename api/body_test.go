package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/streamtier/durable-streams/sequencer"
)

func TestReadAll(t *testing.T) {
	body := strings.Repeat("abc", 1000)
	tests := []struct {
		name string
		size int64 // announced
	}{
		{"exact", int64(len(body))},
		{"unknown", -1},
		{"understated", 10},
		{"overstated", int64(len(body)) * 2},
		{"huge claim", 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(strings.NewReader(body), tt.size)
			if err != nil || string(got) != body {
				t.Fatalf("readAll = %d bytes, %v; want %d bytes", len(got), err, len(body))
			}
		})
	}
	// The reader's limit still applies whatever the client announced.
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(body)), 100)
	if _, err := readAll(r, 50); err == nil {
		t.Fatal("readAll past the limit succeeded")
	}
}

// TestReadAllGrowsWithReceivedBytes: the buffer follows the bytes that
// arrived, never the announced size beyond maxEagerRead, and an honest
// body ends in a buffer of its own size.
func TestReadAllGrowsWithReceivedBytes(t *testing.T) {
	tests := []struct {
		name     string
		sent     int
		size     int64
		maxCap   int
		exactCap bool
	}{
		{"one byte of 8 MiB announced", 1, 8 << 20, maxEagerRead, false},
		{"one byte of unknown length", 1, -1, maxEagerRead, false},
		{"small exact", 100, 100, 101, true},
		{"1 MiB exact", 1 << 20, 1 << 20, 1<<20 + 1, true},
		{"100 KiB of 8 MiB announced", 100 << 10, 8 << 20, 256 << 10, false},
		{"understated", 200 << 10, 10, 512 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(io.LimitReader(zeros{}, int64(tt.sent)), tt.size)
			if err != nil || len(got) != tt.sent {
				t.Fatalf("readAll = %d bytes, %v; want %d", len(got), err, tt.sent)
			}
			if cap(got) > tt.maxCap || (tt.exactCap && cap(got) < tt.maxCap) {
				t.Errorf("buffer capacity %d for %d bytes received, want at most %d", cap(got), tt.sent, tt.maxCap)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestWriteMessages(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3*bodyBufSize)
	msgs := func(data ...[]byte) []sequencer.Message {
		out := make([]sequencer.Message, len(data))
		for i, d := range data {
			out[i] = sequencer.Message{Data: d}
		}
		return out
	}
	tests := []struct {
		name string
		json bool
		msgs []sequencer.Message
		want string
	}{
		{"one", false, msgs([]byte("hello")), "hello"},
		{"several", false, msgs([]byte("a"), big, []byte("b")), "a" + string(big) + "b"},
		{"json empty", true, nil, "[]"},
		{"json", true, msgs([]byte(`{"a":1}`), []byte("2"), big), `[{"a":1},2,` + string(big) + "]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest("GET", "/", nil), rec)
			if err := writeMessages(c, "text/plain", tt.json, tt.msgs); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("body = %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(tt.want)) {
				t.Errorf("Content-Length = %s, want %d", cl, len(tt.want))
			}
		})
	}
}
