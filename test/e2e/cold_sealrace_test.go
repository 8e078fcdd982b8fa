package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
)

// TestColdEverySealUploaded seals a segment with every append, paced so
// that the rotation workers are idle at each seal, and checks that every
// sealed segment reaches the bucket without any restart.
//
// Regression test: the actor used to notify the uploader of a seal before
// publishing the snapshot containing the segment (sequencer/commit.go,
// committed); an idle worker that won the race found no such segment in
// rotation.(*Rotator).upload, returned nil and dropped the job, so the
// segment stayed in the hot log, without an admin index row, until the
// stream was next opened. It lost a few percent of the seals here (fixed by
// 2b5bfe0, "Publish a sealed segment before notifying the uploader").
func TestColdEverySealUploaded(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	env := startCold(t, "--seal-bytes", "1048576", "--seal-messages", "1", "--seal-age", "1h")
	c := env.client
	url := env.srv.StreamURL("cold/sealrace")
	createStream(t, c, url, "application/octet-stream", nil)
	id := streamID(t, c, url)
	const appends = 150
	var last token
	for i := range appends {
		last = parseToken(t, appendTo(t, c, url, "application/octet-stream", fmt.Appendf(nil, "message %d", i)))
		// Pace the appends so that the rotation workers are idle when the
		// next seal comes (that is when the race is lost).
		time.Sleep(20 * time.Millisecond)
	}
	if last.seg != appends-1 {
		t.Fatalf("tail token %s after %d appends, each sealing its segment: want segment %d", last, appends, appends-1)
	}

	// Wait until all are uploaded, or nothing has arrived for 5 s.
	deadline := time.Now().Add(30 * time.Second)
	lastCount, lastProgress := -1, time.Now()
	var l listing
	for time.Now().Before(deadline) && time.Since(lastProgress) < 5*time.Second {
		l = mustList(t, env.bucket)
		if hasAll(l.byID[id], last.seg) {
			return // every sealed segment was uploaded
		}
		if l.count() != lastCount {
			lastCount, lastProgress = l.count(), time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	missing := missingSegs(l.byID[id], last.seg)
	if len(missing) == 0 {
		t.Fatalf("uploads did not finish within 30 s: %d of %d objects", len(l.byID[id]), appends)
	}

	// A failed upload would have left a 'sealed' admin index row and a
	// "will retry" log line; a dropped job leaves neither.
	env.srv.Stop()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(env.srv.DataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	var rows int
	for _, s := range missing {
		for _, g := range streamSegments(t, cat, id) {
			if g.Seg == s {
				rows++
			}
		}
	}
	t.Fatalf("%d of %d sealed segments were never uploaded (segments %v; no new object for 5 s); "+
		"admin index rows for them: %d, 'will retry' log lines: %d (none of either means the upload jobs were dropped)",
		len(missing), appends, missing, rows, strings.Count(env.srv.Log(), "will retry"))
}

// missingSegs returns the numbers in 0..last that are not in segs (sorted).
func missingSegs(segs []int64, last int64) []int64 {
	have := map[int64]bool{}
	for _, s := range segs {
		have[s] = true
	}
	var out []int64
	for s := int64(0); s <= last; s++ {
		if !have[s] {
			out = append(out, s)
		}
	}
	return out
}
