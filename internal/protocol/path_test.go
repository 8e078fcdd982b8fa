package protocol

import (
	"strings"
	"testing"
)

func TestValidateStreamPath(t *testing.T) {
	tests := []struct {
		p       string
		wantErr string // substring; "" means valid
	}{
		{"a", ""},
		{"a/b/c", ""},
		{"ünï", ""},
		{"日本/語", ""},
		{"a.b", ""},
		{"...", ""},
		{".a/b.", ""},
		{"a b", ""},
		{"a%2Fb", ""},
		{"a:b@c?d#e", ""},
		{strings.Repeat("x", 1024), ""},

		{"", "empty"},
		{"/a", "slash"},
		{"a/", "slash"},
		{"/", "slash"},
		{"a//b", "empty segments"},
		{"a/../b", `".."`},
		{"a/./b", `"."`},
		{".", `"."`},
		{"..", `".."`},
		{"../a", `".."`},
		{"a/..", `".."`},
		{"a\x00b", "control"},
		{"a\nb", "control"},
		{"a\rb", "control"},
		{"a\tb", "control"},
		{"a\x1fb", "control"},
		{"a\x7fb", "control"},
		{"a\\b", "backslash"},
		{"..\\a", "backslash"},
		{"a\xffb", "UTF-8"},
		{"\xc3", "UTF-8"},
		{strings.Repeat("x", 1025), "1024"},
		{strings.Repeat("a/", 600), "1024"},
	}
	for _, tt := range tests {
		err := ValidateStreamPath(tt.p)
		short := tt.p
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateStreamPath(%q) = %v; want nil", short, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ValidateStreamPath(%q) = nil; want error containing %q", short, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ValidateStreamPath(%q) = %v; want error containing %q", short, err, tt.wantErr)
		}
	}
}

func FuzzValidateStreamPath(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a/../b", "a//b", "ünï", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateStreamPath(p) != nil {
			return
		}
		if len(p) == 0 || len(p) > MaxStreamPathLen || strings.ContainsAny(p, "\\\x00\n\r") ||
			strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("ValidateStreamPath(%q) accepted an invalid path", p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("ValidateStreamPath(%q) accepted a dot segment", p)
			}
		}
	})
}
