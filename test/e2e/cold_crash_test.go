package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// crashRecord is record i of stream s: 1 KiB, self-describing.
func crashRecord(s, i int) []byte {
	b := bytes.Repeat([]byte{byte('a' + i%26)}, crashRecSize)
	copy(b, fmt.Sprintf("s%d:%07d|", s, i))
	b[crashRecSize-1] = '\n'
	return b
}

const crashRecSize = 1024

// TestCrashDuringUpload is the cold-tier crash test: with verified uploads
// and aggressive rotation, four writers append 1 KiB records as fast as they
// can (hundreds of segments), and the server is killed with SIGKILL while
// uploads are in progress, twice (early, when the first objects appear, and
// mid-way through the uploads). After each restart every acknowledged
// record reads back exactly once and in order; when the uploads have
// finished, the admin index and the bucket must agree: every 'uploaded' row
// has an object that passes segment.Verify with the row's CRC32C, every
// object has a row, and no row is left 'sealed'.
func TestCrashDuringUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	env := startCold(t, append(append([]string{}, aggressiveRotation...), "--verify-uploads", "full")...)
	srv := env.srv
	const (
		nStreams  = 4
		perStream = 250 // per iteration: 1000 appends of 1 KiB, ~250 segments
	)
	urls := make([]string, nStreams)
	ids := make([]int64, nStreams)
	for s := range nStreams {
		urls[s] = srv.StreamURL(fmt.Sprintf("cold/crash/%d", s))
		createStream(t, env.client, urls[s], "application/octet-stream", nil)
		ids[s] = streamID(t, env.client, urls[s])
	}
	next := make([]int, nStreams) // records stored so far per stream

	iterations := []struct {
		name   string
		killAt int // new objects in the bucket that trigger the kill
	}{
		{"early", 8},
		{"mid-way", 90},
	}
	for _, it := range iterations {
		before := mustList(t, env.bucket).count()
		var (
			wg      sync.WaitGroup
			acked   = make([]int, nStreams) // last acknowledged record index, -1 if none
			lastSeg = make([]int64, nStreams)
			done    atomic.Int32
		)
		for s := range nStreams {
			acked[s] = next[s] - 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := loopbackClient(10 * time.Second)
				for i := next[s]; i < next[s]+perStream; i++ {
					resp, body, err := tryDo(context.Background(), c, http.MethodPost, urls[s], crashRecord(s, i),
						map[string]string{"Content-Type": "application/octet-stream"})
					if err != nil {
						return // killed: this append's fate is unknown
					}
					if resp.StatusCode/100 != 2 {
						t.Errorf("stream %d record %d: status %d: %s", s, i, resp.StatusCode, body)
						return
					}
					acked[s] = i
					var seg int64
					fmt.Sscanf(resp.Header.Get("Stream-Next-Offset"), "%d_", &seg)
					lastSeg[s] = seg
				}
				done.Add(1)
			}()
		}
		// Kill when enough new objects are in the bucket.
		deadline := time.Now().Add(40 * time.Second)
		var atKill int
		for {
			atKill = mustList(t, env.bucket).count()
			if atKill-before >= it.killAt {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d new objects after 40 s", it.name, atKill-before)
			}
			time.Sleep(20 * time.Millisecond)
		}
		srv.Kill()
		wg.Wait()
		if t.Failed() {
			return
		}
		after := mustList(t, env.bucket).count() // no more uploads can happen
		// Segments 0..lastSeg-1 of every stream were certainly sealed.
		var sealed int64
		for s := range nStreams {
			sealed += lastSeg[s]
		}

		srv.Restart(t)
		// The acknowledgements undercount the segments sealed at the kill
		// (a seal after a stream's last acknowledged append is not in its
		// offsets); the restarted server's tails count them all, before
		// anything is appended again. Sealing by age after the restart
		// could only add to them.
		var tails int64
		for s := range nStreams {
			tails += parseToken(t, readChunkAt(t, env.client, urls[s], "now").next).seg
		}
		sealed = max(sealed, tails)
		t.Logf("%s kill: writers finished: %d/%d; %d records acknowledged; bucket: %d objects before, %d at kill (%d after), at least %d segments sealed",
			it.name, done.Load(), nStreams, sum(acked)+nStreams-sum(next), before, atKill, after, sealed)
		if after <= before || int64(after) >= sealed {
			t.Errorf("%s kill: want some but not all sealed segments uploaded at the kill: %d objects (%d before), >= %d sealed",
				it.name, after, before, sealed)
		}
		for s := range nStreams {
			n := checkCrashStream(t, env.client, urls[s], s, acked[s])
			next[s] = n
		}
	}

	// Let the uploads finish (the open segments are sealed by age), then
	// everything must still read back exactly once, now mostly from MinIO.
	want := map[int64]int64{}
	for s := range nStreams {
		want[ids[s]] = parseToken(t, readChunkAt(t, env.client, urls[s], "now").next).seg
	}
	start := time.Now()
	l := env.awaitUploads(t, want, 30*time.Second)
	t.Logf("all %d segments uploaded %v after the last restart", l.count(), time.Since(start).Round(time.Millisecond))
	for s := range nStreams {
		checkCrashStream(t, env.client, urls[s], s, next[s]-1)
	}

	srv.Stop()
	checkAdminIndex(t, env, srv.DataDir)
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// checkCrashStream reads stream s and checks it holds records 0..n-1 of s,
// each once and in order, with n-1 >= acked (an unacknowledged append that
// was in flight at the kill may be there too, only as the last record).
// It returns n.
func checkCrashStream(t *testing.T, c *http.Client, url string, s, acked int) int {
	t.Helper()
	var all []byte
	off := "-1"
	for {
		ch := readChunkAt(t, c, url, off)
		all = append(all, ch.body...)
		if ch.upToDate {
			break
		}
		off = ch.next
	}
	if len(all)%crashRecSize != 0 {
		t.Fatalf("stream %d: %d bytes, not a whole number of %d-byte records", s, len(all), crashRecSize)
	}
	n := len(all) / crashRecSize
	for i := range n {
		if got := all[i*crashRecSize : (i+1)*crashRecSize]; !bytes.Equal(got, crashRecord(s, i)) {
			t.Fatalf("stream %d: record %d is %q..., want record %d (lost, duplicated or reordered data)", s, i, got[:16], i)
		}
	}
	if n-1 < acked || n-1 > acked+1 {
		t.Fatalf("stream %d: %d records stored, but %d were acknowledged (at most one more may have been in flight)", s, n, acked+1)
	}
	return n
}

