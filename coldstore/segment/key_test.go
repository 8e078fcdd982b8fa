package segment

import "testing"

func TestParseObjectKey(t *testing.T) {
	for key, want := range map[string]bool{
		ObjectKey(1, 0):            true,
		ObjectKey(42, 123456789):   true,
		"1/0.seg":                  false,
		"01/0000000000000000.seg":  false,
		"0/0000000000000000.seg":   false,
		"1/0000000000000000.dat":   false,
		"1/0000000000000000.seg/x": false,
		"x/0000000000000000.seg":   false,
		"1/-000000000000001.seg":   false,
		"junk":                     false,
	} {
		if _, _, ok := ParseObjectKey(key); ok != want {
			t.Errorf("ParseObjectKey(%q) ok = %t, want %t", key, ok, want)
		}
	}
}
