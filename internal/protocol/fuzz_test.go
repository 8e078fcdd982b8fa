package protocol

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseContentType checks that ParseContentType never panics and that
// its normalization is stable: the normalized form parses to itself, so a
// stored content type always compares equal to its own echo; and that its
// fast path agrees with the general one.
func FuzzParseContentType(f *testing.F) {
	for _, s := range []string{"application/json", "Application/JSON; charset=UTF-8", "text/plain;charset=\"utf-8\"",
		"application/octet-stream", "text/", "/json", "json", "", "a/b; c", "a/b; c=\"\\\"\"", "text/plain; a=1; A=2",
		"multipart/form-data; boundary=\"x y\"", "a/b;;", "ä/b", "a/b/c", "a//b", "a/b ", "x-a/y.b+json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ct, err := ParseContentType(s)
		if err != nil {
			if ct != (ContentType{}) {
				t.Fatalf("ParseContentType(%q) = %+v with error", s, ct)
			}
			return
		}
		if !strings.Contains(ct.Media, "/") || ct.Media != strings.ToLower(ct.Media) || !strings.HasPrefix(ct.Full, ct.Media) {
			t.Fatalf("ParseContentType(%q) = %+v", s, ct)
		}
		if simpleMediaType(s) {
			if slow, err := parseMediaType(s); err != nil || slow != ct {
				t.Fatalf("fast path %+v for %q, slow path %+v, %v", ct, s, slow, err)
			}
		}
		again, err := ParseContentType(ct.Full)
		if err != nil || again != ct {
			t.Fatalf("ParseContentType(%q) = %+v, but its Full parses as %+v, %v", s, ct, again, err)
		}
		if !ct.SameMedia(again) {
			t.Fatalf("%+v is not the same media as itself", ct)
		}
	})
}

// FuzzParseProducer checks that ParseProducer never panics and accepts
// only ids that survive JSON and logs unchanged.
func FuzzParseProducer(f *testing.F) {
	f.Add("p", "0", "0", true)
	f.Add("", "1", "2", true)
	f.Add("id\x00", "1", "2", false)
	f.Add("ïd", "01", "2", false)
	f.Add(strings.Repeat("x", MaxProducerIDLen+1), "0", "0", true)
	f.Fuzz(func(t *testing.T, id, epoch, seq string, all bool) {
		h := http.Header{}
		h.Set(HeaderProducerID, id)
		h.Set(HeaderProducerEpoch, epoch)
		if all {
			h.Set(HeaderProducerSeq, seq)
		}
		p, err := ParseProducer(h)
		if err != nil {
			if p != nil {
				t.Fatalf("ParseProducer = %+v with error", p)
			}
			return
		}
		if !all {
			t.Fatal("ParseProducer accepted a missing Producer-Seq")
		}
		if p.ID != id || id == "" || len(id) > MaxProducerIDLen || !utf8.ValidString(id) || hasControl(id) {
			t.Fatalf("ParseProducer accepted id %q as %q", id, p.ID)
		}
		if p.Epoch < 0 || p.Epoch > MaxSafeInteger || p.Seq < 0 || p.Seq > MaxSafeInteger {
			t.Fatalf("ParseProducer = %+v out of range", p)
		}
	})
}

// FuzzParseTTL checks that ParseTTL never panics and never returns a
// negative duration.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"0", "60", "9007199254740991", "9007199254740992", "-1", "1.5", "", "01", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTTL(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseTTL(%q) = %v with error", s, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseTTL(%q) = %v", s, d)
		}
		if _, err := ParseUint(HeaderStreamTTL, s); err != nil {
			t.Fatalf("ParseTTL(%q) accepted what ParseUint rejects: %v", s, err)
		}
	})
}
