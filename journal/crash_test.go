package journal

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/streamtier/durable-streams/internal/vfs"
)

// key names one record written by the crash test: round, writer, seq.
type key struct {
	round, writer, seq uint32
}

// payloadFor is the record of k: the key and a filler whose length and
// bytes derive from it, so that recovery can tell a record whole.
func payloadFor(k key) []byte {
	h := fnv.New64a()
	fmt.Fprint(h, k)
	sum := h.Sum64()
	b := binary.LittleEndian.AppendUint32(nil, k.round)
	b = binary.LittleEndian.AppendUint32(b, k.writer)
	b = binary.LittleEndian.AppendUint32(b, k.seq)
	for i := range int(sum % 300) {
		b = append(b, byte(sum>>(i%8))+byte(i))
	}
	return b
}

func keyOf(p []byte) (key, bool) {
	if len(p) < 12 {
		return key{}, false
	}
	k := key{binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:]), binary.LittleEndian.Uint32(p[8:])}
	return k, string(payloadFor(k)) == string(p)
}

// crashModel is what the test knows about the records across crashes.
type crashModel struct {
	mu       sync.Mutex
	durable  map[key]uint64 // acknowledged or recovered: must be present (unless released)
	released uint64         // records up to here may have been deleted
}

// TestCrashRecovery runs writers against a journal on the strict memory
// file system and crashes it at random points (dropping, or tearing, every
// unsynced write), several times in a row with recoveries in between.
// After every recovery, every acknowledged record must be present exactly
// once and in order, and nothing partial may be visible.
func TestCrashRecovery(t *testing.T) {
	// Each iteration crashes one to four times: about 5,000 crash points.
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	for it := range iters {
		rng := rand.New(rand.NewPCG(12, uint64(it)))
		if err := crashIteration(rng); err != nil {
			t.Fatalf("iteration %d: %v", it, err)
		}
	}
}

func crashIteration(rng *rand.Rand) error {
	m := vfs.NewMem()
	model := &crashModel{durable: map[key]uint64{}}
	opts := func() Options {
		return Options{FS: m, FileBytes: int64(64 + rng.IntN(1024)), MaxRecordBytes: 1 << 16, Logger: quiet}
	}
	rounds := 1 + rng.IntN(4)
	for round := range rounds {
		j, err := Open(dir, opts())
		if err != nil {
			return fmt.Errorf("round %d: open: %w", round, err)
		}
		if err := model.verify(j); err != nil {
			j.Close()
			return fmt.Errorf("round %d: %w", round, err)
		}
		m = model.run(j, m, uint32(round), rng)
	}
	j, err := Open(dir, opts())
	if err != nil {
		return fmt.Errorf("final open: %w", err)
	}
	defer j.Close()
	return model.verify(j)
}

// run writes from several goroutines, releasing now and then, and crashes
// the file system after a random number of acknowledgements; it returns
// the file system found after the crash.
func (cm *crashModel) run(j *Journal, m *vfs.MemFS, round uint32, rng *rand.Rand) *vfs.MemFS {
	writers := 1 + rng.IntN(6)
	perWriter := 1 + rng.IntN(60)
	target := int64(rng.IntN(writers*perWriter + 1))
	releaseEvery := 1 + rng.IntN(20)
	var acks atomic.Int64
	crashNow := make(chan struct{})
	var crashOnce sync.Once
	signal := func() { crashOnce.Do(func() { close(crashNow) }) }
	var wg sync.WaitGroup
	var active atomic.Int64
	active.Store(int64(writers))
	for w := range writers {
		wg.Go(func() {
			defer func() {
				if active.Add(-1) == 0 {
					signal()
				}
			}()
			for seq := range perWriter {
				k := key{round, uint32(w), uint32(seq)}
				lsn, err := j.Append(context.Background(), KindStreamBatch, payloadFor(k))
				if err != nil {
					return
				}
				cm.mu.Lock()
				cm.durable[k] = lsn
				cm.mu.Unlock()
				n := acks.Add(1)
				if n >= target {
					signal()
				}
				if w == 0 && seq%releaseEvery == 0 && lsn > 1 {
					rel := lsn - 1 - uint64(seq%3)
					cm.mu.Lock()
					cm.released = max(cm.released, rel)
					cm.mu.Unlock()
					_ = j.Release(rel)
				}
			}
		})
	}
	if target == 0 {
		signal()
	}
	<-crashNow
	var torn *rand.Rand
	if rng.IntN(2) == 0 {
		torn = rng
	}
	after := m.Crash(torn)
	wg.Wait()
	j.Close()
	return after
}

// verify replays the recovered journal and checks it against the model,
// then counts every recovered record as durable.
func (cm *crashModel) verify(j *Journal) error {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	seen := map[key]uint64{}
	lastSeq := map[[2]uint32]int64{}
	var prev uint64
	err := j.Replay(0, func(r Record) error {
		if prev != 0 && r.LSN != prev+1 {
			return fmt.Errorf("lsn %d follows %d", r.LSN, prev)
		}
		prev = r.LSN
		k, ok := keyOf(r.Payload)
		if !ok {
			return fmt.Errorf("record %d is not a whole record written by the test", r.LSN)
		}
		if at, dup := seen[k]; dup {
			return fmt.Errorf("%v at %d and again at %d", k, at, r.LSN)
		}
		seen[k] = r.LSN
		if want, ok := cm.durable[k]; ok && want != r.LSN {
			return fmt.Errorf("%v acknowledged at %d, recovered at %d", k, want, r.LSN)
		}
		w := [2]uint32{k.round, k.writer}
		if last, ok := lastSeq[w]; ok && int64(k.seq) != last+1 {
			return fmt.Errorf("writer %v: seq %d follows %d", w, k.seq, last)
		}
		lastSeq[w] = int64(k.seq)
		return nil
	})
	if err != nil {
		return err
	}
	for k, lsn := range cm.durable {
		if _, ok := seen[k]; !ok && lsn > cm.released {
			return fmt.Errorf("acknowledged %v at lsn %d is missing (released up to %d, recovered up to %d)", k, lsn, cm.released, prev)
		}
	}
	if d := j.DurableLSN(); prev != 0 && d != prev {
		return fmt.Errorf("durable lsn %d, last recovered record %d", d, prev)
	}
	for k, lsn := range seen {
		cm.durable[k] = lsn
	}
	return nil
}
