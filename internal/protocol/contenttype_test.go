package protocol

import "testing"

func TestParseContentType(t *testing.T) {
	tests := []struct {
		in     string
		full   string
		media  string
		ok     bool
		isJSON bool
		isText bool
	}{
		{"TEXT/PLAIN", "text/plain", "text/plain", true, false, true},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8", "text/plain", true, false, true},
		{"Text/Plain;Charset=UTF-8", "text/plain; charset=UTF-8", "text/plain", true, false, true},
		{"text/html", "text/html", "text/html", true, false, true},
		{"text/event-stream", "text/event-stream", "text/event-stream", true, false, true},
		{"application/json", "application/json", "application/json", true, true, true},
		{"application/json; charset=utf-8", "application/json; charset=utf-8", "application/json", true, true, true},
		{"APPLICATION/JSON", "application/json", "application/json", true, true, true},
		{`application/json; charset="utf-8"`, "application/json; charset=utf-8", "application/json", true, true, true},
		{"application/octet-stream", "application/octet-stream", "application/octet-stream", true, false, false},
		{"application/ld+json", "application/ld+json", "application/ld+json", true, false, false},
		{"application/x-ndjson", "application/x-ndjson", "application/x-ndjson", true, false, false},
		{"image/png", "image/png", "image/png", true, false, false},
		{"textual/plain", "textual/plain", "textual/plain", true, false, false},
		{"text/plain; b=2; a=1", "text/plain; a=1; b=2", "text/plain", true, false, true},
		{"text/plain; name=\"a b\"", "text/plain; name=\"a b\"", "text/plain", true, false, true},

		{"", "", "", false, false, false},
		{"text", "", "", false, false, false},
		{"json", "", "", false, false, false},
		{"text/", "", "", false, false, false},
		{"/plain", "", "", false, false, false},
		{"text/plain;;", "", "", false, false, false},
		{"text/plain; charset", "", "", false, false, false},
		{"text/plain; a=1; a=2", "", "", false, false, false},
		{"text/plain/x", "", "", false, false, false},
		{"text plain", "", "", false, false, false},
		{"tëxt/plain", "", "", false, false, false},
		{"text/plain\x00", "", "", false, false, false},
		{";", "", "", false, false, false},
	}
	for _, tt := range tests {
		got, err := ParseContentType(tt.in)
		if tt.ok != (err == nil) {
			t.Errorf("ParseContentType(%q) = %+v, %v; want ok=%v", tt.in, got, err, tt.ok)
			continue
		}
		if err != nil {
			if got != (ContentType{}) {
				t.Errorf("ParseContentType(%q) = %+v with error", tt.in, got)
			}
			continue
		}
		if got.Full != tt.full || got.Media != tt.media {
			t.Errorf("ParseContentType(%q) = %+v; want {%q %q}", tt.in, got, tt.full, tt.media)
		}
		if got.IsJSON() != tt.isJSON {
			t.Errorf("ParseContentType(%q).IsJSON() = %v", tt.in, got.IsJSON())
		}
		if got.IsText() != tt.isText {
			t.Errorf("ParseContentType(%q).IsText() = %v", tt.in, got.IsText())
		}
		// Normalizing is idempotent.
		again, err := ParseContentType(got.Full)
		if err != nil || again != got {
			t.Errorf("ParseContentType(%q) = %+v, %v; want %+v", got.Full, again, err, got)
		}
	}
}

func TestSameMedia(t *testing.T) {
	ct := func(s string) ContentType {
		c, err := ParseContentType(s)
		if err != nil {
			t.Fatalf("ParseContentType(%q): %v", s, err)
		}
		return c
	}
	tests := []struct {
		a, b ContentType
		want bool
	}{
		{ct("text/plain"), ct("TEXT/PLAIN"), true},
		{ct("text/plain; charset=utf-8"), ct("text/plain"), true},
		{ct("application/json; charset=utf-8"), ct("Application/JSON; charset=latin1"), true},
		{ct("text/plain"), ct("text/html"), false},
		{ct("application/json"), ct("application/ld+json"), false},
		{ct("application/json"), ContentType{}, false},
		// Unnormalized values, as a caller might construct by hand.
		{ContentType{Media: "Text/Plain"}, ct("text/plain"), true},
		{ContentType{}, ContentType{}, true},
	}
	for _, tt := range tests {
		if got := tt.a.SameMedia(tt.b); got != tt.want {
			t.Errorf("%+v.SameMedia(%+v) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.SameMedia(tt.a); got != tt.want {
			t.Errorf("%+v.SameMedia(%+v) = %v; want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestContentTypeZero(t *testing.T) {
	var c ContentType
	if c.IsJSON() || c.IsText() {
		t.Errorf("zero ContentType: IsJSON=%v IsText=%v; want false", c.IsJSON(), c.IsText())
	}
}
