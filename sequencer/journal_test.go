package sequencer_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// hotFiles are the files of a hot log.
func hotFiles(path string) []string {
	return []string{path, path + "-wal", path + "-shm", path + "-journal"}
}

// snapshotFiles copies a hot log's files (taken while no commit runs).
func snapshotFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range hotFiles(path) {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// restoreFiles puts a hot log's files back as snapshotFiles found them
// (nil: no file at all), as a crash may leave unsynced files.
func restoreFiles(t *testing.T, path string, snap map[string][]byte) {
	t.Helper()
	for _, f := range hotFiles(path) {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	for f, b := range snap {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJournalReplaysLostCommits loses hot log commits and whole new hot
// logs, as a power loss may since they are not synced, and checks that
// the next start replays them from the journal: contents, closure and
// producer state as acknowledged.
func TestJournalReplaysLostCommits(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir, nil)
	const ct = "text/plain"
	e.createStream("a", ct)
	e.appendMsgs("a", ct, "one ")
	pathA := e.reg.StreamPath(e.acquire("a").ID())
	old := snapshotFiles(t, pathA)
	prod := func(seq int64, msg string) sequencer.AppendResult {
		res, err := e.tryAppend("a", &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(msg),
			Producer: &protocol.Producer{ID: "p", Epoch: 1, Seq: seq}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	prod(0, "two ")
	prod(1, "three")
	e.create(&sequencer.CreateRequest{Path: "b", ContentType: ctPtr(t, ct), Initial: byteMsgs("bee")})
	e.appendMsgs("b", ct, "s")
	closed, err := e.tryAppend("b", &sequencer.AppendRequest{Close: true})
	if err != nil || !closed.Closed {
		t.Fatalf("close b: %v %+v", err, closed)
	}
	pathB := e.reg.StreamPath(e.acquire("b").ID())
	e.createStream("gone", ct)
	e.appendMsgs("gone", ct, "x")
	if err := e.reg.Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}

	sequencer.Abandon(e.reg)
	restoreFiles(t, pathA, old)
	restoreFiles(t, pathB, nil)
	// As after a restart of the machine, which is what can lose unsynced
	// writes: the journal must not trust any file it did not sync.
	if err := os.Remove(filepath.Join(dir, "journal", "boot_id")); err != nil {
		t.Fatal(err)
	}
	if err := e.cat.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := openEnv(t, dir, nil)
	if got := e2.content("a"); got != "one two three" {
		t.Errorf("a = %q after replay", got)
	}
	if got := e2.content("b"); got != "bees" {
		t.Errorf("b = %q after replay", got)
	}
	if !e2.acquire("b").Snapshot().Closed {
		t.Error("b open after replay")
	}
	res, err := e2.tryAppend("a", &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs("three"),
		Producer: &protocol.Producer{ID: "p", Epoch: 1, Seq: 1}})
	if err != nil || res.Outcome != sequencer.Duplicate {
		t.Errorf("producer retry after replay: %v %+v, want a duplicate", err, res)
	}
	if _, err := e2.reg.Acquire(t.Context(), "gone", false); kindOf(err) != sequencer.KindNotFound {
		t.Errorf("deleted stream after replay: %v", err)
	}
	// A second start has nothing left to replay and changes nothing.
	sequencer.Abandon(e2.reg)
	e2.cat.Close()
	e3 := openEnv(t, dir, nil)
	if got := e3.content("a"); got != "one two three" {
		t.Errorf("a = %q after a second start", got)
	}
	e3.appendMsgs("a", ct, "!")
	if got := e3.content("a"); got != "one two three!" {
		t.Errorf("a = %q after appending", got)
	}
}

// TestJournalCheckpointReleases checks that checkpoints by size release
// journal files while streams keep their data.
func TestJournalCheckpointReleases(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir, func(c *sequencer.Config) {
		c.Journal.FileBytes = 4 << 10
		c.Journal.CheckpointBytes = 8 << 10
		c.Journal.MaxBytes = 4 << 20
	})
	const ct = "application/octet-stream"
	e.createStream("s", ct)
	msg := string(make([]byte, 1000))
	for range 100 {
		e.appendMsgs("s", ct, msg)
	}
	jdir := filepath.Join(dir, "journal")
	eventually(t, 10*time.Second, "journal files released", func() bool {
		ents, _ := os.ReadDir(jdir)
		return len(ents) <= 4
	})
	cp, err := e.cat.JournalCheckpoint(context.Background(), "")
	if err != nil || cp == 0 {
		t.Errorf("catalog checkpoint %d (%v) after checkpoints", cp, err)
	}
	if got := e.tail("s"); got != 100*1000 {
		t.Errorf("tail %d", got)
	}
}

// TestJournalKeepsUnwrittenBatches makes the hot log refuse batches the
// journal holds and the client was answered for: the stream refuses
// further writes, its next actor writes them, and a restart has them.
func TestJournalKeepsUnwrittenBatches(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *sequencer.Config) {
		c.Journal.FlushBatches = 1
		c.IdleTimeout = 100 * time.Millisecond
	}
	e := openEnv(t, dir, cfg)
	const ct = "text/plain"
	e.createStream("a", ct)
	e.appendMsgs("a", ct, "kept ")
	h := e.acquire("a")
	sequencer.CloseHotLog(h)
	prod := func(e *env, seq int64, msg string) (sequencer.AppendResult, error) {
		return e.tryAppend("a", &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(msg),
			Producer: &protocol.Producer{ID: "p", Epoch: 0, Seq: seq}})
	}
	if _, err := prod(e, 0, "acked "); err != nil {
		t.Fatalf("append answered before the hot log write: %v", err)
	}
	_, err := prod(e, 1, "refused")
	if k := kindOf(err); err == nil || (k != sequencer.KindInternal && k != sequencer.KindStorageFull) {
		t.Fatalf("append to a stream whose hot log refuses data: %v, want a 5xx", err)
	}
	h.Release()
	// The stopped actor hands its batches to the next one, whose hot log
	// takes them.
	if err := sequencer.Checkpoint(e.reg); err != nil {
		t.Fatal(err)
	}
	before, err := e.cat.JournalCheckpoint(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "actor evicted", func() bool { return e.reg.OpenCount() == 0 })
	// A checkpoint does not wait for someone to use the stream again.
	if err := sequencer.Checkpoint(e.reg); err != nil {
		t.Fatal(err)
	}
	if after, err := e.cat.JournalCheckpoint(t.Context(), ""); err != nil || after <= before {
		t.Errorf("checkpoint LSN %d -> %d (%v): the handed-over batches still hold it back", before, after, err)
	}
	e.appendMsgs("a", ct, "more")
	if got := e.content("a"); got != "kept acked more" {
		t.Errorf("a = %q after the next actor", got)
	}
	sequencer.Abandon(e.reg)
	e.cat.Close()
	e2 := openEnv(t, dir, nil)
	if got := e2.content("a"); got != "kept acked more" {
		t.Errorf("a = %q after restart", got)
	}
	// The acknowledged producer request is a duplicate, the refused one new.
	if res, err := prod(e2, 0, "acked "); err != nil || res.Outcome != sequencer.Duplicate {
		t.Errorf("retry of the acknowledged append: %v %+v, want a duplicate", err, res)
	}
	if res, err := prod(e2, 1, "retried"); err != nil || res.Outcome != sequencer.Appended {
		t.Errorf("retry of the refused append: %v %+v, want appended", err, res)
	}
}

