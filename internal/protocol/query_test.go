package protocol

import (
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/offset"
)

func TestParseReadOffset(t *testing.T) {
	const tok = "0000000000000003_0000000000001024"
	tests := []struct {
		name  string
		query string
		want  ReadOffset
		ok    bool
	}{
		{"absent", "", ReadOffset{Kind: OffsetStart}, true},
		{"other params", "live=sse&cursor=5", ReadOffset{Kind: OffsetStart}, true},
		{"start", "offset=-1", ReadOffset{Kind: OffsetStart, Given: true}, true},
		{"now", "offset=now", ReadOffset{Kind: OffsetNow, Given: true}, true},
		{"token", "offset=" + tok, ReadOffset{Kind: OffsetToken, Token: offset.Token{Segment: 3, Position: 1024}, Given: true}, true},
		{"zero token", "offset=0000000000000000_0000000000000000", ReadOffset{Kind: OffsetToken, Given: true}, true},

		{"empty", "offset=", ReadOffset{}, false},
		{"bare", "offset", ReadOffset{}, false},
		{"duplicate", "offset=-1&offset=-1", ReadOffset{}, false},
		{"duplicate token", "offset=" + tok + "&offset=now", ReadOffset{}, false},
		{"comma", "offset=0,1", ReadOffset{}, false},
		{"space", "offset=0%201", ReadOffset{}, false},
		{"plus space", "offset=0+1", ReadOffset{}, false},
		{"abc", "offset=abc", ReadOffset{}, false},
		{"dotdot", "offset=../x", ReadOffset{}, false},
		{"slash", "offset=0000000000000003/0000000000001024", ReadOffset{}, false},
		{"NOW", "offset=NOW", ReadOffset{}, false},
		{"-2", "offset=-2", ReadOffset{}, false},
		{"0", "offset=0", ReadOffset{}, false},
		{"15 digits", "offset=000000000000003_0000000000001024", ReadOffset{}, false},
		{"15 digits pos", "offset=0000000000000003_000000000001024", ReadOffset{}, false},
		{"17 digits", "offset=00000000000000003_0000000000001024", ReadOffset{}, false},
		{"NUL", "offset=0000000000000003_000000000000102%00", ReadOffset{}, false},
		{"CRLF", "offset=0000000000000003_00000000000010%0D%0A", ReadOffset{}, false},
		{"token trailing", "offset=" + tok + "x", ReadOffset{}, false},
		{"signed", "offset=+000000000000003_0000000000001024", ReadOffset{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseReadOffset(q)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ParseReadOffset(%q) = %+v, %v; want %+v, ok=%v", tt.query, got, err, tt.want, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "offset") {
				t.Fatalf("error %q does not name the parameter", err)
			}
		})
	}
}

func TestParseReadOffsetFormatInError(t *testing.T) {
	_, err := ParseReadOffset(url.Values{"offset": {"abc"}})
	if err == nil || !strings.Contains(err.Error(), "<16 digits>_<16 digits>") {
		t.Errorf("error = %v; want it to describe the expected format", err)
	}
}

func TestParseLive(t *testing.T) {
	tests := []struct {
		query string
		want  LiveMode
		ok    bool
	}{
		{"", LiveNone, true},
		{"offset=-1", LiveNone, true},
		{"live=", LiveNone, true},
		{"live", LiveNone, true},
		{"live=long-poll", LiveLongPoll, true},
		{"live=sse", LiveSSE, true},
		{"live=SSE", LiveNone, false},
		{"live=longpoll", LiveNone, false},
		{"live=long_poll", LiveNone, false},
		{"live=true", LiveNone, false},
		{"live=sse%20", LiveNone, false},
		{"live=sse&live=sse", LiveNone, false},
		{"live=&live=sse", LiveNone, false},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseLive(q)
		if got != tt.want || tt.ok != (err == nil) {
			t.Errorf("ParseLive(%q) = %v, %v; want %v, ok=%v", tt.query, got, err, tt.want, tt.ok)
		}
	}
}

func TestCursor(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	// 1000 intervals and 7 seconds after the epoch.
	now := DefaultCursorEpoch.Add(1000*DefaultCursorInterval + 7*time.Second)
	const current = 1000

	tests := []struct {
		name   string
		client string
		ahead  bool // the result must be client + [1, 180]
	}{
		{"empty", "", false},
		{"garbage", "abc", false},
		{"negative", "-5", false},
		{"leading zero", "01000", false},
		{"huge", "99999999999999999999", false},
		{"zero", "0", false},
		{"behind", "999", false},
		{"equal", "1000", true},
		{"ahead", "1001", true},
		{"far ahead", "123456789", true},
		{"max", "9007199254740991", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				got := Cursor(now, tt.client, rnd)
				v, err := strconv.ParseInt(got, 10, 64)
				if err != nil {
					t.Fatalf("Cursor = %q, not an integer", got)
				}
				if !tt.ahead {
					if v != current {
						t.Fatalf("Cursor(%q) = %d; want %d", tt.client, v, current)
					}
					continue
				}
				c, _ := strconv.ParseInt(tt.client, 10, 64)
				if d := v - c; d < 1 || d > 180 {
					t.Fatalf("Cursor(%q) = %d; want %d + [1, 180]", tt.client, v, c)
				}
			}
		})
	}
}

