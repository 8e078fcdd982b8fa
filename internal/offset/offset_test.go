package offset

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var tokenRE = regexp.MustCompile(`^[0-9]{16}_[0-9]{16}$`)

func TestZero(t *testing.T) {
	const want = "0000000000000000_0000000000000000"
	if got := Zero.String(); got != want {
		t.Fatalf("Zero.String() = %q, want %q", got, want)
	}
	if len(Zero.String()) != 33 {
		t.Fatalf("Zero token has %d bytes, want 33", len(Zero.String()))
	}
	tok, err := Parse(want)
	if err != nil {
		t.Fatalf("Parse(%q): %v", want, err)
	}
	if tok != Zero {
		t.Fatalf("Parse(%q) = %+v, want Zero", want, tok)
	}
}

func TestStringParseRoundTrip(t *testing.T) {
	tests := []struct {
		tok  Token
		want string
	}{
		{Token{}, "0000000000000000_0000000000000000"},
		{Token{Segment: 0, Position: 1}, "0000000000000000_0000000000000001"},
		{Token{Segment: 3, Position: 418305}, "0000000000000003_0000000000418305"},
		{Token{Segment: 1234567890123456, Position: 42}, "1234567890123456_0000000000000042"},
		{Token{Segment: Max, Position: Max}, "9999999999999999_9999999999999999"},
		{Token{Segment: 10, Position: 1 << 40}, "0000000000000010_0001099511627776"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			s := tc.tok.String()
			if s != tc.want {
				t.Fatalf("String() = %q, want %q", s, tc.want)
			}
			if !tokenRE.MatchString(s) {
				t.Fatalf("String() = %q does not match %v", s, tokenRE)
			}
			got, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			if got != tc.tok {
				t.Fatalf("Parse(String()) = %+v, want %+v", got, tc.tok)
			}
		})
	}
}

func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		tok := Token{Segment: rng.Int64N(Max + 1), Position: rng.Int64N(Max + 1)}
		s := tok.String()
		if !tokenRE.MatchString(s) {
			t.Fatalf("%+v.String() = %q: bad shape", tok, s)
		}
		got, err := Parse(s)
		if err != nil || got != tok {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", s, got, err, tok)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	valid := "0000000000000001_0000000000000002"
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"word", "abc"},
		{"start sentinel", Start},
		{"now sentinel", Now},
		{"comma list", "0,1"},
		{"no separator", strings.Repeat("0", 33)},
		{"dash separator", "0000000000000001-0000000000000002"},
		{"separator misplaced", "000000000000001_00000000000000002"},
		{"15-digit halves", "000000000000000_000000000000000"},
		{"15+16 digits", "000000000000000_0000000000000000"},
		{"16+15 digits", "0000000000000000_000000000000000"},
		{"17+16 digits", "00000000000000000_0000000000000000"},
		{"too long", valid + "0"},
		{"trailing space", valid[:32] + " "},
		{"leading space", " " + valid[1:]},
		{"plus sign", "+000000000000001_0000000000000002"},
		{"minus sign", "-000000000000001_0000000000000002"},
		{"minus in position", "0000000000000001_-000000000000002"},
		{"hex digit", "000000000000000a_0000000000000002"},
		{"uppercase hex", "0000000000000001_000000000000000F"},
		{"two separators", "0000000000000001__000000000000002"},
		{"NUL byte", "0000000000000001_000000000000000\x00"},
		{"arabic-indic digit", "00000000000000\u0661_0000000000000002"},
		{"decimal point", "0000000000000001_00000000000000.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", tc.in, tok)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", tc.in, err)
			}
			if tok != (Token{}) {
				t.Fatalf("Parse(%q) returned non-zero token %+v with an error", tc.in, tok)
			}
		})
	}
}

// randomStream returns the tokens a stream could hand out: strictly
// increasing positions, each with a segment number that never decreases as
// positions grow (the segment that holds the byte before the position).
func randomStream(rng *rand.Rand, n int) []Token {
	toks := make([]Token, 0, n)
	seg, pos := int64(0), int64(0)
	toks = append(toks, Token{})
	for len(toks) < n {
		pos += 1 + rng.Int64N(1<<uint(rng.IntN(40)))
		if rng.IntN(4) == 0 {
			seg += 1 + rng.Int64N(3)
		}
		toks = append(toks, Token{Segment: seg, Position: pos})
	}
	return toks
}

func TestLessMatchesStringOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := range 50 {
		toks := randomStream(rng, 60)
		// Shuffle, then check both orderings agree pairwise and after sorting.
		rng.Shuffle(len(toks), func(i, j int) { toks[i], toks[j] = toks[j], toks[i] })
		for i := range toks {
			for j := range toks {
				a, b := toks[i], toks[j]
				if got, want := a.Less(b), a.String() < b.String(); got != want {
					t.Fatalf("trial %d: %v.Less(%v) = %v, string order says %v", trial, a, b, got, want)
				}
			}
		}
		byLess := append([]Token(nil), toks...)
		sort.Slice(byLess, func(i, j int) bool { return byLess[i].Less(byLess[j]) })
		strs := make([]string, len(toks))
		for i, tk := range toks {
			strs[i] = tk.String()
		}
		sort.Strings(strs)
		for i := range byLess {
			if byLess[i].String() != strs[i] {
				t.Fatalf("trial %d: sorted by Less[%d] = %v, by string = %v", trial, i, byLess[i], strs[i])
			}
		}
	}
}

func TestLessIsStrictOrder(t *testing.T) {
	a := Token{Segment: 2, Position: 10}
	tests := []struct {
		name string
		u    Token
		want bool
	}{
		{"equal", a, false},
		{"greater position", Token{Segment: 2, Position: 11}, true},
		{"smaller position", Token{Segment: 2, Position: 9}, false},
		// Same position, different segment: possible only across streams
		// that share an offset space; the segment breaks the tie like the
		// string does.
		{"same position larger segment", Token{Segment: 3, Position: 10}, true},
		{"same position smaller segment", Token{Segment: 1, Position: 10}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Less(tc.u); got != tc.want {
				t.Fatalf("%v.Less(%v) = %v, want %v", a, tc.u, got, tc.want)
			}
			if got, want := a.Less(tc.u), a.String() < tc.u.String(); got != want {
				t.Fatalf("Less disagrees with string order for %v vs %v", a, tc.u)
			}
		})
	}
}
