package hotlog

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// processCPU is the process's user plus system CPU time. Benchmarks report
// it per operation (cpu-ns/op) because on a shared machine it depends much
// less on the neighbours than wall time does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
			cpu := processCPU()
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
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
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
			cpu := processCPU()
			for range b.N {
				appendBatch(b, l, &meta, msgs(meta.Tail, 0, sizes...))
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