func TestCursorIntervals(t *testing.T) {
	tests := []struct {
		now  time.Time
		want string
	}{
		{DefaultCursorEpoch, "0"},
		{DefaultCursorEpoch.Add(19 * time.Second), "0"},
		{DefaultCursorEpoch.Add(20 * time.Second), "1"},
		{DefaultCursorEpoch.Add(-time.Hour), "0"},
		{time.Date(2024, 10, 10, 0, 0, 0, 0, time.UTC), "4320"},
		{time.Date(2024, 10, 10, 2, 0, 0, 0, time.FixedZone("x", 2*3600)), "4320"},
		{time.Time{}, "0"},
	}
	for _, tt := range tests {
		if got := Cursor(tt.now, "", nil); got != tt.want {
			t.Errorf("Cursor(%v) = %s; want %s", tt.now, got, tt.want)
		}
	}
}

// TestCursorMonotonic follows a client that always sends back the cursor
// it was given, as long-poll clients do, and checks the cursor never
// repeats or goes back, even when the clock does.
func TestCursorMonotonic(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cursor := ""
	prev := int64(-1)
	for i := range 10000 {
		// Mostly forward in small steps, sometimes backwards.
		now = now.Add(time.Duration(rnd.IntN(30)-5) * time.Second)
		cursor = Cursor(now, cursor, rnd)
		v, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if v <= prev {
			t.Fatalf("step %d: cursor %d after %d", i, v, prev)
		}
		prev = v
	}
}

func TestCursorNilRand(t *testing.T) {
	now := DefaultCursorEpoch.Add(100 * DefaultCursorInterval)
	v, _ := strconv.ParseInt(Cursor(now, "100", nil), 10, 64)
	if v < 101 || v > 280 {
		t.Errorf("Cursor with nil rnd = %d; want in [101, 280]", v)
	}
}

// FuzzParseReadOffset checks that ParseReadOffset never panics and that
// every accepted token is the canonical spelling of what it parsed to.
func FuzzParseReadOffset(f *testing.F) {
	for _, s := range []string{"", "-1", "now", "0000000000000003_0000000000001024",
		"0,1", "0 1", "abc", "../x", "000000000000003_0000000000001024", "offset=a&offset=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// Both as a single value and as a raw query string, which may
		// carry several values.
		got, err := ParseReadOffset(url.Values{"offset": {raw}})
		if err == nil {
			if !got.Given {
				t.Fatalf("ParseReadOffset(%q): Given false for a present value", raw)
			}
			switch got.Kind {
			case OffsetStart:
				if raw != offset.Start {
					t.Fatalf("ParseReadOffset(%q) = start", raw)
				}
			case OffsetNow:
				if raw != offset.Now {
					t.Fatalf("ParseReadOffset(%q) = now", raw)
				}
			case OffsetToken:
				if got.Token.String() != raw {
					t.Fatalf("ParseReadOffset(%q) = %v, which formats as %q", raw, got.Token, got.Token.String())
				}
			default:
				t.Fatalf("ParseReadOffset(%q): kind %d", raw, got.Kind)
			}
		} else if got != (ReadOffset{}) {
			t.Fatalf("ParseReadOffset(%q) = %+v with error", raw, got)
		}
		if q, err := url.ParseQuery(raw); err == nil {
			ParseReadOffset(q)
			ParseLive(q)
		}
	})
}

func TestCursorClock(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		clock     CursorClock
		now       time.Time
		client    string
		want      int64 // without jitter
		maxJitter int64 // with jitter: client + [1, maxJitter]
	}{
		{"custom epoch and interval", CursorClock{Epoch: epoch, Interval: time.Minute}, epoch.Add(90 * time.Minute), "", 90, 0},
		{"custom interval, default epoch", CursorClock{Interval: 40 * time.Second}, DefaultCursorEpoch.Add(400 * time.Second), "", 10, 0},
		{"before a custom epoch", CursorClock{Epoch: epoch}, epoch.Add(-time.Hour), "", 0, 0},
		{"jitter in minutes", CursorClock{Epoch: epoch, Interval: time.Minute}, epoch.Add(90 * time.Minute), "90", 0, 60},
		{"jitter with an hour interval", CursorClock{Epoch: epoch, Interval: time.Hour}, epoch.Add(5 * time.Hour), "7", 0, 1},
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.clock.Validate(); err != nil {
				t.Fatal(err)
			}
			for range 200 {
				v, err := strconv.ParseInt(tt.clock.Cursor(tt.now, tt.client, rnd), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				if tt.maxJitter == 0 {
					if v != tt.want {
						t.Fatalf("cursor %d, want %d", v, tt.want)
					}
					continue
				}
				c, _ := strconv.ParseInt(tt.client, 10, 64)
				if d := v - c; d < 1 || d > tt.maxJitter {
					t.Fatalf("cursor %d, want %d + [1, %d]", v, c, tt.maxJitter)
				}
			}
		})
	}
	for _, bad := range []CursorClock{{Interval: time.Millisecond}, {Interval: 2 * time.Hour}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) accepted it", bad)
		}
	}
}
