package contentenc

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   Encoding
	}{
		{"", Identity},
		{"identity", Identity},
		{"gzip", Gzip},
		{"GZIP", Gzip},
		{"x-gzip", Gzip},
		{"zstd", Zstd},
		{"gzip, deflate, br", Gzip},
		{"gzip, deflate, br, zstd", Zstd},
		{"deflate, gzip;q=0.5, zstd;q=0.4", Gzip},
		{"gzip;q=0, zstd;q=0", Identity},
		{"gzip;q=0", Identity},
		{"br", Identity},
		{"*", Zstd},
		{"*;q=0.1, gzip;q=0.5", Gzip},
		{"*;q=0, gzip", Gzip},
		{"zstd;q=bogus, gzip", Gzip},
		{"zstd;q=2, gzip", Gzip},
		{" gzip ; q=0.8 , zstd ; q=0.9 ", Zstd},
		{"gzip;q=1.0;foo=bar", Gzip},
	}
	for _, tc := range cases {
		if got := Negotiate(tc.accept); got != tc.want {
			t.Errorf("Negotiate(%q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}

func TestCompressible(t *testing.T) {
	cases := []struct {
		ct   string
		want bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON", true},
		{"text/plain", true},
		{"text/event-stream", true},
		{"application/vnd.api+json", true},
		{"application/atom+xml", true},
		{"application/x-ndjson", true},
		{"application/octet-stream", false},
		{"image/png", false},
		{"video/mp4", false},
		{"application/gzip", false},
		{"application/zstd", false},
		{"application/zip", false},
		{"", false},
		{"not a type", false},
	}
	for _, tc := range cases {
		if got := Compressible(tc.ct); got != tc.want {
			t.Errorf("Compressible(%q) = %v, want %v", tc.ct, got, tc.want)
		}
	}
}

// TestWriter: both codings round-trip, a flushed prefix decodes before
// Close (what SSE relies on), and pooled encoders start clean.
func TestWriter(t *testing.T) {
	for _, enc := range []Encoding{Gzip, Zstd} {
		dec := func(r io.Reader) (io.Reader, error) { return NewReader(enc, r) }
		t.Run(string(enc), func(t *testing.T) {
			for round := range 3 {
				var out bytes.Buffer
				w := NewWriter(enc, &out)
				first := strings.Repeat(`{"event":"first"},`, 100)
				if _, err := io.WriteString(w, first); err != nil {
					t.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				r, err := dec(bytes.NewReader(out.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(first))
				if _, err := io.ReadFull(r, got); err != nil || string(got) != first {
					t.Fatalf("round %d: flushed prefix: %q, %v", round, got, err)
				}
				second := strings.Repeat("more data ", 1000)
				io.WriteString(w, second)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				r, _ = dec(bytes.NewReader(out.Bytes()))
				all, err := io.ReadAll(r)
				if err != nil || string(all) != first+second {
					t.Fatalf("round %d: %d bytes, %v", round, len(all), err)
				}
				if out.Len() >= len(all)/4 {
					t.Errorf("round %d: %d bytes compressed to %d", round, len(all), out.Len())
				}
			}
		})
	}
}