// TestJournalStopLeavesNewStreamsInJournal checks the state a graceful
// stop leaves new streams in (writebehind.go, invariant 6): no file, the
// records kept by the journal; the next start rebuilds them in memory
// without files, serves them, survives a crash in that state, and its
// first checkpoint writes their files and releases the journal.
func TestJournalStopLeavesNewStreamsInJournal(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir, nil)
	const ct = "text/plain"
	paths := []string{"a", "b", "c"}
	var files []string
	for _, p := range paths {
		e.createStream(p, ct)
		e.appendMsgs(p, ct, p+"1 ")
		files = append(files, e.reg.StreamPath(e.acquire(p).ID()))
	}
	e.appendMsgs("a", ct, "a2")
	prod := func(e *env, p string, seq int64) (sequencer.AppendResult, error) {
		return e.tryAppend(p, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs("p "),
			Producer: &protocol.Producer{ID: "p", Epoch: 0, Seq: seq}})
	}
	if _, err := prod(e, "b", 0); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "a1 a2", "b": "b1 p ", "c": "c1 "}
	noFiles := func(when string) {
		t.Helper()
		for _, f := range files {
			if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s: %s exists (%v), want no file", when, f, err)
			}
		}
	}
	check := func(e *env, when string) {
		t.Helper()
		for p, w := range want {
			if got := e.content(p); got != w {
				t.Fatalf("%s: %s = %q, want %q", when, p, got, w)
			}
		}
		if res, err := prod(e, "b", 0); err != nil || res.Outcome != sequencer.Duplicate {
			t.Fatalf("%s: retry of b's producer request: %v %+v, want a duplicate", when, err, res)
		}
	}
	e.close()
	noFiles("after a graceful stop")

	// A crash while the streams live in memory only loses nothing.
	e = openEnv(t, dir, nil)
	noFiles("after the start")
	check(e, "after the start")
	sequencer.Abandon(e.reg)
	e.cat.Close()

	e = openEnv(t, dir, nil)
	check(e, "after a crash")
	if err := sequencer.Checkpoint(e.reg); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("after a checkpoint: %v", err)
		}
	}
	cp, err := e.cat.JournalCheckpoint(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if last := sequencer.DurableLSN(e.reg); cp != last {
		t.Errorf("checkpoint at %d, journal at %d: records still held back", cp, last)
	}
	e.appendMsgs("c", ct, "c2")
	want["c"] = "c1 c2"
	e.close()
	e = openEnv(t, dir, nil)
	check(e, "after the files were written")
}
