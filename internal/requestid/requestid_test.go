package requestid

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793", true},
		{"svc/abc:1.2_3+x", true},
		{strings.Repeat("a", MaxLen), true},
		{strings.Repeat("a", MaxLen+1), false},
		{"with space", false},
		{"new\nline", false},
		{"tab\t", false},
		{`quote"`, false},
		{"semi;colon", false},
		{"ünïcode", false},
		{"<script>", false},
		{"\x00", false},
	}
	for _, tc := range tests {
		if got := Valid(tc.id); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestNew(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if !re.MatchString(id) || !Valid(id) {
			t.Fatalf("New() = %q", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestHandlerAddsID(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	if h := NewHandler(lg.Handler()); h != lg.Handler() {
		t.Error("wrapping twice should not nest")
	}
	ctx := NewContext(context.Background(), "req-1")
	lg.InfoContext(ctx, "with")
	lg.Info("without")
	lg.With("k", "v").InfoContext(ctx, "derived")
	Logger(ctx, slog.New(slog.NewJSONHandler(&buf, nil))).Info("helper")

	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	want := map[string]any{"with": "req-1", "without": nil, "derived": "req-1", "helper": "req-1"}
	for _, m := range got {
		if id := m[Attr]; id != want[m["msg"].(string)] {
			t.Errorf("%v: request_id %v, want %v", m["msg"], id, want[m["msg"].(string)])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d lines, want %d", len(got), len(want))
	}
	if FromContext(context.Background()) != "" {
		t.Error("id from an empty context")
	}
}
