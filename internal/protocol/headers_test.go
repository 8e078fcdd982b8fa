package protocol

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseUint(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"10", 10, true},
		{"1234567890", 1234567890, true},
		{"9007199254740991", MaxSafeInteger, true},
		{"", 0, false},
		{"00", 0, false},
		{"01", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"-0", 0, false},
		{"1.0", 0, false},
		{"1.", 0, false},
		{"1e3", 0, false},
		{"0x1", 0, false},
		{"1abc", 0, false},
		{"0xyz", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1_000", 0, false},
		{"١", 0, false}, // Arabic-Indic digit one
		{"9007199254740992", 0, false},
		{"9999999999999999", 0, false},
		{"99999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseUint("X-Test", tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseUint(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseUint(%q) = %d, nil; want error", tt.in, got)
		} else if !strings.Contains(err.Error(), "X-Test") {
			t.Errorf("ParseUint(%q) error %q does not name the input", tt.in, err)
		}
	}
}

func TestParseUintMessage(t *testing.T) {
	_, err := ParseUint(HeaderStreamTTL, "01")
	const want = "Stream-TTL must be a non-negative integer without leading zeros"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v; want %q", err, want)
	}
}

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{"3600", time.Hour, true},
		{"9223372036", 9223372036 * time.Second, true},
		// Beyond time.Duration's range: saturates to whole seconds.
		{"9223372037", MaxTTL, true},
		{"9007199254740991", MaxTTL, true},
		{"", 0, false},
		{"-1", 0, false},
		{"01", 0, false},
		{"1.5", 0, false},
		{"1s", 0, false},
		{"9007199254740992", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseTTL(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), HeaderStreamTTL) {
			t.Errorf("ParseTTL(%q) error %q does not name the header", tt.in, err)
		}
	}
}

