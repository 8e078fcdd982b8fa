package subscriptions

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"events/*", "events/a", true},
		{"events/*", "events/a/b", false},
		{"events/*", "events", false},
		{"events/*", "other/a", false},
		{"events/**", "events", true},
		{"events/**", "events/a/b/c", true},
		{"**", "anything/at/all", true},
		{"**/x", "a/b/x", true},
		{"**/x", "x", true},
		{"**/x", "a/b/y", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/c", false},
		{"a/**/**/c", "a/c", true},
		{"events/abc", "events/abc", true},
		{"events/abc", "events/abd", false},
		{"events/a*", "events/abc", false}, // * is a whole segment, not a character wildcard
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"events/*", "events/"},
		{"events/**", "events"},
		{"a/b/*/c", "a/b/"},
		{"*", ""},
		{"**", ""},
		{"exact/path", "exact/"},
	} {
		if got := literalPrefix(tc.pattern); got != tc.want {
			t.Errorf("literalPrefix(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
}
