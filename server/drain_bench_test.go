package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/sequencer"
)

// BenchmarkDrainUnderLoad measures a cluster node's drain (seal, upload,
// journal checkpoint, handoff state, lease release of every stream it
// owns) while 16 writers keep appending to its streams, as in a rolling
// restart. It reports drain-ms, the wall time of one drain; run it with
// -benchtime=1x:
//
//	go test -run '^$' -bench DrainUnderLoad -benchtime=1x ./server
func BenchmarkDrainUnderLoad(b *testing.B) {
	pg := pgtest.Start(b)
	for _, streams := range []int{70, 200} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += drainUnderLoad(b, pg.NewDatabase(b), streams, 16)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "drain-ms")
		})
	}
}

// drainUnderLoad starts a cluster node on dsn with streams streams, lets
// writers append for a while (sealing segments every 2 s, as the e2e cluster tests do, so uploads
// are queued as in steady state), then drains it under that load and
// returns how long the drain took.
func drainUnderLoad(b *testing.B, dsn string, streams, writers int) time.Duration {
	b.StopTimer()
	ctx := context.Background()
	c := Cluster{DSN: dsn, NodeID: "n1", AdvertiseURL: "http://127.0.0.1:1", Heartbeat: 200 * time.Millisecond, TTL: 2 * time.Second}
	s, hs := startServer(b, Config{Cluster: c, Rotation: sequencer.RotationPolicy{SealAge: 2 * time.Second}})
	hc := benchClient()
	urls := make([]string, streams)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/v1/stream/drain/%d", hs.URL, i)
		benchCreate(b, hc, urls[i], "application/octet-stream")
	}
	var (
		acked, refused atomic.Int64
		stop           = make(chan struct{})
		wg             sync.WaitGroup
	)
	msg := bytes.Repeat([]byte("x"), 256)
	for w := range writers {
		wg.Go(func() {
			for i := w; ; i += writers {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Post(urls[i%streams], "application/octet-stream", bytes.NewReader(msg))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					acked.Add(1)
				case http.StatusServiceUnavailable:
					refused.Add(1)
					time.Sleep(50 * time.Millisecond) // Retry-After, shortened
				default:
					b.Errorf("append: status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	time.Sleep(3 * time.Second)
	before := acked.Load()

	b.StartTimer()
	start := time.Now()
	p, err := s.Registry().Drain(ctx, api.DefaultDrainConcurrency, nil)
	took := time.Since(start)
	b.StopTimer()

	close(stop)
	wg.Wait()
	if err != nil || p.HandedOff != streams {
		b.Fatalf("drain: %+v, %v", p, err)
	}
	b.Logf("%d streams, %d writers: drained in %v (%d appends before, %d during; %d refused)",
		streams, writers, took.Round(time.Millisecond), before, acked.Load()-before, refused.Load())
	return took
}
