package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/vfs"
)

const dir = "/j"

// quiet discards the warnings recovery logs about torn tails.
var quiet = slog.New(slog.DiscardHandler)

func openMem(t *testing.T, m *vfs.MemFS, opts Options) *Journal {
	t.Helper()
	opts.FS = m
	opts.Logger = quiet
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// readAll replays every record past after.
func readAll(t *testing.T, j *Journal, after uint64) []Record {
	t.Helper()
	var out []Record
	err := j.Replay(after, func(r Record) error {
		r.Payload = append([]byte(nil), r.Payload...)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustAppend(t *testing.T, j *Journal, kind Kind, payload string) uint64 {
	t.Helper()
	lsn, err := j.Append(context.Background(), kind, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func TestAppendReopenReplay(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{})
	kinds := []Kind{KindStreamBatch, KindStreamCreate, KindStreamAbort}
	for i := range 30 {
		if lsn := mustAppend(t, j, kinds[i%3], fmt.Sprint("rec", i)); lsn != uint64(i+1) {
			t.Fatalf("lsn = %d, want %d", lsn, i+1)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(context.Background(), KindStreamAbort, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	j = openMem(t, m.Crash(nil), Options{})
	defer j.Close()
	got := readAll(t, j, 10)
	if len(got) != 20 {
		t.Fatalf("replayed %d records, want 20", len(got))
	}
	for i, r := range got {
		n := i + 10
		if r.LSN != uint64(n+1) || r.Kind != kinds[n%3] || string(r.Payload) != fmt.Sprint("rec", n) {
			t.Errorf("record %d = %d %v %q", i, r.LSN, r.Kind, r.Payload)
		}
	}
	if lsn := mustAppend(t, j, KindStreamAbort, "next"); lsn != 31 {
		t.Errorf("lsn after reopen = %d, want 31", lsn)
	}
}

func TestEnqueueRejects(t *testing.T) {
	j := openMem(t, vfs.NewMem(), Options{MaxRecordBytes: 10})
	defer j.Close()
	for _, tt := range []struct {
		kind    Kind
		payload []byte
	}{
		{0, nil},
		{maxKind + 1, nil},
		{KindStreamAbort, make([]byte, 11)},
	} {
		if _, err := j.Enqueue(tt.kind, tt.payload); err == nil {
			t.Errorf("Enqueue(%d, %d bytes) succeeded", tt.kind, len(tt.payload))
		}
	}
}

// TestGroupCommit holds the first sync until many records from many
// goroutines are queued, and checks that one more sync makes all of them
// durable.
func TestGroupCommit(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{})
	defer j.Close()
	const writers = 64
	hold := make(chan struct{})
	var once sync.Once
	m.SetSyncHook(func() { once.Do(func() { <-hold }) })
	before := m.Syncs()
	first, err := j.Enqueue(KindStreamBatch, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the flusher holds the first group in its sync.
	for deadline := time.Now().Add(5 * time.Second); ; {
		j.mu.Lock()
		taken := j.group.first > first.LSN
		j.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flusher did not take the first group")
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	tickets := make([]Ticket, writers)
	for i := range writers {
		wg.Go(func() {
			tk, err := j.Enqueue(KindStreamBatch, fmt.Appendf(nil, "stream %d", i))
			if err != nil {
				t.Error(err)
			}
			tickets[i] = tk
		})
	}
	wg.Wait()
	close(hold)
	for _, tk := range append(tickets, first) {
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Syncs() - before; got != 2 {
		t.Errorf("%d records took %d syncs, want 2 (one for the first, one for all queued meanwhile)", writers+1, got)
	}
}

func TestWaitContext(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{})
	hold := make(chan struct{})
	m.SetSyncHook(func() { <-hold })
	tk, err := j.Enqueue(KindStreamAbort, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tk.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want deadline exceeded", err)
	}
	close(hold)
	if err := tk.Wait(context.Background()); err != nil {
		t.Errorf("Wait after the sync = %v", err)
	}
	j.Close()
}

func TestSyncErrorIsSticky(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{})
	mustAppend(t, j, KindStreamAbort, "ok")
	disk := errors.New("disk on fire")
	m.SetSyncError(disk)
	if _, err := j.Append(context.Background(), KindStreamAbort, []byte("lost")); !errors.Is(err, disk) {
		t.Fatalf("append with failing sync: %v", err)
	}
	m.SetSyncError(nil)
	if _, err := j.Append(context.Background(), KindStreamAbort, []byte("after")); !errors.Is(err, disk) {
		t.Errorf("append after a failed sync: %v, want the sticky error", err)
	}
	if err := j.Close(); !errors.Is(err, disk) {
		t.Errorf("Close = %v, want the sticky error", err)
	}
}

// TestWriteErrorIsUndone fails writes (a full disk): the appends hit
// fail, and once writes work again the sequence goes on without a gap.
func TestWriteErrorIsUndone(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{})
	mustAppend(t, j, KindStreamBatch, "one")
	full := errors.New("no space left")
	m.SetWriteError(full)
	if _, err := j.Append(context.Background(), KindStreamBatch, []byte("refused")); !errors.Is(err, full) {
		t.Fatalf("append on a full disk: %v", err)
	}
	m.SetWriteError(nil)
	if lsn := mustAppend(t, j, KindStreamBatch, "two"); lsn != 2 {
		t.Errorf("lsn after the failed write = %d, want 2", lsn)
	}
	j.Close()
	j = openMem(t, m.Crash(nil), Options{})
	defer j.Close()
	got := readAll(t, j, 0)
	if len(got) != 2 || string(got[0].Payload) != "one" || string(got[1].Payload) != "two" {
		t.Errorf("after reopen: %+v", got)
	}
}

func TestRotateAndRelease(t *testing.T) {
	m := vfs.NewMem()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	j := openMem(t, m, Options{FileBytes: 100, CheckpointBytes: 300, CheckpointAge: time.Minute, Now: clock})
	for i := range 40 {
		mustAppend(t, j, KindStreamBatch, fmt.Sprintf("payload-%02d", i)) // 27 bytes framed
	}
	st := j.Stats()
	if st.Files < 8 {
		t.Fatalf("%d files for 40 records of 27 bytes with FileBytes 100", st.Files)
	}
	if !j.NeedsCheckpoint() {
		t.Error("NeedsCheckpoint false with 1080 bytes over a 300 byte threshold")
	}
	if err := j.Release(25); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, j, 0)
	if len(got) == 0 || got[0].LSN > 26 || got[len(got)-1].LSN != 40 {
		t.Fatalf("after release 25: records %d..%d", got[0].LSN, got[len(got)-1].LSN)
	}
	if got[0].LSN < 20 {
		t.Errorf("release 25 kept records from %d on", got[0].LSN)
	}
	// Releasing everything: nothing to checkpoint, and the next group
	// goes to a new file so that the released one can go.
	if err := j.Release(40); err != nil {
		t.Fatal(err)
	}
	if j.NeedsCheckpoint() {
		t.Errorf("NeedsCheckpoint with everything released (stats %+v)", j.Stats())
	}
	lsn := mustAppend(t, j, KindStreamAbort, "after")
	if j.NeedsCheckpoint() {
		t.Errorf("NeedsCheckpoint for one fresh record (stats %+v)", j.Stats())
	}
	now = now.Add(2 * time.Minute)
	if !j.NeedsCheckpoint() {
		t.Error("NeedsCheckpoint false for a record unreleased past CheckpointAge")
	}
	if err := j.Release(lsn - 1); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Files != 1 || st.Bytes != headerSize+5 {
		t.Errorf("after releasing all but the last record: %+v", st)
	}
	j.Close()
	j = openMem(t, m.Crash(nil), Options{})
	defer j.Close()
	if got := readAll(t, j, 0); len(got) != 1 || got[0].LSN != lsn {
		t.Errorf("after reopen: %d records", len(got))
	}
}

func TestFull(t *testing.T) {
	j := openMem(t, vfs.NewMem(), Options{FileBytes: 100, CheckpointBytes: 200, MaxBytes: 300})
	defer j.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = j.Append(context.Background(), KindStreamAbort, []byte("0123456789"))
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append past MaxBytes: %v", err)
	}
	if err := j.Release(j.DurableLSN()); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(context.Background(), KindStreamAbort, []byte("again")); err != nil {
		t.Errorf("append after release: %v", err)
	}
}

// corrupt replaces a file's contents.
func corrupt(t *testing.T, m *vfs.MemFS, name string, edit func([]byte) []byte) {
	t.Helper()
	f, err := m.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	f.Close()
	w, _ := m.Create(name)
	w.Write(edit(b))
	w.Sync()
	w.Close()
}

func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		edit func([]byte) []byte
		want int // records left of 5
	}{
		{"short header", func(b []byte) []byte { return b[:len(b)-len("rec-4")-10] }, 4},
		{"short payload", func(b []byte) []byte { return b[:len(b)-2] }, 4},
		{"bad checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, 4},
		{"garbage after", func(b []byte) []byte { return append(b, 1, 2, 3) }, 5},
		{"zeros after", func(b []byte) []byte { return append(b, make([]byte, 64)...) }, 5},
		{"damaged middle", func(b []byte) []byte { b[2*(headerSize+5)+headerSize] ^= 1; return b }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := vfs.NewMem()
			j := openMem(t, m, Options{})
			for i := range 5 {
				mustAppend(t, j, KindStreamAbort, fmt.Sprint("rec-", i))
			}
			j.Close()
			corrupt(t, m, filepath.Join(dir, fileName(1)), tt.edit)
			j = openMem(t, m, Options{})
			got := readAll(t, j, 0)
			if len(got) != tt.want {
				t.Fatalf("%d records after recovery, want %d", len(got), tt.want)
			}
			// New records continue the sequence and survive a second
			// recovery: the torn bytes were cut off.
			lsn := mustAppend(t, j, KindStreamAbort, "new")
			if lsn != uint64(tt.want+1) {
				t.Errorf("next lsn = %d, want %d", lsn, tt.want+1)
			}
			j.Close()
			j = openMem(t, m.Crash(nil), Options{})
			defer j.Close()
			if got := readAll(t, j, 0); len(got) != tt.want+1 || string(got[len(got)-1].Payload) != "new" {
				t.Errorf("second recovery: %d records", len(got))
			}
		})
	}
}

func TestCorruptionBeforeIntactFileIsRefused(t *testing.T) {
	m := vfs.NewMem()
	j := openMem(t, m, Options{FileBytes: 60})
	for i := range 10 {
		mustAppend(t, j, KindStreamAbort, fmt.Sprint("rec-", i))
	}
	j.Close()
	corrupt(t, m, filepath.Join(dir, fileName(1)), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	if _, err := Open(dir, Options{FS: m}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open = %v, want ErrCorrupt", err)
	}
}