// checkAdminIndex compares the stopped server's admin index with the bucket.
func checkAdminIndex(t *testing.T, env *coldEnv, dataDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cat, err := catalog.Open(ctx, filepath.Join(dataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	type row struct {
		stream, seg, first, end, size, msgs, checksum int64
		key                                           string
		state                                         segment.State
	}
	var all []row
	for _, g := range streamSegments(t, cat, 0) {
		all = append(all, row{stream: g.StreamID, seg: g.Seg, first: g.FirstPos, end: g.EndPos, size: g.Bytes,
			msgs: g.Messages, checksum: int64(g.Checksum), key: g.ObjectKey, state: g.State})
	}
	l := mustList(t, env.bucket)
	objects := map[string]bool{}
	for _, k := range l.keys {
		objects[k] = true
	}
	indexed := map[string]bool{}
	var uploaded, sealed, verified int
	for _, r := range all {
		indexed[r.key] = true
		if want := fmt.Sprintf("%d/%016d.seg", r.stream, r.seg); r.key != want {
			t.Errorf("row (%d,%d): object_key %q, want %q", r.stream, r.seg, r.key, want)
		}
		switch r.state {
		case "sealed":
			sealed++
			t.Errorf("row (%d,%d) is still 'sealed' after all uploads finished (object present: %v)", r.stream, r.seg, objects[r.key])
			continue
		case "uploaded":
			uploaded++
		default:
			t.Errorf("row (%d,%d): unknown state %q", r.stream, r.seg, r.state)
			continue
		}
		if !objects[r.key] {
			t.Errorf("row (%d,%d) is 'uploaded' but object %s is missing", r.stream, r.seg, r.key)
			continue
		}
		b, err := env.bucket.read(ctx, r.key)
		if err != nil {
			t.Fatalf("get %s: %v", r.key, err)
		}
		ix, err := segment.Verify(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Errorf("object %s fails verification: %v", r.key, err)
			continue
		}
		h := ix.Header
		switch {
		case ix.ObjectCRC != uint32(r.checksum):
			t.Errorf("object %s: CRC32C %08x, admin index says %08x", r.key, ix.ObjectCRC, uint32(r.checksum))
		case int64(len(b)) != r.size:
			t.Errorf("object %s: %d bytes, admin index says %d", r.key, len(b), r.size)
		case h.StreamID != r.stream || h.Segment != r.seg || h.Start != r.first || h.End != r.end || h.Count != r.msgs:
			t.Errorf("object %s: header (stream %d, segment %d, [%d,%d), %d messages) differs from its row (%d, %d, [%d,%d), %d)",
				r.key, h.StreamID, h.Segment, h.Start, h.End, h.Count, r.stream, r.seg, r.first, r.end, r.msgs)
		default:
			verified++
		}
	}
	for _, k := range l.keys {
		if !indexed[k] {
			t.Errorf("object %s has no admin index row", k)
		}
	}
	t.Logf("admin index: %d rows (%d uploaded, %d sealed); bucket: %d objects; %d objects verified against their rows",
		len(all), uploaded, sealed, l.count(), verified)
}