func TestParseExpiresAt(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-01-02T03:04:05Z", utc(2026, 1, 2, 3, 4, 5, 0), true},
		{"2026-01-02T03:04:05+00:00", utc(2026, 1, 2, 3, 4, 5, 0), true},
		{"2026-01-02T03:04:05-00:00", utc(2026, 1, 2, 3, 4, 5, 0), true},
		{"2026-01-02T03:04:05-05:30", utc(2026, 1, 2, 8, 34, 5, 0), true},
		{"2026-01-02T03:04:05+01:00", utc(2026, 1, 2, 2, 4, 5, 0), true},
		{"2026-01-01T00:30:00+01:00", utc(2025, 12, 31, 23, 30, 0, 0), true},
		{"2026-01-02T03:04:05.123Z", utc(2026, 1, 2, 3, 4, 5, 123000000), true},
		{"2026-01-02T03:04:05.1Z", utc(2026, 1, 2, 3, 4, 5, 100000000), true},
		{"2026-01-02T03:04:05.123456789Z", utc(2026, 1, 2, 3, 4, 5, 123456789), true},
		{"2026-01-02T03:04:05.1234567891234Z", utc(2026, 1, 2, 3, 4, 5, 123456789), true},
		{"2026-01-02T03:04:05.5+02:00", utc(2026, 1, 2, 1, 4, 5, 500000000), true},
		{"2024-02-29T23:59:59Z", utc(2024, 2, 29, 23, 59, 59, 0), true},
		{"2026-12-31T23:59:59+23:59", utc(2026, 12, 31, 0, 0, 59, 0), true},
		// Instants before 1970 are all the Unix epoch: in the past, and
		// never Go's zero time (which reads as "no expiry").
		{"1970-01-01T00:00:00Z", utc(1970, 1, 1, 0, 0, 0, 0), true},
		{"1970-01-01T00:00:00+14:00", utc(1970, 1, 1, 0, 0, 0, 0), true},
		{"1969-12-31T23:59:59.999Z", utc(1970, 1, 1, 0, 0, 0, 0), true},
		{"0001-01-01T00:00:00Z", utc(1970, 1, 1, 0, 0, 0, 0), true},
		{"0001-01-01T00:00:00.0001Z", utc(1970, 1, 1, 0, 0, 0, 0), true},
		{"0000-01-01T00:00:00Z", utc(1970, 1, 1, 0, 0, 0, 0), true},

		{"", time.Time{}, false},
		{"2026-01-02", time.Time{}, false},
		{"2026-01-02T03:04:05", time.Time{}, false},
		{"2026-01-02T03:04Z", time.Time{}, false},
		{"2026-01-02 03:04:05Z", time.Time{}, false},
		{"2026-01-02t03:04:05z", time.Time{}, false},
		{"2026-01-02T3:04:05Z", time.Time{}, false},
		{"2026-1-02T03:04:05Z", time.Time{}, false},
		{"2026-01-02T03:04:05,123Z", time.Time{}, false},
		{"2026-01-02T03:04:05.Z", time.Time{}, false},
		{"2026-01-02T03:04:05.12a3Z", time.Time{}, false},
		{"2026-01-02T03:04:05+0000", time.Time{}, false},
		{"2026-01-02T03:04:05+00", time.Time{}, false},
		{"2026-01-02T03:04:05+24:00", time.Time{}, false},
		{"2026-01-02T03:04:05+00:60", time.Time{}, false},
		{"2026-01-02T03:04:05 Z", time.Time{}, false},
		{"2026-01-02T03:04:05Z ", time.Time{}, false},
		{" 2026-01-02T03:04:05Z", time.Time{}, false},
		{"2026-01-02T03:04:05Zx", time.Time{}, false},
		{"+2026-01-02T03:04:05Z", time.Time{}, false},
		{"2026-13-02T03:04:05Z", time.Time{}, false},
		{"2026-00-02T03:04:05Z", time.Time{}, false},
		{"2026-02-29T03:04:05Z", time.Time{}, false},
		{"2026-04-31T03:04:05Z", time.Time{}, false},
		{"2026-01-00T03:04:05Z", time.Time{}, false},
		{"2026-01-02T24:00:00Z", time.Time{}, false},
		{"2026-01-02T23:60:00Z", time.Time{}, false},
		{"2026-12-31T23:59:60Z", time.Time{}, false},
		{"1767323045", time.Time{}, false},
		{"Fri, 02 Jan 2026 03:04:05 GMT", time.Time{}, false},
		{"２026-01-02T03:04:05Z", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := ParseExpiresAt(tt.in)
		if tt.ok != (err == nil) || !got.Equal(tt.want) {
			t.Errorf("ParseExpiresAt(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			continue
		}
		if err == nil && got.Location() != time.UTC {
			t.Errorf("ParseExpiresAt(%q) location = %v; want UTC", tt.in, got.Location())
		}
		if err != nil && !strings.Contains(err.Error(), HeaderStreamExpiresAt) {
			t.Errorf("ParseExpiresAt(%q) error %q does not name the header", tt.in, err)
		}
	}
}

// TestParseExpiresAtMatchesTime checks agreement with time.Parse on the
// inputs both accept.
func TestParseExpiresAtMatchesTime(t *testing.T) {
	for _, s := range []string{
		"2026-01-02T03:04:05Z",
		"2000-02-29T12:00:00.000001-11:45",
		"1970-01-01T00:00:00-14:00",
		"1970-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseExpiresAt(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseExpiresAt(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseProducer(t *testing.T) {
	const (
		id = HeaderProducerID
		ep = HeaderProducerEpoch
		sq = HeaderProducerSeq
	)
	tests := []struct {
		name    string
		h       http.Header
		want    *Producer
		wantErr string // substring; "" means success
	}{
		{"none", header(), nil, ""},
		{"unrelated", header("Stream-Seq", "1"), nil, ""},
		{"all", header(id, "p1", ep, "0", sq, "0"), &Producer{"p1", 0, 0}, ""},
		{"large", header(id, "p", ep, "9007199254740991", sq, "42"), &Producer{"p", MaxSafeInteger, 42}, ""},
		{"lowercase names", header("producer-id", "p", "producer-epoch", "3", "producer-seq", "4"), &Producer{"p", 3, 4}, ""},
		{"utf8 id", header(id, "prödücer/1 #2", ep, "1", sq, "2"), &Producer{"prödücer/1 #2", 1, 2}, ""},
		{"id 256 bytes", header(id, strings.Repeat("x", 256), ep, "1", sq, "2"), &Producer{strings.Repeat("x", 256), 1, 2}, ""},

		{"id only", header(id, "p"), nil, "missing Producer-Epoch and Producer-Seq"},
		{"epoch only", header(ep, "1"), nil, "missing Producer-Id and Producer-Seq"},
		{"seq only", header(sq, "1"), nil, "missing Producer-Id and Producer-Epoch"},
		{"no seq", header(id, "p", ep, "1"), nil, "missing Producer-Seq"},
		{"no epoch", header(id, "p", sq, "1"), nil, "missing Producer-Epoch"},
		{"no id", header(ep, "1", sq, "1"), nil, "missing Producer-Id"},
		{"empty id only", header(id, ""), nil, "missing"},
		{"empty id", header(id, "", ep, "1", sq, "1"), nil, "Producer-Id must not be empty"},
		{"long id", header(id, strings.Repeat("x", 257), ep, "1", sq, "1"), nil, "at most 256 bytes"},
		{"id NUL", header(id, "a\x00b", ep, "1", sq, "1"), nil, "control characters"},
		{"id tab", header(id, "a\tb", ep, "1", sq, "1"), nil, "control characters"},
		{"id DEL", header(id, "a\x7fb", ep, "1", sq, "1"), nil, "control characters"},
		{"id bad utf8", header(id, "a\xffb", ep, "1", sq, "1"), nil, "UTF-8"},
		{"two ids", header(id, "a", id, "b", ep, "1", sq, "1"), nil, "at most once"},
		{"two seqs", header(id, "a", ep, "1", sq, "1", sq, "2"), nil, "at most once"},
		{"empty epoch", header(id, "p", ep, "", sq, "1"), nil, "Producer-Epoch"},
		{"empty seq", header(id, "p", ep, "1", sq, ""), nil, "Producer-Seq"},
		{"epoch 1abc", header(id, "p", ep, "1abc", sq, "1"), nil, "Producer-Epoch"},
		{"epoch 0xyz", header(id, "p", ep, "0xyz", sq, "1"), nil, "Producer-Epoch"},
		{"seq 1e3", header(id, "p", ep, "1", sq, "1e3"), nil, "Producer-Seq"},
		{"seq -1", header(id, "p", ep, "1", sq, "-1"), nil, "Producer-Seq"},
		{"seq 01", header(id, "p", ep, "1", sq, "01"), nil, "Producer-Seq"},
		{"seq too big", header(id, "p", ep, "1", sq, "9007199254740992"), nil, "Producer-Seq"},
		{"epoch float", header(id, "p", ep, "1.0", sq, "1"), nil, "Producer-Epoch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProducer(tt.h)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %+v, nil; want error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q; want it to contain %q", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("got %+v with error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseClosed(t *testing.T) {
	tests := []struct {
		h    http.Header
		want bool
	}{
		{header(), false},
		{header(HeaderStreamClosed, "true"), true},
		{header(HeaderStreamClosed, "TRUE"), true},
		{header(HeaderStreamClosed, "True"), true},
		{header("stream-closed", "true"), true},
		// Anything else is as if the header were absent.
		{header(HeaderStreamClosed, "false"), false},
		{header(HeaderStreamClosed, "FaLsE"), false},
		{header(HeaderStreamClosed, ""), false},
		{header(HeaderStreamClosed, "1"), false},
		{header(HeaderStreamClosed, "yes"), false},
		{header(HeaderStreamClosed, "true "), false},
		{header(HeaderStreamClosed, "truee"), false},
		{header(HeaderStreamClosed, "true", HeaderStreamClosed, "true"), false},
	}
	for _, tt := range tests {
		if got := ParseClosed(tt.h); got != tt.want {
			t.Errorf("ParseClosed(%v) = %v; want %v", tt.h, got, tt.want)
		}
	}
}

func TestParseStreamSeq(t *testing.T) {
	tests := []struct {
		h    http.Header
		want string
		ok   bool
	}{
		{header(), "", true},
		{header(HeaderStreamSeq, "0001"), "0001", true},
		{header(HeaderStreamSeq, strings.Repeat("s", MaxStreamSeqLen)), strings.Repeat("s", MaxStreamSeqLen), true},
		{header(HeaderStreamSeq, strings.Repeat("s", MaxStreamSeqLen+1)), "", false},
		{header(HeaderStreamSeq, "a\x01"), "", false},
		{header(HeaderStreamSeq, "a", HeaderStreamSeq, "b"), "", false},
	}
	for _, tt := range tests {
		got, err := ParseStreamSeq(tt.h)
		if got != tt.want || tt.ok != (err == nil) {
			t.Errorf("ParseStreamSeq(%v) = %q, %v; want %q, ok=%v", tt.h, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), HeaderStreamSeq) {
			t.Errorf("ParseStreamSeq error %q does not name the header", err)
		}
	}
}

// FuzzParseProducerInts checks that ParseUint never panics, accepts only
// canonical spellings, and agrees with strconv.
func FuzzParseProducerInts(f *testing.F) {
	for _, s := range []string{"0", "7", "9007199254740991", "9007199254740992", "", "00", "01",
		"+1", "-1", "1.0", "1e3", "0x1", "1abc", " 1", "0xyz", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseUint(HeaderProducerSeq, s)
		if err != nil {
			if v != 0 {
				t.Fatalf("ParseUint(%q) = %d with error", s, v)
			}
			if err.Error() == "" {
				t.Fatalf("ParseUint(%q): empty error message", s)
			}
			return
		}
		if v < 0 || v > MaxSafeInteger {
			t.Fatalf("ParseUint(%q) = %d out of range", s, v)
		}
		if got := strconv.FormatInt(v, 10); got != s {
			t.Fatalf("ParseUint(%q) = %d, which formats as %q", s, v, got)
		}
		if w, err := strconv.ParseInt(s, 10, 64); err != nil || w != v {
			t.Fatalf("ParseUint(%q) = %d; strconv.ParseInt = %d, %v", s, v, w, err)
		}
		h := header(HeaderProducerID, "p", HeaderProducerEpoch, s, HeaderProducerSeq, s)
		p, err := ParseProducer(h)
		if err != nil || p.Epoch != v || p.Seq != v {
			t.Fatalf("ParseProducer with %q = %+v, %v", s, p, err)
		}
	})
}

// FuzzParseExpiresAt checks that ParseExpiresAt never panics and that
// whatever it accepts, time.Parse accepts with the same meaning.
func FuzzParseExpiresAt(f *testing.F) {
	for _, s := range []string{"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123-05:30",
		"2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+24:00", "2026-01-02"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseExpiresAt(s)
		if err != nil {
			return
		}
		want, perr := time.Parse(time.RFC3339Nano, s)
		if perr != nil {
			t.Fatalf("ParseExpiresAt(%q) = %v but time.Parse fails: %v", s, got, perr)
		}
		if epoch := time.Unix(0, 0); want.Before(epoch) {
			want = epoch
		}
		if got.IsZero() || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("ParseExpiresAt(%q) = %v; time.Parse = %v", s, got, want)
		}
	})
}
