package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/contentenc"
)

// TestNginxCompressionVariants: clients of the edge that accept different
// codings each get a body in a coding they accept, from the origin once
// per coding and from the cache afterwards, never another client's.
func TestNginxCompressionVariants(t *testing.T) {
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, "--cache-mode", "shared")
	const path, ct = "edge/compressed", "application/json"
	createStream(t, env.client, env.srv.StreamURL(path), ct, nil)
	var msgs []string
	for i := range 200 {
		msgs = append(msgs, fmt.Sprintf(`{"i":%d,"note":"compressible text, compressible text"}`, i))
	}
	appendTo(t, env.client, env.srv.StreamURL(path), ct, []byte("["+strings.Join(msgs, ",")+"]"))
	want := "[" + strings.Join(msgs, ",") + "]"

	// No transparent decompression: the test sees what the edge sends.
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	uri := "/v1/stream/" + path + "?offset=-1"
	clients := []struct {
		name, accept, coding string
	}{
		{"gzip", "gzip, deflate", "gzip"},
		{"identity", "", ""},
		{"zstd", "gzip, deflate, br, zstd", "zstd"},
		{"gzip refused", "gzip;q=0, identity", ""},
		{"gzip again, other spelling", "deflate, gzip;q=1.0", "gzip"},
		{"zstd refused", "zstd;q=0, gzip", "gzip"},
	}
	// Twice round: the second time every answer comes from the cache.
	firstRound := 0
	for round := range 2 {
		if round == 1 {
			firstRound = env.origin.count(uri)
		}
		for _, cl := range clients {
			hdr := map[string]string{}
			if cl.accept != "" {
				hdr["Accept-Encoding"] = cl.accept
			}
			resp, body, err := tryDo(t.Context(), c, http.MethodGet, env.edge.URL+uri, nil, hdr)
			if err != nil {
				t.Fatalf("%s: %v", cl.name, err)
			}
			got := resp.Header.Get("Content-Encoding")
			if got != cl.coding {
				t.Fatalf("round %d, %s (Accept-Encoding %q): Content-Encoding %q, want %q (cache %s)",
					round, cl.name, cl.accept, got, cl.coding, resp.Header.Get("X-Cache-Status"))
			}
			plain := decodeAs(t, got, body)
			if string(plain) != want || !json.Valid(plain) {
				t.Fatalf("round %d, %s: body of %d bytes is not the stream", round, cl.name, len(plain))
			}
			if round == 1 && resp.Header.Get("X-Cache-Status") != "HIT" {
				t.Errorf("round 1, %s: cache %s, want HIT", cl.name, resp.Header.Get("X-Cache-Status"))
			}
		}
	}
	// nginx keys on the coding and also honours Vary with the raw header,
	// so each spelling of Accept-Encoding was one origin read at most; and
	// none after that.
	if firstRound < 3 || firstRound > len(clients) {
		t.Errorf("origin saw %d reads of %s in the first round, want 3 to %d", firstRound, uri, len(clients))
	}
	if n := env.origin.count(uri); n != firstRound {
		t.Errorf("origin saw %d more reads in the second round, want none", n-firstRound)
	}
}

// decodeAs undoes content coding coding of body.
func decodeAs(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	r, err := contentenc.NewReader(contentenc.Encoding(coding), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return b
}
