package sequencer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/proctest"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// BenchmarkCreateAppend is the sequencer's part of the create-64
// workload: 64 clients each creating a stream and appending 100 bytes to
// it, with the commit journal. run-cpu-ns/op is the process's CPU per
// stream during the burst (robust to other load on the machine, unlike
// the rate), cpu-ns/op the same including the graceful stop after it,
// and stop-ns the stop's wall time.
func BenchmarkCreateAppend(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	reg, err := sequencer.NewRegistry(sequencer.Config{DataDir: dir, Catalog: cat, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ct, _ := protocol.ParseContentType("application/octet-stream")
	msg := make([]byte, 100)
	var n atomic.Int64
	b.SetParallelism(32) // 64 clients on 2 cores
	b.ReportAllocs()
	cpu := proctest.CPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p := fmt.Sprintf("bench/create-%d", n.Add(1))
			res, err := reg.Create(ctx, &sequencer.CreateRequest{Path: p, ContentType: &ct})
			if err != nil {
				b.Error(err)
				return
			}
			res.Handle.Release()
			h, err := reg.Acquire(ctx, p, true)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := h.Append(ctx, &sequencer.AppendRequest{ContentType: ct, Messages: [][]byte{msg}}); err != nil {
				b.Error(err)
			}
			h.Release()
		}
	})
	b.StopTimer()
	run := proctest.CPU() - cpu
	start := time.Now()
	if err := reg.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds()), "stop-ns")
	b.ReportMetric(float64(run)/float64(b.N), "run-cpu-ns/op")
	b.ReportMetric(float64(proctest.CPU()-cpu)/float64(b.N), "cpu-ns/op")
}
