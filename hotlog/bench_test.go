package hotlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamtier/durable-streams/internal/proctest"
)

// BenchmarkReadChunk reads a stream chunk by chunk from its start, as a
// catch-up reader does, for large and small messages. MB/s is the read
// throughput.
func BenchmarkReadChunk(b *testing.B) {
	cases := []struct {
		size, chunk int
		total       int64
	}{
		{1 << 20, 4 << 20, 64 << 20},
		{256 << 10, 1 << 20, 64 << 20},
		{100, 1 << 20, 8 << 20},
	}
	for _, bc := range cases {
		b.Run(fmt.Sprintf("msg=%d/chunk=%d", bc.size, bc.chunk), func(b *testing.B) {
			meta := rootMeta()
			l, _ := newLog(b, meta, nil)
			perBatch := max(1, (4<<20)/bc.size)
			for meta.Tail < bc.total {
				sizes := make([]int, perBatch)
				for i := range sizes {
					sizes[i] = bc.size
				}
				appendBatch(b, l, &meta, msgs(meta.Tail, 0, sizes...))
			}
			ctx := context.Background()
			b.SetBytes(int64(bc.chunk))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := proctest.CPU()
			var from int64
			for range b.N {
				got, err := l.Read(ctx, from, meta.Tail, bc.chunk)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatal("empty read")
				}
				if from = got[len(got)-1].End(); from >= meta.Tail {
					from = 0
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(proctest.CPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCommitRows commits batches of small messages, as a batched JSON
// producer does (one row per message), and single messages, as unbatched
// appends do. cpu-ns/op is the CPU of one commit, fsync waits excluded.
func BenchmarkCommitRows(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			meta := rootMeta()
			l, _ := newLog(b, meta, nil)
			sizes := make([]int, n)
			for i := range sizes {
				sizes[i] = 100
			}
			b.SetBytes(int64(100 * n))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := proctest.CPU()
			for range b.N {
				appendBatch(b, l, &meta, msgs(meta.Tail, 0, sizes...))
			}
			b.StopTimer()
			b.ReportMetric(float64(proctest.CPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkNewLog is what a new stream's hot log costs from nothing to a
// first commit (one message) and close, made the three ways there are:
// built statement by statement (Create, as replay and memory mode do),
// the image written out and opened as any hot log (the journal's way
// before write-behind), and the image opened as new (Image.OpenNew).
func BenchmarkNewLog(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	im, err := NewImage(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{NoSync: true}
	for _, c := range []struct {
		name string
		open func(path string, meta Meta) *Log
	}{
		{"create", func(path string, meta Meta) *Log {
			if err := CreateUnsynced(ctx, path, meta, nil); err != nil {
				b.Fatal(err)
			}
			l, err := Open(ctx, path, opts)
			if err != nil {
				b.Fatal(err)
			}
			return l
		}},
		{"image+open", func(path string, meta Meta) *Log {
			if err := im.WriteFile(path); err != nil {
				b.Fatal(err)
			}
			l, err := Open(ctx, path, opts)
			if err != nil {
				b.Fatal(err)
			}
			return l
		}},
		{"opennew", func(path string, meta Meta) *Log { return im.OpenNew(path, opts) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := proctest.CPU()
			for i := range b.N {
				path := fmt.Sprintf("%s/%s-%d.db", dir, c.name, i)
				meta := rootMeta()
				l := c.open(path, meta)
				m := msgs(0, 0, 100)
				meta.Tail = m[0].End()
				meta.OpenSegMsgs, meta.OpenSegBytes = 1, 100
				if err := l.Commit(ctx, &Batch{Messages: m, Meta: meta}); err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(proctest.CPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
