package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// env is what a workload runs with.
type env struct {
	opt     options
	name    string
	out     *printer
	lg      *slog.Logger
	srv     *server // nil with -url
	baseURL string
	client  *client
}

func (e *env) report(metric string, v float64, unit string) {
	e.out.print(result{Target: e.opt.target, Workload: e.name, Metric: metric, Value: v, Unit: unit})
}

// reportRSS reports the server's memory and open files, when bench runs it.
func (e *env) reportRSS(prefix string) {
	if e.srv == nil {
		return
	}
	if m, err := e.srv.memory(); err == nil {
		e.report(prefix+"rss", float64(m.rss)/(1<<20), "MiB")
		e.report(prefix+"rss_anon", float64(m.anon)/(1<<20), "MiB")
	}
	if n, err := e.srv.openFiles(); err == nil {
		e.report(prefix+"open_fds", float64(n), "fds")
	}
}

// scaled applies -scale to a count, never below min.
func (e *env) scaled(n, min int) int {
	v := int(float64(n) * e.opt.scale)
	if v < min {
		return min
	}
	return v
}

// workload is one named measurement.
type workload struct {
	order int
	run   func(ctx context.Context, e *env) error
}

var workloads = map[string]workload{
	"append-1x1":        {10, appendWorkload(1, 1)},
	"append-1x16":       {11, appendWorkload(1, 16)},
	"append-1x64":       {12, appendWorkload(1, 64)},
	"append-16x16":      {13, appendWorkload(16, 16)},
	"append-64x64":      {14, appendWorkload(64, 64)},
	"create-64":         {15, createWorkload(64)},
	"producer-binary":   {20, producerWorkload(false)},
	"producer-json":     {21, producerWorkload(true)},
	"read-hot":          {30, readWorkload(readHot)},
	"read-cold-cached":  {31, readWorkload(readColdCached)},
	"read-cold-remote":  {32, readWorkload(readColdRemote)},
	"read-parallel":     {33, parallelReadWorkload},
	"longpoll-latency":  {40, liveLatencyWorkload(false)},
	"sse-latency":       {41, liveLatencyWorkload(true)},
	"sse-fanout-1k":     {50, fanoutWorkload(1000)},
	"sse-fanout-10k":    {51, fanoutWorkload(10000)},
	"idle-streams-100k": {60, idleStreamsWorkload(100000)},
	"restart-1g":        {70, restartWorkload(1<<30, 16, false)},
	"restart-100m":      {71, restartWorkload(100<<20, 16, false)},
	"restart-kill-1g":   {72, restartWorkload(1<<30, 64, true)},
}

// quickWorkloads run in a few minutes on a laptop.
var quickWorkloads = []string{"append-1x1", "append-1x64", "append-64x64", "create-64", "producer-binary", "producer-json",
	"read-hot", "longpoll-latency", "sse-latency", "sse-fanout-1k"}

// appendWorkload measures unbatched durable appends of 100 B from clients
// spread over streams (streams ≤ clients).
func appendWorkload(streams, clients int) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		for i := range streams {
			if err := e.client.create(ctx, fmt.Sprintf("bench/append-%d", i), "application/octet-stream"); err != nil {
				return err
			}
		}
		msg := make([]byte, 100)
		rand.Read(msg)
		res, err := closedLoop(ctx, e, clients, func(ctx context.Context, c, _ int) error {
			return e.client.appendData(ctx, fmt.Sprintf("bench/append-%d", c%streams), "application/octet-stream", msg, nil)
		})
		if err != nil {
			return err
		}
		e.report("appends_per_s", res.rate(), "ops/s")
		e.report("p50", res.lat.quantile(0.5), "ms")
		e.report("p99", res.lat.quantile(0.99), "ms")
		return nil
	}
}

// createWorkload measures stream creation: each client, in a loop,
// creates a new stream and appends 100 B to it once (one operation).
func createWorkload(clients int) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		msg := make([]byte, 100)
		rand.Read(msg)
		const ctype = "application/octet-stream"
		res, err := closedLoop(ctx, e, clients, func(ctx context.Context, c, i int) error {
			path := fmt.Sprintf("bench/create-%d-%d", c, i)
			if err := e.client.create(ctx, path, ctype); err != nil {
				return err
			}
			return e.client.appendData(ctx, path, ctype, msg, nil)
		})
		if err != nil {
			return err
		}
		e.report("streams_per_s", res.rate(), "ops/s")
		e.report("p50", res.lat.quantile(0.5), "ms")
		e.report("p99", res.lat.quantile(0.99), "ms")
		return nil
	}
}

// loopResult is what closedLoop measured.
type loopResult struct {
	ops     int64
	elapsed time.Duration
	lat     *latencies
}

func (r loopResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// closedLoop runs op from clients goroutines, each calling it again as
// soon as it returns (c is the client, i its call count), for the
// measurement's duration; the first error ends the run.
func closedLoop(ctx context.Context, e *env, clients int, op func(ctx context.Context, c, i int) error) (loopResult, error) {
	lat := &latencies{}
	var ops atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithTimeout(ctx, e.opt.duration)
	defer cancel()
	var wg sync.WaitGroup
	begin := time.Now()
	for c := range clients {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				if err := op(ctx, c, i); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					break
				}
				local = append(local, time.Since(t))
				ops.Add(1)
			}
			lat.merge(local)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return loopResult{}, firstErr
	}
	return loopResult{ops: ops.Load(), elapsed: time.Since(begin), lat: lat}, nil
}

// producerWorkload measures batched idempotent producer throughput: four
// producers each send batches of 1,000 messages of 100 B, one batch in
// flight per producer, to one stream.
func producerWorkload(asJSON bool) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		const producers, batch = 4, 1000
		ctype, path := "application/octet-stream", "bench/producer"
		if asJSON {
			ctype = "application/json"
		}
		if err := e.client.create(ctx, path, ctype); err != nil {
			return err
		}
		body := producerBatch(batch, asJSON)
		var msgs atomic.Int64
		var lat latencies
		ctx, cancel := context.WithTimeout(ctx, e.opt.duration)
		defer cancel()
		errs := make(chan error, producers)
		var wg sync.WaitGroup
		begin := time.Now()
		for p := range producers {
			wg.Go(func() {
				for seq := 0; ctx.Err() == nil; seq++ {
					hdr := map[string]string{"Producer-Id": fmt.Sprintf("bench-%d", p), "Producer-Epoch": "0", "Producer-Seq": itoa(seq)}
					t := time.Now()
					if err := e.client.appendData(ctx, path, ctype, body, hdr); err != nil {
						if ctx.Err() == nil {
							errs <- err
							cancel()
						}
						return
					}
					lat.add(time.Since(t))
					msgs.Add(batch)
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		el := time.Since(begin).Seconds()
		e.report("msgs_per_s", float64(msgs.Load())/el, "msg/s")
		e.report("MB_per_s", float64(msgs.Load())*100/el/1e6, "MB/s")
		e.report("batch_p50", lat.quantile(0.5), "ms")
		return nil
	}
}

// producerBatch is n messages of about 100 B: concatenated bytes, or a JSON
// array of objects.
func producerBatch(n int, asJSON bool) []byte {
	if !asJSON {
		b := make([]byte, 100*n)
		rand.Read(b)
		return b
	}
	b := []byte{'['}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"i":%d,"kind":"bench","payload":"%070d"}`, i, i)
	}
	return append(b, ']')
}

var errNoServer = errors.New("this workload needs -server (bench must control the server process)")
