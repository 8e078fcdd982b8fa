package hotlog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/memdb"
)

// ms returns a time that survives the millisecond storage unchanged, so
// that loaded values compare equal with reflect.DeepEqual.
func stamp(v int64) time.Time { return time.UnixMilli(v) }

// payload returns n deterministic bytes that differ per seed.
func payload(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// msgs builds contiguous messages starting at pos with the given sizes, all
// in segment seg; every message ends its batch.
func msgs(pos, seg int64, sizes ...int) []Message {
	out := make([]Message, len(sizes))
	for i, n := range sizes {
		out[i] = Message{Pos: pos, Seg: seg, Data: payload(int(pos), n), BatchEnd: true}
		pos += int64(n)
	}
	return out
}

func tail(ms []Message, def int64) int64 {
	if len(ms) == 0 {
		return def
	}
	return ms[len(ms)-1].End()
}

func rootMeta() Meta {
	return Meta{StreamID: 7, ContentType: "application/octet-stream", CreatedAt: stamp(1_700_000_000_123)}
}

// newLog creates and opens a hot log in a temporary directory.
func newLog(t testing.TB, meta Meta, initial []Message) (*Log, string) {
	t.Helper()
	return newLogOpts(t, meta, initial, Options{})
}

// newLogOpts is newLog with options.
func newLogOpts(t testing.TB, meta Meta, initial []Message, opts Options) (*Log, string) {
	t.Helper()
	return newLogAt(t, filepath.Join(t.TempDir(), "streams", "7.db"), meta, initial, opts)
}

// newMemLog is newLog in memory (see package memdb).
func newMemLog(t testing.TB, meta Meta, initial []Message) (*Log, string) {
	t.Helper()
	root := memdb.NewRoot()
	t.Cleanup(func() { memdb.DropAll(root) })
	return newLogAt(t, filepath.Join(root, "streams", "7.db"), meta, initial, Options{})
}

// newLogAt creates and opens a hot log at path, closed when t ends.
func newLogAt(t testing.TB, path string, meta Meta, initial []Message, opts Options) (*Log, string) {
	t.Helper()
	ctx := context.Background()
	if err := Create(ctx, path, meta, initial); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l, path
}

// appendBatch commits ms as one batch and advances meta accordingly.
func appendBatch(t testing.TB, l *Log, meta *Meta, ms []Message) {
	t.Helper()
	meta.Tail = tail(ms, meta.Tail)
	if err := l.Commit(context.Background(), &Batch{Messages: ms, Meta: *meta}); err != nil {
		t.Fatal(err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
	}{
		{"zero", Meta{}},
		{"root", rootMeta()},
		{"full", Meta{
			StreamID: 42, ContentType: "application/json", CreatedAt: stamp(1_600_000_000_001),
			Tail: 1234, OpenSeg: 3, OpenSegStart: 1000, OpenSegMsgs: 5, OpenSegBytes: 234,
			OpenSegSince: stamp(1_600_000_100_002), Closed: true,
			ClosedBy:  &ProducerKey{ID: "producer-ü", Epoch: 2, Seq: 99},
			StreamSeq: "seq-000042",
			Fork:      &ForkBase{ParentID: 9, Pos: 1000, Seg: 2, SegStart: 800, Shared: true},
		}},
		{"fork at zero not shared", Meta{StreamID: 1, ContentType: "text/plain",
			Fork: &ForkBase{ParentID: 3, Pos: 0, Seg: 0, SegStart: 0, Shared: false}}},
		{"closed by zero key", Meta{Closed: true, ClosedBy: &ProducerKey{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newLog(t, tt.meta, nil)
			got, prods, segs, err := l.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.meta) {
				t.Errorf("meta:\n got %+v\nwant %+v", got, tt.meta)
			}
			if len(prods) != 0 || len(segs) != 0 {
				t.Errorf("got %d producers and %d segments, want none", len(prods), len(segs))
			}
		})
	}
}

// TestMemory: an in-memory hot log outlives its connections (an idle
// stream's Log is closed and opened again) until Remove, which frees it,
// and it never touches the file system.
func TestMemory(t *testing.T) {
	ctx := context.Background()
	t.Chdir(t.TempDir())
	meta := rootMeta()
	l, path := newMemLog(t, meta, msgs(0, 0, 10, 20))
	appendBatch(t, l, &meta, msgs(30, 0, 5))
	st, err := l.Stats(ctx)
	if err != nil || st.Rows != 3 || st.DataBytes != 35 || st.FileBytes == 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l2.Read(ctx, 0, 1<<40, 1<<20)
	if err != nil || len(got) != 3 || got[2].End() != 35 {
		t.Fatalf("Read after reopen: %d messages, %v", len(got), err)
	}
	if files, err := Existing(path); err != nil || len(files) != 1 {
		t.Errorf("Existing = %q, %v", files, err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Remove: %v, want fs.ErrNotExist", err)
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("files in the working directory: %v", entries)
	}
}

func TestCommitLoad(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, path := newLog(t, meta, nil)

	batches := []Batch{
		{Messages: msgs(0, 0, 10, 20), Producers: []Producer{{ID: "a", Epoch: 0, LastSeq: 0, Updated: stamp(1000)}}},
		{Messages: msgs(30, 0, 5), Producers: []Producer{
			{ID: "a", Epoch: 0, LastSeq: 1, Updated: stamp(2000)},
			{ID: "b", Epoch: 3, LastSeq: 7, Updated: stamp(2001)},
		}, Seal: &Segment{Seg: 0, Start: 0, End: 35, Messages: 3, Bytes: 35, State: segment.Sealed, SealedAt: stamp(2002)}},
		{Messages: msgs(35, 1, 1), Producers: []Producer{{ID: "a", Epoch: 1, LastSeq: 0, Updated: stamp(3000)}}},
		// Close-only batch.
		{},
	}
	for i := range batches {
		b := &batches[i]
		meta.Tail = tail(b.Messages, meta.Tail)
		if b.Seal != nil {
			meta.OpenSeg, meta.OpenSegStart = b.Seal.Seg+1, b.Seal.End
		}
		if i == len(batches)-1 {
			meta.Closed = true
			meta.ClosedBy = &ProducerKey{ID: "a", Epoch: 1, Seq: 1}
		}
		b.Meta = meta
		if err := l.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	wantProds := []Producer{{ID: "a", Epoch: 1, LastSeq: 0, Updated: stamp(3000)}, {ID: "b", Epoch: 3, LastSeq: 7, Updated: stamp(2001)}}
	wantSegs := []Segment{*batches[1].Seal}

	check := func(l *Log) {
		t.Helper()
		gotMeta, prods, segs, err := l.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotMeta, meta) {
			t.Errorf("meta:\n got %+v\nwant %+v", gotMeta, meta)
		}
		if !reflect.DeepEqual(prods, wantProds) {
			t.Errorf("producers:\n got %+v\nwant %+v", prods, wantProds)
		}
		if !reflect.DeepEqual(segs, wantSegs) {
			t.Errorf("segments:\n got %+v\nwant %+v", segs, wantSegs)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(ctx, path, Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	check(l2)
}

func TestCommitRejects(t *testing.T) {
	l, _ := newLog(t, rootMeta(), msgs(0, 0, 10))
	seal := &Segment{Seg: 0, Start: 0, End: 10, Messages: 1, Bytes: 10, State: segment.Sealed}
	if err := l.Commit(context.Background(), &Batch{Meta: rootMeta(), Seal: seal}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		batch *Batch
	}{
		{"nil batch", nil},
		{"empty message", &Batch{Messages: []Message{{Pos: 10, Data: nil}}}},
		{"overlap", &Batch{Messages: []Message{{Pos: 10, Data: []byte("abc")}, {Pos: 12, Data: []byte("d")}}}},
		{"unordered", &Batch{Messages: []Message{{Pos: 20, Data: []byte("a")}, {Pos: 10, Data: []byte("b")}}}},
		{"duplicate position", &Batch{Messages: []Message{{Pos: 0, Data: []byte("a")}}}},
		{"seal not sealed", &Batch{Seal: &Segment{Seg: 1, State: segment.Uploaded}}},
		{"seal twice", &Batch{Seal: seal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Commit(context.Background(), tt.batch); err == nil {
				t.Fatal("Commit succeeded, want error")
			} else if !strings.HasPrefix(err.Error(), "hotlog: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	// A failed batch must leave nothing behind.
	st, err := l.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 1 || st.DataBytes != 10 {
		t.Errorf("stats after failed commits: %+v, want 1 row of 10 bytes", st)
	}
}

func TestRead(t *testing.T) {
	const big = 100 << 10
	// Positions: [0,10) [10,30) [30,31) | seg 1: [31,131) [131,131+big) [131+big, 131+big+5)
	seg0 := []Message{
		{Pos: 0, Seg: 0, Data: payload(1, 10), BatchEnd: false},
		{Pos: 10, Seg: 0, Data: payload(2, 20), BatchEnd: true},
		{Pos: 30, Seg: 0, Data: payload(3, 1), BatchEnd: true},
	}
	seg1 := msgs(31, 1, 100, big, 5)
	seg1[0].BatchEnd = false
	all := append(append([]Message{}, seg0...), seg1...)
	end := tail(all, 0)

	meta := rootMeta()
	meta.Tail = 31
	l, _ := newLog(t, meta, seg0)
	meta.OpenSeg, meta.OpenSegStart = 1, 31
	appendBatch(t, l, &meta, seg1)

	tests := []struct {
		name        string
		from, limit int64
		maxBytes    int
		want        []int // indexes into all
	}{
		{"all", 0, end, 1 << 30, []int{0, 1, 2, 3, 4, 5}},
		{"at message start", 10, end, 1 << 30, []int{1, 2, 3, 4, 5}},
		{"inside message", 15, end, 1 << 30, []int{1, 2, 3, 4, 5}},
		{"last byte of message", 29, end, 1 << 30, []int{1, 2, 3, 4, 5}},
		{"inside large message", 131 + big/2, end, 1 << 30, []int{4, 5}},
		{"at tail", end, end + 100, 1 << 30, nil},
		{"beyond tail", end + 10, end + 100, 1 << 30, nil},
		{"empty range", 10, 10, 1 << 30, nil},
		{"limit at message start", 0, 30, 1 << 30, []int{0, 1}},
		{"limit inside message", 0, 11, 1 << 30, []int{0, 1}},
		{"limit past first byte", 0, 31, 1 << 30, []int{0, 1, 2}},
		{"budget smaller than first", 10, end, 1, []int{1}},
		{"zero budget", 15, end, 0, []int{1}},
		{"budget exact", 0, end, 30, []int{0, 1}},
		{"budget one short", 0, end, 29, []int{0}},
		{"budget excludes large", 30, end, 101, []int{2, 3}},
		{"budget includes large", 30, end, 101 + big, []int{2, 3, 4}},
		{"large first over budget", 131, end, 10, []int{4}},
		{"large limit cut", 131, 132, 1 << 30, []int{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(context.Background(), tt.from, tt.limit, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Read returned a nil slice, want non-nil")
			}
			want := []Message{}
			for _, i := range tt.want {
				want = append(want, all[i])
			}
			if !equalMessages(got, want) {
				t.Errorf("Read(%d, %d, %d) = %s, want %s", tt.from, tt.limit, tt.maxBytes, describe(got), describe(want))
			}
		})
	}

	t.Run("segment", func(t *testing.T) {
		for seg, want := range map[int64][]Message{0: seg0, 1: seg1, 2: nil} {
			got, err := l.ReadSegment(context.Background(), seg)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMessages(got, want) {
				t.Errorf("ReadSegment(%d) = %s, want %s", seg, describe(got), describe(want))
			}
		}
	})
}

func equalMessages(a, b []Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Pos != b[i].Pos || a[i].Seg != b[i].Seg || a[i].BatchEnd != b[i].BatchEnd || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func describe(ms []Message) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, m := range ms {
		if i > 0 {
			sb.WriteString(" ")
		}
		fmt.Fprintf(&sb, "{%d+%d seg %d end %t}", m.Pos, len(m.Data), m.Seg, m.BatchEnd)
	}
	sb.WriteString("]")
	return sb.String()
}

func TestMarkUploaded(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	// Free space is returned as soon as it outweighs the data: at the
	// second trim.
	l, _ := newLogOpts(t, meta, nil, Options{ReclaimBytes: 1})

	// Three segments of 1 MiB each, in 64 KiB messages.
	const msgSize, perSeg = 64 << 10, 16
	var pos int64
	for seg := int64(0); seg < 3; seg++ {
		sizes := make([]int, perSeg)
		for i := range sizes {
			sizes[i] = msgSize
		}
		ms := msgs(pos, seg, sizes...)
		meta.Tail = tail(ms, pos)
		b := &Batch{Messages: ms, Meta: meta}
		if seg < 2 {
			b.Seal = &Segment{Seg: seg, Start: pos, End: meta.Tail, Messages: perSeg, Bytes: meta.Tail - pos, State: segment.Sealed, SealedAt: stamp(1_700_000_000_000 + seg)}
			meta.OpenSeg, meta.OpenSegStart = seg+1, meta.Tail
			b.Meta = meta
		}
		if err := l.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		pos = meta.Tail
	}
	before, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Rows: 3 * perSeg, DataBytes: 3 * perSeg * msgSize}); before.Rows != want.Rows || before.DataBytes != want.DataBytes {
		t.Fatalf("stats before = %+v, want %+v", before, want)
	}

	if err := l.MarkUploaded(ctx, 1, "streams/7/1", 0xdeadbeef); err != nil {
		t.Fatal(err)
	}
	after, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Rows != 2*perSeg || after.DataBytes != 2*perSeg*msgSize {
		t.Errorf("stats after = %+v, want %d rows of %d bytes", after, 2*perSeg, 2*perSeg*msgSize)
	}

	_, _, segs, err := l.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].State != segment.Sealed || segs[0].ObjectKey != "" ||
		segs[1].State != segment.Uploaded || segs[1].ObjectKey != "streams/7/1" || segs[1].Checksum != 0xdeadbeef {
		t.Errorf("segments after upload: %+v", segs)
	}
	for seg, n := range map[int64]int{0: perSeg, 1: 0, 2: perSeg} {
		got, err := l.ReadSegment(ctx, seg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Errorf("segment %d has %d messages, want %d", seg, len(got), n)
		}
	}

	// Reading inside the trimmed range returns the next message held, so
	// the caller can tell that the range moved to the cold tier.
	seg1Start := int64(perSeg * msgSize)
	got, err := l.Read(ctx, seg1Start+100, meta.Tail, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pos != 2*seg1Start || !bytes.Equal(got[0].Data, payload(int(2*seg1Start), msgSize)) {
		t.Errorf("read in trimmed range = %s, want the first message of segment 2", describe(got))
	}
	got, err = l.Read(ctx, seg1Start-1, meta.Tail, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pos != seg1Start-msgSize {
		t.Errorf("read before trimmed range = %s, want the last message of segment 0", describe(got))
	}

	// Across the gap positions overstate the bytes read, so the main query
	// leaves the message after the gap out; Read must fetch it.
	got, err = l.Read(ctx, seg1Start-1, meta.Tail, 2*msgSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Pos != seg1Start-msgSize || got[1].Pos != 2*seg1Start ||
		!bytes.Equal(got[1].Data, payload(int(2*seg1Start), msgSize)) {
		t.Errorf("read across trimmed range = %s, want the last message of segment 0 and the first of segment 2", describe(got))
	}

	if err := l.MarkUploaded(ctx, 2, "x", 1); err == nil {
		t.Error("MarkUploaded of an unsealed segment succeeded")
	}
	if err := l.MarkUploaded(ctx, 0, "streams/7/0", 1); err != nil {
		t.Fatal(err)
	}
	if st, err := l.Stats(ctx); err != nil {
		t.Fatal(err)
	} else if st.Rows != perSeg || st.FileBytes >= after.FileBytes {
		t.Errorf("stats after second upload = %+v, want %d rows and fewer than %d file bytes", st, perSeg, after.FileBytes)
	}
}

func TestMarkUploadedDoesNotWaitForReaders(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, _ := newLogOpts(t, meta, nil, Options{ReclaimBytes: 1}) // reclaims, so checkpoints
	appendBatch(t, l, &meta, msgs(0, 0, 64<<10, 64<<10))       // frees pages, so the trim reclaims
	meta.OpenSeg, meta.OpenSegStart = 1, meta.Tail
	seal := &Segment{Seg: 0, Start: 0, End: meta.Tail, Messages: 2, Bytes: meta.Tail, State: segment.Sealed}
	if err := l.Commit(ctx, &Batch{Meta: meta, Seal: seal}); err != nil {
		t.Fatal(err)
	}

	// An open read transaction pins a snapshot that lives in the WAL,
	// which a TRUNCATE checkpoint would wait for.
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM messages").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}

	start := time.Now()
	if err := l.MarkUploaded(ctx, 0, "k", 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("MarkUploaded took %v with a reader open", d)
	}
	if _, free := pageCounts(t, l); free != 0 {
		t.Errorf("%d pages free after the trim; want them reclaimed", free)
	}
	// The old snapshot still sees the trimmed rows.
	if err := tx.QueryRow("SELECT count(*) FROM messages").Scan(&n); err != nil || n != 2 {
		t.Errorf("count in old snapshot = %d, %v; want 2", n, err)
	}
	var timeout int
	if err := l.wdb.QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout != busyTimeoutMillis {
		t.Errorf("writer busy_timeout = %d, %v; want %d", timeout, err, busyTimeoutMillis)
	}
}

// sealSegments commits n sealed segments of one 1 MiB message each after
// the stream's current tail, and leaves the next segment open.
func sealSegments(t *testing.T, l *Log, meta *Meta, n int) {
	t.Helper()
	for range n {
		start := meta.Tail
		ms := msgs(start, meta.OpenSeg, 1<<20)
		meta.Tail = tail(ms, start)
		seal := &Segment{Seg: meta.OpenSeg, Start: start, End: meta.Tail, Messages: 1, Bytes: meta.Tail - start, State: segment.Sealed}
		meta.OpenSeg, meta.OpenSegStart = meta.OpenSeg+1, meta.Tail
		if err := l.Commit(context.Background(), &Batch{Messages: ms, Meta: *meta, Seal: seal}); err != nil {
			t.Fatal(err)
		}
	}
}

// pageCounts returns the file's size and free list in pages.
func pageCounts(t *testing.T, l *Log) (pages, free int64) {
	t.Helper()
	if err := l.wdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := l.wdb.QueryRow("PRAGMA freelist_count").Scan(&free); err != nil {
		t.Fatal(err)
	}
	return pages, free
}

func TestTrimmedPagesAreReused(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, _ := newLog(t, meta, nil)
	sealSegments(t, l, &meta, 2)
	pages, _ := pageCounts(t, l)

	// Below Options.ReclaimBytes a trim leaves the freed pages in the file.
	if err := l.MarkUploaded(ctx, 0, "k0", 1); err != nil {
		t.Fatal(err)
	}
	p, free := pageCounts(t, l)
	if p != pages || free*l.pageSize < 1<<20 {
		t.Fatalf("after trim: %d pages, %d free; want %d pages, 1 MiB free", p, free, pages)
	}
	// The next segment's data goes into them instead of growing the file.
	sealSegments(t, l, &meta, 1)
	if p, free := pageCounts(t, l); p > pages+2 || free*l.pageSize >= 1<<20 {
		t.Errorf("after refill: %d pages, %d free; want about %d pages, less than 1 MiB free", p, free, pages)
	}

	// Compact returns whatever is free.
	for seg := int64(1); seg <= 2; seg++ {
		if err := l.MarkUploaded(ctx, seg, "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if p, free := pageCounts(t, l); free != 0 || p*l.pageSize >= 1<<20 {
		t.Errorf("after compact: %d pages, %d free; want less than 1 MiB, none free", p, free)
	}
	if st, err := l.Stats(ctx); err != nil || st.FileBytes >= 1<<20 || st.Rows != 0 {
		t.Errorf("stats after compact = %+v, %v; want no rows and less than 1 MiB", st, err)
	}
}

func TestMarkUploadedReclaimsAboveLimit(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, _ := newLogOpts(t, meta, nil, Options{ReclaimBytes: 1 << 19})
	sealSegments(t, l, &meta, 4)
	pages, _ := pageCounts(t, l)
	// Free space above ReclaimBytes stays while it is less than the data.
	for seg := int64(0); seg < 2; seg++ {
		if err := l.MarkUploaded(ctx, seg, "k", 1); err != nil {
			t.Fatal(err)
		}
		if p, free := pageCounts(t, l); p != pages || free*l.pageSize < (seg+1)<<20 {
			t.Fatalf("after trim %d: %d pages, %d free; want %d pages, %d MiB free", seg, p, free, pages, seg+1)
		}
	}
	// Now it outweighs the data: all of it goes.
	if err := l.MarkUploaded(ctx, 2, "k", 1); err != nil {
		t.Fatal(err)
	}
	if p, free := pageCounts(t, l); free != 0 || p*l.pageSize > pages*l.pageSize-3<<20 {
		t.Errorf("after third trim: %d pages, %d free; want 3 MiB fewer than %d, none free", p, free, pages)
	}
	got, err := l.ReadSegment(ctx, 3)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Data, payload(3<<20, 1<<20)) {
		t.Errorf("segment 3 after reclaim: %d messages, %v", len(got), err)
	}
}

func TestReadDataNotShared(t *testing.T) {
	// Read keeps the slices the driver returns instead of copying them
	// (see ownedBytes); this fails if a driver upgrade starts reusing
	// buffers between rows or reads.
	ctx := context.Background()
	sizes := []int{100, 100, 300 << 10, 300 << 10, 100, 300 << 10}
	want := msgs(0, 0, sizes...)
	meta := rootMeta()
	meta.Tail = tail(want, 0)
	l, _ := newLog(t, meta, want)
	var reads [][]Message
	for i := 0; i < 3; i++ {
		got, err := l.Read(ctx, 0, meta.Tail, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		reads = append(reads, got)
		seg, err := l.ReadSegment(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		reads = append(reads, seg)
	}
	for i, got := range reads {
		if !equalMessages(got, want) {
			t.Errorf("read %d changed after later reads: %s", i, describe(got))
		}
	}
}

func TestLargeMessages(t *testing.T) {
	ctx := context.Background()
	const maxSize = 8 << 20
	meta := rootMeta()
	l, _ := newLog(t, meta, nil)
	want := msgs(0, 0, maxSize, 1, maxSize)
	appendBatch(t, l, &meta, want)
	tests := []struct {
		name     string
		from     int64
		maxBytes int
		want     []Message
	}{
		{"one", 0, 1 << 20, want[:1]},
		{"two", 0, maxSize + 1, want[:2]},
		{"all", 0, 2*maxSize + 1, want},
		{"inside last", maxSize + 2, 1, want[2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(ctx, tt.from, meta.Tail, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMessages(got, tt.want) {
				t.Errorf("Read = %s, want %s", describe(got), describe(tt.want))
			}
		})
	}
}

func TestDurability(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, path := newLog(t, meta, msgs(0, 0, 3))
	meta.Tail = 3
	appendBatch(t, l, &meta, msgs(3, 0, 4, 5))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, &Batch{Meta: meta}); err == nil {
		t.Error("Commit after Close succeeded")
	}

	l2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	got, err := l2.Read(ctx, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := append(msgs(0, 0, 3), msgs(3, 0, 4, 5)...)
	if !equalMessages(got, want) {
		t.Errorf("after reopen: %s, want %s", describe(got), describe(want))
	}
	gotMeta, _, _, err := l2.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gotMeta.Tail != 12 {
		t.Errorf("tail after reopen = %d, want 12", gotMeta.Tail)
	}
}

func TestCreateReplacesStale(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"garbage files", func(t *testing.T, path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.WriteFile(p, bytes.Repeat([]byte("stale"), 1000), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"old hot log", func(t *testing.T, path string) {
			old := Meta{StreamID: 99, ContentType: "old"}
			if err := Create(ctx, path, old, msgs(0, 0, 100, 100)); err != nil {
				t.Fatal(err)
			}
		}},
		{"old hot log left open", func(t *testing.T, path string) {
			// A crashed process leaves its WAL behind.
			old := Meta{StreamID: 99, ContentType: "old"}
			if err := Create(ctx, path, old, msgs(0, 0, 100)); err != nil {
				t.Fatal(err)
			}
			l, err := Open(ctx, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			old.Tail = 200
			if err := l.Commit(ctx, &Batch{Messages: msgs(100, 0, 100), Meta: old}); err != nil {
				t.Fatal(err)
			}
			wal, err := os.ReadFile(path + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if err := os.WriteFile(path+"-wal", wal, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			tt.setup(t, path)
			meta := rootMeta()
			meta.Tail = 4
			if err := Create(ctx, path, meta, msgs(0, 0, 4)); err != nil {
				t.Fatal(err)
			}
			l, err := Open(ctx, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got, _, _, err := l.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, meta) {
				t.Errorf("meta = %+v, want %+v", got, meta)
			}
			if st, err := l.Stats(ctx); err != nil {
				t.Fatal(err)
			} else if st.Rows != 1 || st.DataBytes != 4 {
				t.Errorf("stats = %+v, want 1 row of 4 bytes", st)
			}
		})
	}
}

func TestCreateFileSettings(t *testing.T) {
	_, path := newLog(t, rootMeta(), nil)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for pragma, want := range map[string]string{
		"auto_vacuum":  "2", // incremental
		"page_size":    "16384",
		"journal_mode": "wal",
		"user_version": "2",
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestConnectionSettings(t *testing.T) {
	l, _ := newLog(t, rootMeta(), nil)
	tests := []struct {
		name string
		db   *sql.DB
		want map[string]string
	}{
		{"writer", l.wdb, map[string]string{"synchronous": "2", "busy_timeout": "10000", "foreign_keys": "0", "journal_size_limit": "67108864", "query_only": "0", "mmap_size": "0"}},
		{"reader", l.rdb, map[string]string{"busy_timeout": "10000", "query_only": "1", "mmap_size": fmt.Sprint(readMmapBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for pragma, want := range tt.want {
				var got string
				if err := tt.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
				}
			}
		})
	}
	if _, err := l.rdb.Exec("DELETE FROM messages"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	if _, err := Open(ctx, missing, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the missing file")
	}

	newer := filepath.Join(dir, "newer.db")
	if err := Create(ctx, newer, rootMeta(), nil); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 3"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, newer, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v, want a version error", err)
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, Options{}); err == nil {
		t.Error("Open of an empty file succeeded")
	}
}

func TestSpecialPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "we?ird #dir%20", "s.db")
	if err := Create(ctx, path, rootMeta(), msgs(0, 0, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file not at the given path: %v", err)
	}
	l, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := l.Read(ctx, 0, 5, 100); err != nil || len(got) != 1 {
		t.Errorf("Read = %v, %v; want one message", describe(got), err)
	}
}

func TestConcurrentReadWrite(t *testing.T) {
	t.Run("file", func(t *testing.T) { testConcurrentReadWrite(t, newLog) })
	t.Run("memory", func(t *testing.T) { testConcurrentReadWrite(t, newMemLog) })
}

func testConcurrentReadWrite(t *testing.T, newLog func(testing.TB, Meta, []Message) (*Log, string)) {
	ctx := context.Background()
	meta := rootMeta()
	l, _ := newLog(t, meta, nil)
	const batches, perBatch, size = 50, 20, 50

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := l.Read(ctx, 0, 1<<40, 1<<20)
				if err != nil {
					errs <- err
					return
				}
				// Every snapshot is a whole number of batches.
				if len(got)%perBatch != 0 || (len(got) > 0 && !got[len(got)-1].BatchEnd) {
					errs <- fmt.Errorf("read a partial batch: %d messages", len(got))
					return
				}
			}
		}()
	}
	for i := 0; i < batches; i++ {
		sizes := make([]int, perBatch)
		for j := range sizes {
			sizes[j] = size
		}
		ms := msgs(meta.Tail, 0, sizes...)
		for j := range ms {
			ms[j].BatchEnd = j == len(ms)-1
		}
		appendBatch(t, l, &meta, ms)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCanceledContext(t *testing.T) {
	l, _ := newLog(t, rootMeta(), msgs(0, 0, 5))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Read(ctx, 0, 5, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with canceled context: %v", err)
	}
	if err := l.Commit(ctx, &Batch{Meta: rootMeta()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with canceled context: %v", err)
	}
	// The log stays usable.
	if got, err := l.Read(context.Background(), 0, 5, 10); err != nil || len(got) != 1 {
		t.Errorf("Read after cancel = %s, %v", describe(got), err)
	}
}

func BenchmarkCommit(b *testing.B) {
	const perBatch, size = 64, 100
	meta := rootMeta()
	l, _ := newLog(b, meta, nil)
	data := payload(1, size)
	batch := &Batch{Messages: make([]Message, perBatch),
		Producers: []Producer{{ID: "p", Updated: stamp(1)}}}
	b.SetBytes(perBatch * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch.Messages {
			batch.Messages[j] = Message{Pos: meta.Tail, Data: data, BatchEnd: j == perBatch-1}
			meta.Tail += size
		}
		batch.Producers[0].LastSeq = int64(i)
		batch.Meta = meta
		if err := l.Commit(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	const msgSize, chunk, total = 256 << 10, 1 << 20, 64 << 20
	meta := rootMeta()
	l, _ := newLog(b, meta, nil)
	for meta.Tail < total {
		ms := msgs(meta.Tail, 0, msgSize, msgSize, msgSize, msgSize)
		appendBatch(b, l, &meta, ms)
	}
	ctx := context.Background()
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from := int64(i*chunk) % total
		got, err := l.Read(ctx, from, meta.Tail, chunk)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != chunk/msgSize {
			b.Fatalf("read %d messages, want %d", len(got), chunk/msgSize)
		}
	}
}

// TestCommitManyRows covers batches around the multi-row INSERT size:
// every message comes back with its position, segment, flags and data.
func TestCommitManyRows(t *testing.T) {
	meta := rootMeta()
	l, _ := newLog(t, meta, nil)
	var want []Message
	for _, n := range []int{1, rowsPerInsert - 1, rowsPerInsert, rowsPerInsert + 1, 2*rowsPerInsert + 5, 3} {
		sizes := make([]int, n)
		for i := range sizes {
			sizes[i] = 1 + (len(want)+i)%17
		}
		ms := msgs(meta.Tail, int64(len(want)%3), sizes...)
		for i := range ms {
			ms[i].BatchEnd = i == n-1
		}
		appendBatch(t, l, &meta, ms)
		want = append(want, ms...)
	}
	got, err := l.Read(context.Background(), 0, meta.Tail, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if describe(got) != describe(want) {
		t.Fatalf("read back %s\nwant %s", describe(got), describe(want))
	}
	for i := range got {
		if got[i].Seg != want[i].Seg || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("message %d: got seg %d data %x, want seg %d data %x", i, got[i].Seg, got[i].Data, want[i].Seg, want[i].Data)
		}
	}
}

// TestOpenDropsSegIndex: files made by earlier versions index
// messages.seg; Open drops the index, and trimming works without it.
func TestOpenDropsSegIndex(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, path := newLog(t, meta, nil)
	appendBatch(t, l, &meta, msgs(0, 0, 10, 20))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE INDEX messages_seg ON messages (seg)"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	l, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var n int
	if err := l.rdb.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_seg'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("index count after Open = %d, %v; want 0", n, err)
	}
	meta.OpenSeg, meta.OpenSegStart = 1, 30
	seal := &Segment{Seg: 0, Start: 0, End: 30, Messages: 2, Bytes: 30, State: segment.Sealed}
	if err := l.Commit(ctx, &Batch{Meta: meta, Seal: seal}); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, l, &meta, msgs(30, 1, 5))
	if err := l.MarkUploaded(ctx, 0, "k", 1); err != nil {
		t.Fatal(err)
	}
	got, err := l.Read(ctx, 0, meta.Tail, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if describe(got) != describe(msgs(30, 1, 5)) {
		t.Fatalf("after trimming segment 0: %s", describe(got))
	}
}

// TestReadsWhileFileShrinks reads through the read pool's memory map while
// trims, reclaims and compaction shrink the file under it: readers must
// see whole, correct messages or a clean miss, never a crash or garbage.
func TestReadsWhileFileShrinks(t *testing.T) {
	ctx := context.Background()
	meta := rootMeta()
	l, _ := newLogOpts(t, meta, nil, Options{ReclaimBytes: 1})
	const size, perSeg = 64 << 10, 4
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				got, err := l.Read(ctx, 0, 1<<40, 1<<20)
				if err != nil {
					errc <- err
					return
				}
				for _, m := range got {
					if want := payload(int(m.Pos), size); !bytes.Equal(m.Data, want) {
						errc <- fmt.Errorf("message at %d has wrong data", m.Pos)
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for seg := int64(0); time.Now().Before(deadline); seg++ {
		sizes := make([]int, perSeg)
		for i := range sizes {
			sizes[i] = size
		}
		start := meta.Tail
		appendBatch(t, l, &meta, msgs(meta.Tail, seg, sizes...))
		meta.OpenSeg, meta.OpenSegStart = seg+1, meta.Tail
		s := &Segment{Seg: seg, Start: start, End: meta.Tail, Messages: perSeg, Bytes: meta.Tail - start, State: segment.Sealed}
		if err := l.Commit(ctx, &Batch{Meta: meta, Seal: s}); err != nil {
			t.Fatal(err)
		}
		if err := l.MarkUploaded(ctx, seg, "k", 1); err != nil {
			t.Fatal(err)
		}
		if seg%8 == 7 {
			if err := l.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
