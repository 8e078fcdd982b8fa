package sequencer_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// TestWriteBehindCrashPoints crashes a registry at random points of a
// random run of creates, forks, plain and producer appends and
// checkpoints, with hot logs written behind at random bounds: so that a
// crash finds appends acknowledged but not written, written but not
// checkpointed, and streams whose files do not exist yet. A crash of the
// process keeps the files; a power loss returns every hot log to what the
// last checkpoint synced (or no file). Some rounds end with a graceful
// stop instead, which leaves new streams without files, their state in
// the journal only, for the next start to rebuild in memory (and the
// next round to crash with). After each restart every
// acknowledged append is present exactly once, in order, and the last
// acknowledged producer request of each stream is a duplicate.
func TestWriteBehindCrashPoints(t *testing.T) {
	// Each run waits for a few hundred fsyncs.
	seeds := 8
	if testing.Short() || raceEnabled {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runCrashPoints(t, uint64(seed)) })
	}
}

// crashModel is what the test acknowledged to clients.
type crashModel struct {
	paths   []string
	content map[string]string
	seq     map[string]int64 // last acknowledged Producer-Seq of producer "p", -1: none
}

func runCrashPoints(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 12))
	const ct = "text/plain"
	dir := t.TempDir()
	flushBatches := []int{1, 3, 1000}[rng.IntN(3)]
	flushBytes := []int64{16, 1 << 20}[rng.IntN(2)]
	cfg := func(c *sequencer.Config) {
		c.Journal.FlushBatches = flushBatches
		c.Journal.FlushBytes = flushBytes
	}
	m := &crashModel{content: map[string]string{}, seq: map[string]int64{}}
	checkpointed := map[string]map[string][]byte{} // path -> hot log files at the last checkpoint
	e := openEnv(t, dir, cfg)
	hotPath := func(e *env, p string) string { return e.reg.StreamPath(e.acquire(p).ID()) }
	for round := range 4 {
		for range 10 + rng.IntN(40) {
			switch r := rng.IntN(20); {
			case r < 2 || len(m.paths) == 0:
				p := fmt.Sprintf("s%d", len(m.paths))
				e.create(&sequencer.CreateRequest{Path: p, ContentType: ctPtr(t, ct), Initial: byteMsgs(p + ":")})
				m.paths, m.content[p], m.seq[p] = append(m.paths, p), p+":", -1
			case r < 3:
				src := m.paths[rng.IntN(len(m.paths))]
				p := fmt.Sprintf("s%d", len(m.paths))
				e.fork(p, src, nil, 0)
				m.paths, m.content[p], m.seq[p] = append(m.paths, p), m.content[src], -1
			case r < 4:
				if err := sequencer.Checkpoint(e.reg); err != nil {
					t.Fatal(err)
				}
				clear(checkpointed)
				for _, p := range m.paths {
					checkpointed[p] = snapshotFiles(t, hotPath(e, p))
				}
			case r < 12:
				p := m.paths[rng.IntN(len(m.paths))]
				msg := fmt.Sprintf("%d.", rng.IntN(1000))
				e.appendMsgs(p, ct, msg)
				m.content[p] += msg
			default:
				p := m.paths[rng.IntN(len(m.paths))]
				msg := fmt.Sprintf("(%d)", m.seq[p]+1)
				res, err := e.tryAppend(p, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs(msg),
					Producer: &protocol.Producer{ID: "p", Epoch: 0, Seq: m.seq[p] + 1}})
				if err != nil || res.Outcome != sequencer.Appended {
					t.Fatalf("round %d: producer append to %s: %v %+v", round, p, err, res)
				}
				m.seq[p]++
				m.content[p] += msg
			}
		}
		powerLoss := rng.IntN(2) == 0
		graceful := rng.IntN(3) == 0
		var files []string
		for _, p := range m.paths {
			files = append(files, hotPath(e, p))
		}
		if graceful {
			// A clean stop checkpoints: what it leaves on disk is durable
			// (no file for a stream that never wrote one).
			if err := e.reg.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			for i, p := range m.paths {
				checkpointed[p] = snapshotFiles(t, files[i])
			}
		} else {
			sequencer.Abandon(e.reg)
		}
		if err := e.cat.Close(); err != nil {
			t.Fatal(err)
		}
		if powerLoss {
			for i, p := range m.paths {
				restoreFiles(t, files[i], checkpointed[p])
			}
			if err := os.Remove(filepath.Join(dir, "journal", "boot_id")); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		e = openEnv(t, dir, cfg)
		// Recovery ends with a checkpoint.
		for _, p := range m.paths {
			checkpointed[p] = snapshotFiles(t, hotPath(e, p))
		}
		for _, p := range m.paths {
			if got := e.content(p); got != m.content[p] {
				t.Fatalf("round %d (power loss %v, graceful %v): %s = %q, want %q", round, powerLoss, graceful, p, got, m.content[p])
			}
			if s := m.seq[p]; s >= 0 {
				res, err := e.tryAppend(p, &sequencer.AppendRequest{ContentType: mustCT(t, ct), Messages: byteMsgs("dup"),
					Producer: &protocol.Producer{ID: "p", Epoch: 0, Seq: s}})
				if err != nil || res.Outcome != sequencer.Duplicate {
					t.Fatalf("round %d: retry of %s's last producer request: %v %+v, want a duplicate", round, p, err, res)
				}
			}
			if strings.Contains(e.content(p), "dup") {
				t.Fatalf("round %d: %s took a duplicate", round, p)
			}
		}
	}
}
