package invariants

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestFailf(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, nil))
	defer func() {
		r := recover()
		if Enabled {
			if r == nil || !strings.Contains(r.(string), "segment 7 missing") {
				t.Fatalf("Failf under the invariants tag: recovered %v, want a panic", r)
			}
			return
		}
		if r != nil {
			t.Fatalf("Failf without the invariants tag panicked: %v", r)
		}
		if !strings.Contains(buf.String(), "segment 7 missing") {
			t.Fatalf("Failf logged %q", buf.String())
		}
	}()
	if !Check(true, lg, "never") {
		t.Fatal("Check(true) = false")
	}
	Check(false, lg, "segment %d missing", 7)
}
