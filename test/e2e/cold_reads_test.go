package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// TestColdReadsByteIdentical appends random data to a binary and a JSON
// stream with aggressive rotation against MinIO, waits until every sealed
// segment is in the bucket, and checks that reads return exactly what was
// appended: the whole stream through the chunk chain, and random reads from
// every kind of recorded offset, each within one segment. It restarts the
// server (which starts with an empty segment cache and tail cache) and
// checks again, so the old segments are read from MinIO, then appends more
// and checks everything once more after a second restart.
func TestColdReadsByteIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	env := startCold(t)
	c := env.client
	rng := rand.New(rand.NewPCG(20240611, 1))

	bin := newModel("cold/reads/bin", env.srv.StreamURL("cold/reads/bin"), "application/octet-stream")
	js := newModel("cold/reads/json", env.srv.StreamURL("cold/reads/json"), "application/json")
	models := []*streamModel{bin, js}
	for _, m := range models {
		createStream(t, c, m.url, m.ct, nil)
	}
	ids := map[*streamModel]int64{}
	for _, m := range models {
		ids[m] = streamID(t, c, m.url)
	}
	if ids[bin] == ids[js] {
		t.Fatalf("both streams have id %d", ids[bin])
	}

	nextJSON := 0
	// grow appends until the stream's tail token names segment >= seg.
	grow := func(m *streamModel, seg int64) {
		for m.tail().seg < seg {
			if m.json {
				batch := make([][]byte, 1+rng.IntN(5))
				for i := range batch {
					batch[i] = fmt.Appendf(nil, `{"n":%d,"s":"%s","ok":%t}`, nextJSON, randWord(rng, rng.IntN(40)), rng.IntN(2) == 0)
					nextJSON++
				}
				m.appendMsgs(t, c, batch)
			} else {
				b := make([]byte, 1+rng.IntN(3<<10))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				m.appendMsgs(t, c, [][]byte{b})
			}
		}
	}
	// settle waits until every segment up to the tail's is in the bucket
	// (the open segment is sealed by age two seconds after its first
	// message).
	settle := func() {
		want := map[int64]int64{}
		for _, m := range models {
			want[ids[m]] = m.tail().seg
		}
		env.awaitUploads(t, want, 20*time.Second)
	}
	verify := func(phase string) {
		for _, m := range models {
			rc := m.checker(t)
			start := time.Now()
			n := rc.readWhole(t, c, true)
			rc.randomReads(t, c, 200, rng.IntN)
			t.Logf("%s: %s: %d bytes in %d segments read back in %d chunks + 200 random reads (%v)",
				phase, m.name, m.tail().pos, len(rc.bounds), n, time.Since(start).Round(time.Millisecond))
		}
	}

	// Phase 1: ~45 segments per stream.
	grow(bin, 45)
	grow(js, 45)
	settle()
	verify("phase 1")

	// Restart: the server's segment cache is emptied at start and its tail
	// cache is in memory, so the sealed segments now come from MinIO.
	env.srv.Stop()
	checkIndexUploaded(t, env.srv.DataDir, ids, models)
	env.srv.Restart(t)
	verify("after restart")

	// Phase 2: more data on top, then another restart.
	grow(bin, 90)
	grow(js, 90)
	settle()
	verify("phase 2")
	env.srv.Restart(t)
	verify("after second restart")
}

// checkIndexUploaded opens the (stopped) server's catalog and checks that
// the admin index lists every segment of the streams as uploaded.
func checkIndexUploaded(t *testing.T, dataDir string, ids map[*streamModel]int64, models []*streamModel) {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, m := range models {
		var n, up int
		var maxSeg int64
		for _, g := range streamSegments(t, cat, ids[m]) {
			n++
			if g.State == segment.Uploaded {
				up++
			}
			maxSeg = max(maxSeg, g.Seg)
		}
		last := m.tail().seg
		if n != int(last+1) || up != n || maxSeg != last {
			t.Errorf("%s: admin index has %d rows (%d uploaded, max segment %v), want segments 0..%d all uploaded",
				m.name, n, up, maxSeg, last)
		}
	}
}

func randWord(rng *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}
