package sequencer_test

import (
	"testing"

	"github.com/streamtier/durable-streams/internal/offset"
)

// TestForkReadDoesNotCorruptSourceCache is a regression test: stitching a
// fork's boundary segment once appended the fork's messages into the
// source's in-memory tail cache, so later reads of the source returned the
// fork's data.
func TestForkReadDoesNotCorruptSourceCache(t *testing.T) {
	e := newEnv(t, nil)
	e.createStream("src", "application/json")
	e.appendMsgs("src", "application/json", `{"i":1}`, `{"i":2}`, `{"i":3}`)
	e.fork("fork", "src", &offset.Token{}, 1).Handle.Release()
	e.appendMsgs("fork", "application/json", `{"i":99}`)
	if got := e.messages("fork", 1<<20); !equalStrings(got, []string{`{"i":1}`, `{"i":99}`}) {
		t.Fatalf("fork = %q", got)
	}
	if got := e.messages("src", 1<<20); !equalStrings(got, []string{`{"i":1}`, `{"i":2}`, `{"i":3}`}) {
		t.Fatalf("source after fork read = %q", got)
	}
}
