package api_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSequenceConflictMessages checks that both kinds of sequence conflict
// answer 409 with a message starting "Sequence conflict": clients (the
// upstream TypeScript conformance adapter among them) tell them from other
// 409s by that word.
func TestSequenceConflictMessages(t *testing.T) {
	s := newServer(t, nil, nil)
	s.create("s", "text/plain", "")
	s.must(204, "POST", "/v1/stream/s", hdr{"Content-Type", "text/plain", "Stream-Seq", "b"}, "x")
	prod := func(id, seq string) hdr {
		return hdr{"Content-Type", "text/plain", "Producer-Id", id, "Producer-Epoch", "0", "Producer-Seq", seq}
	}
	s.must(200, "POST", "/v1/stream/s", prod("w", "0"), "y")
	tests := []struct {
		name, code string
		h          hdr
	}{
		{"Stream-Seq regression", "CONFLICT", hdr{"Content-Type", "text/plain", "Stream-Seq", "a"}},
		{"unknown producer", "SEQUENCE_GAP", prod("other", "3")},
		{"producer gap", "SEQUENCE_GAP", prod("w", "5")},
	}
	for _, tc := range tests {
		r := s.must(409, "POST", "/v1/stream/s", tc.h, "z")
		var e struct{ Error, Message string }
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, r)
		}
		if e.Error != tc.code || !strings.HasPrefix(e.Message, "Sequence conflict: ") || len(e.Message) <= len("Sequence conflict: ") {
			t.Errorf("%s: %q %q, want %s with \"Sequence conflict: <detail>\"", tc.name, e.Error, e.Message, tc.code)
		}
	}
}
