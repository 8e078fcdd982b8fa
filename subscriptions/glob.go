package subscriptions

import "strings"

// Match reports whether a stream path matches a subscription pattern.
// Patterns are split into '/'-separated segments: "*" matches exactly one
// segment, "**" zero or more, and any other segment itself.
func Match(pattern, path string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(path, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case "**":
			// Collapse runs of "**" so the recursion below stays linear
			// in their number.
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			for i := 0; i <= len(segs); i++ {
				if matchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(segs) == 0 {
				return false
			}
		default:
			if len(segs) == 0 || segs[0] != pat[0] {
				return false
			}
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// literalPrefix is the part of pattern before its first wildcard segment
// ("events/" for "events/*", "events" for "events/**", which also matches
// "events" itself), or "" when the pattern starts with one: every stream
// the pattern matches has this prefix, so a listing can start there.
func literalPrefix(pattern string) string {
	segs := strings.Split(pattern, "/")
	var b strings.Builder
	for i, s := range segs {
		switch {
		case s == "**":
			return strings.TrimSuffix(b.String(), "/")
		case s == "*" || i == len(segs)-1:
			return b.String()
		}
		b.WriteString(s)
		b.WriteByte('/')
	}
	return b.String()
}
