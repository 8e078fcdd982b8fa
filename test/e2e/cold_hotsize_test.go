package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHotLogStaysSmall writes 40 MiB to one stream in 64 KiB appends with
// the default rotation (4 MiB segments) against MinIO and checks that the
// stream's hot log is trimmed once the segments are uploaded: its database
// file ends below 24 MiB (it would hold 40 MiB otherwise). It also measures
// catch-up reads with 1 MiB chunks — from MinIO after a restart (empty
// segment cache), again with the cache warm, and of a fresh tail from the
// hot log — and logs them on a line starting "COLD-BENCH" (not asserted).
func TestHotLogStaysSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	const (
		segBytes   = 4 << 20
		appendSize = 64 << 10
		total      = 40 << 20
	)
	env := startCold(t, "--seal-bytes", fmt.Sprint(segBytes), "--max-read-chunk", fmt.Sprint(1<<20), "--read-response-max", fmt.Sprint(1<<20))
	srv, c := env.srv, env.client
	const ct = "application/octet-stream"
	url := srv.StreamURL("cold/hot/big")
	createStream(t, c, url, ct, nil)
	id := streamID(t, c, url)

	rng := rand.New(rand.NewPCG(40, 64))
	data := make([]byte, total+segBytes)
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}

	// Sample the hot log's size while writing.
	var (
		maxDB, maxWAL int64
		sampleMu      sync.Mutex
	)
	sample := func() (db, wal int64, path string) {
		for p, n := range hotLogFiles(srv.DataDir) {
			switch {
			case strings.HasSuffix(p, ".db") && n > db:
				db, path = n, p
			case strings.HasSuffix(p, ".db-wal") && n > wal:
				wal = n
			}
		}
		sampleMu.Lock()
		maxDB, maxWAL = max(maxDB, db), max(maxWAL, wal)
		sampleMu.Unlock()
		return db, wal, path
	}
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
				sample()
			}
		}
	}()
	start := time.Now()
	var last token
	for off := 0; off < total; off += appendSize {
		last = parseToken(t, appendTo(t, c, url, ct, data[off:off+appendSize]))
	}
	writeDur := time.Since(start)
	close(stopSampling)
	sampler.Wait()
	if last.pos != total || last.seg != total/segBytes-1 {
		t.Fatalf("tail after writing: %s, want segment %d, position %d", last, total/segBytes-1, total)
	}
	t.Logf("wrote %s in %v (%.1f MiB/s); hot log while writing: up to %s database, %s WAL",
		mib(total), writeDur.Round(time.Millisecond), mibps(total, writeDur), mib(maxDB), mib(maxWAL))

	// All ten sealed segments are uploaded, then trimmed from the hot log.
	start = time.Now()
	env.awaitUploads(t, map[int64]int64{id: last.seg}, 30*time.Second)
	t.Logf("all %d segments uploaded %v after the last append", last.seg+1, time.Since(start).Round(time.Millisecond))
	const dbLimit = 24 << 20
	var db, wal int64
	var path string
	deadline := time.Now().Add(20 * time.Second)
	for {
		db, wal, path = sample()
		if db < dbLimit || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("hot log %s after the uploads: %s database + %s WAL (%s of data written; max while writing: %s + %s)",
		strings.TrimPrefix(path, srv.DataDir+"/"), mib(db), mib(wal), mib(total), mib(maxDB), mib(maxWAL))
	if db >= dbLimit {
		t.Errorf("hot log database is %s after all segments were uploaded, want < %s", mib(db), mib(dbLimit))
	}
	if slack := int64(3*segBytes + 64<<20); db+wal >= slack {
		t.Errorf("hot log database + WAL is %s, want < 3 segments + 64 MiB WAL slack (%s)", mib(db+wal), mib(slack))
	}

	// Reads. A restart starts with an empty segment cache: the first pass
	// reads every segment from MinIO, the second from the disk cache.
	srv.Restart(t)
	readAll := func(from string, want []byte) time.Duration {
		t.Helper()
		start := time.Now()
		got := make([]byte, 0, len(want))
		off := from
		for {
			ch := readChunkAt(t, c, url, off)
			if len(ch.body) > 1<<20 {
				t.Fatalf("read at %s returned %d bytes, more than --max-read-chunk", off, len(ch.body))
			}
			got = append(got, ch.body...)
			if ch.upToDate {
				break
			}
			off = ch.next
		}
		d := time.Since(start)
		if !bytes.Equal(got, want) {
			t.Fatalf("read from %s: %d bytes, want %d; first difference at %d", from, len(got), len(want), firstDiff(got, want))
		}
		return d
	}
	coldDur := readAll("-1", data[:total])
	warmDur := readAll("-1", data[:total])

	// A fresh tail just below one segment, so that it stays in the hot log
	// (open segment); the last 256 KiB of it are also in the tail cache.
	tailStart := last.String()
	const tailBytes = segBytes - appendSize
	for off := total; off < total+tailBytes; off += appendSize {
		appendTo(t, c, url, ct, data[off:off+appendSize])
	}
	const hotReads = 5
	var hotDur time.Duration
	for range hotReads {
		hotDur += readAll(tailStart, data[total:total+tailBytes])
	}
	if l := mustList(t, env.bucket); len(l.byID[id]) != int(last.seg+1) {
		t.Errorf("the fresh tail was uploaded (%d objects): the hot measurement read cold data", len(l.byID[id]))
	}

	line := fmt.Sprintf("COLD-BENCH catch-up reads, 1 MiB chunks, 4 MiB segments, MinIO on loopback: "+
		"cold (MinIO, empty cache) %.1f MiB/s (%s in %v); warm (disk cache) %.1f MiB/s (%v); "+
		"hot log %.1f MiB/s (%d x %s in %v); writes %.1f MiB/s (64 KiB appends)",
		mibps(total, coldDur), mib(total), coldDur.Round(time.Millisecond),
		mibps(total, warmDur), warmDur.Round(time.Millisecond),
		mibps(hotReads*tailBytes, hotDur), hotReads, mib(tailBytes), hotDur.Round(time.Millisecond),
		mibps(total, writeDur))
	t.Log(line)
	Summary(line)
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
