package sequencer

import (
	"reflect"
	"testing"
	"time"
)

// TestCatalogRecordCodec round-trips the catalog's record payloads and
// refuses every truncation of them.
func TestCatalogRecordCodec(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	for _, tc := range []struct {
		name    string
		payload []byte
		decode  func([]byte) (any, error)
		want    any
	}{
		{"delete", (&streamDelete{id: 42, path: "/a/b", at: at, expired: true}).encode(),
			func(p []byte) (any, error) { return decodeStreamDelete(p) },
			streamDelete{id: 42, path: "/a/b", at: at, expired: true}},
		{"delete without time", (&streamDelete{id: 7, path: "x"}).encode(),
			func(p []byte) (any, error) { return decodeStreamDelete(p) },
			streamDelete{id: 7, path: "x"}},
		{"touch", (&streamTouch{access: map[int64]time.Time{3: at, 1: at.Add(time.Second)}}).encode(),
			func(p []byte) (any, error) { return decodeStreamTouch(p) },
			streamTouch{access: map[int64]time.Time{3: at, 1: at.Add(time.Second)}}},
	} {
		got, err := tc.decode(tc.payload)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: decoded %+v (%v), want %+v", tc.name, got, err, tc.want)
		}
		for n := range len(tc.payload) {
			if _, err := tc.decode(tc.payload[:n]); err == nil {
				t.Errorf("%s: %d of %d bytes decoded without an error", tc.name, n, len(tc.payload))
			}
		}
		if _, err := tc.decode(append(tc.payload, 0)); err == nil {
			t.Errorf("%s: a trailing byte decoded without an error", tc.name)
		}
	}
}
