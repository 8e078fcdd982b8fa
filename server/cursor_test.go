package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestCursorIntervalValidated(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Hour} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), CursorInterval: d})
		if err == nil || !strings.Contains(err.Error(), "cursor interval") {
			t.Errorf("CursorInterval %v: %v, want a cursor interval error", d, err)
		}
	}
}
