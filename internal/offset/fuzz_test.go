package offset

import "testing"

// FuzzParse checks that Parse never panics, that what it accepts is the
// canonical spelling of the token it returns, and that accepted tokens
// order as their strings do when their segments agree with their
// positions (as they do on one stream).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0000000000000000_0000000000000000", "0000000000000003_0000000000001024",
		"9999999999999999_9999999999999999", "-1", "now", "", "0000000000000003-0000000000001024",
		"000000000000000+_0000000000000001", "0000000000000003_000000000000102a", "٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠_0"} {
		f.Add(s, "0000000000000001_0000000000000010")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, err := Parse(a)
		if err != nil {
			if ta != (Token{}) {
				t.Fatalf("Parse(%q) = %+v with error", a, ta)
			}
			return
		}
		if ta.Segment < 0 || ta.Segment > Max || ta.Position < 0 || ta.Position > Max {
			t.Fatalf("Parse(%q) = %+v out of range", a, ta)
		}
		if got := ta.String(); got != a {
			t.Fatalf("Parse(%q) = %+v, which formats as %q", a, ta, got)
		}
		tb, err := Parse(b)
		if err != nil {
			return
		}
		if (ta.Segment <= tb.Segment) == (ta.Position <= tb.Position) && ta.Less(tb) != (a < b) {
			t.Fatalf("%q < %q is %v but Less says %v", a, b, a < b, ta.Less(tb))
		}
	})
}
