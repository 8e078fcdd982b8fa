package cache

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheControl(t *testing.T) {
	const year = 31536000
	tests := []struct {
		kind      Kind
		mode      Mode
		remaining time.Duration
		want      string
	}{
		// Hot catch-up reads: one minute, revalidate in the background.
		{CatchUp, Shared, 0, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Private, 0, "private, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Shared, 30 * time.Second, "public, max-age=30, stale-while-revalidate=300"},
		{CatchUp, Private, 30 * time.Second, "private, max-age=30, stale-while-revalidate=300"},
		{CatchUp, Shared, 30*time.Second + 999*time.Millisecond, "public, max-age=30, stale-while-revalidate=300"},
		{CatchUp, Shared, 60 * time.Second, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Shared, 2 * time.Hour, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Shared, 500 * time.Millisecond, "public, max-age=0, stale-while-revalidate=300"},
		{CatchUp, Shared, time.Nanosecond, "public, max-age=0, stale-while-revalidate=300"},
		// Long-poll data follows the catch-up rules.
		{LongPollData, Shared, 0, "public, max-age=60, stale-while-revalidate=300"},
		{LongPollData, Private, 0, "private, max-age=60, stale-while-revalidate=300"},
		{LongPollData, Shared, 10 * time.Second, "public, max-age=10, stale-while-revalidate=300"},
		// Sealed chunks never change: immutable for a year unless the
		// stream expires first, when the age is clamped and "immutable"
		// is dropped.
		{SealedChunk, Shared, 0, fmt.Sprintf("public, max-age=%d, immutable", year)},
		{SealedChunk, Private, 0, fmt.Sprintf("private, max-age=%d, immutable", year)},
		{SealedChunk, Shared, time.Hour, "public, max-age=3600"},
		{SealedChunk, Private, time.Hour, "private, max-age=3600"},
		{SealedChunk, Shared, 2 * 365 * 24 * time.Hour, fmt.Sprintf("public, max-age=%d", year)},
		{SealedChunk, Shared, time.Nanosecond, "public, max-age=0"},
		// Never stored.
		{NoStore, Shared, 0, "no-store"},
		{NoStore, Private, time.Hour, "no-store"},
		{EventStream, Shared, 0, "no-cache"},
		{EventStream, Private, time.Hour, "no-cache"},
		{Kind(99), Shared, 0, "no-store"},
	}
	kindName := map[Kind]string{CatchUp: "CatchUp", SealedChunk: "SealedChunk", LongPollData: "LongPollData",
		NoStore: "NoStore", EventStream: "EventStream"}
	for _, tc := range tests {
		name := fmt.Sprintf("%s/%s/%v", kindName[tc.kind], tc.mode, tc.remaining)
		t.Run(name, func(t *testing.T) {
			got := CacheControl(Request{Kind: tc.kind, Mode: tc.mode, Remaining: tc.remaining})
			if got != tc.want {
				t.Fatalf("CacheControl(%s) = %q, want %q", name, got, tc.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"shared", Shared, false},
		{"public", Shared, false},
		{"SHARED", Shared, false},
		{" private ", Private, false},
		{"Private", Private, false},
		{"", Shared, true},
		{"none", Shared, true},
		{"privat", Shared, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseMode(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ParseMode(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if Shared.String() != "shared" || Private.String() != "private" {
		t.Fatalf("Mode.String: %q %q", Shared.String(), Private.String())
	}
	for _, m := range []Mode{Shared, Private} {
		if back, err := ParseMode(m.String()); err != nil || back != m {
			t.Fatalf("ParseMode(%q) = %v, %v", m.String(), back, err)
		}
	}
}

func TestETag(t *testing.T) {
	const a, b = "0000000000000000_0000000000000000", "0000000000000001_0000000000000005"
	tests := []struct {
		id     int64
		start  string
		end    string
		closed bool
		want   string
	}{
		{7, a, b, false, `"7:` + a + `:` + b + `"`},
		{7, a, b, true, `"7:` + a + `:` + b + `:c"`},
		{1234567, b, b, false, `"1234567:` + b + `:` + b + `"`},
	}
	for _, tc := range tests {
		got := ETag(tc.id, tc.start, tc.end, tc.closed)
		if got != tc.want {
			t.Errorf("ETag(%d, %q, %q, %v) = %q, want %q", tc.id, tc.start, tc.end, tc.closed, got, tc.want)
		}
	}
	if ETag(1, a, b, false) == ETag(1, a, b, true) {
		t.Fatal("closed and open ETags must differ")
	}
	if ETag(1, a, b, false) == ETag(2, a, b, false) {
		t.Fatal("ETags of different streams must differ")
	}
}

func TestMatches(t *testing.T) {
	etag := ETag(7, "0000000000000000_0000000000000000", "0000000000000000_0000000000000003", false)
	closed := ETag(7, "0000000000000000_0000000000000000", "0000000000000000_0000000000000003", true)
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"empty", "", false},
		{"exact", etag, true},
		{"other", `"8:x:y"`, false},
		{"unquoted", etag[1 : len(etag)-1], false},
		{"closed vs open", closed, false},
		{"weak", "W/" + etag, true},
		{"star", "*", true},
		{"star with spaces", "  *  ", true},
		{"list second", `"nope", ` + etag, true},
		{"list first", etag + `, "nope"`, true},
		{"list no space", `"nope",` + etag, true},
		{"list of weak", `W/"nope", W/` + etag, true},
		{"list without match", `"a", "b", W/"c"`, false},
		{"padded", "\t" + etag + " ", true},
		{"prefix only", etag[:len(etag)-2] + `"`, false},
		{"only commas", ",,", false},
		{"lowercase weak prefix", "w/" + etag, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.header, etag); got != tc.want {
				t.Fatalf("Matches(%q, %q) = %v, want %v", tc.header, etag, got, tc.want)
			}
		})
	}
}
