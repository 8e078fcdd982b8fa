package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// idleStreamsWorkload creates n streams holding one small message each,
// waits for the server to go idle and reports its memory and open files:
// idle streams should cost neither goroutines nor file descriptors.
func idleStreamsWorkload(n int) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		if e.srv == nil {
			return errNoServer
		}
		// A short idle timeout lets this server close idle actors quickly.
		if err := e.restartWith(ctx, []string{"DS_IDLE_TIMEOUT=2s"}, false); err != nil {
			return err
		}
		n = e.scaled(n, 100)
		var next atomic.Int64
		errs := make(chan error, 64)
		var wg sync.WaitGroup
		begin := time.Now()
		for range 64 {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(n) || ctx.Err() != nil {
						return
					}
					path := fmt.Sprintf("bench/idle/%06d", i)
					if err := e.client.create(ctx, path, "text/plain"); err != nil {
						errs <- err
						return
					}
					if err := e.client.appendData(ctx, path, "text/plain", []byte("hello;"), nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		e.report("create_per_s", float64(n)/time.Since(begin).Seconds(), "streams/s")
		e.reportRSS("busy_")
		e.client.hc.CloseIdleConnections()
		time.Sleep(10 * time.Second)
		e.report("streams", float64(n), "streams")
		e.reportRSS("idle_")
		e.report("disk", float64(e.srv.dirBytes())/(1<<20), "MiB")
		return nil
	}
}

// restartWorkload writes size bytes over streams streams, then measures a
// stop (clean, or SIGKILL with kill) and a start until every stream
// answers a read at its tail.
func restartWorkload(size int64, streams int, kill bool) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		if e.srv == nil {
			return errNoServer
		}
		mib := int(float64(size>>20) * e.opt.scale / float64(streams))
		if mib < 1 {
			mib = 1
		}
		paths := make([]string, streams)
		for i := range paths {
			paths[i] = fmt.Sprintf("bench/restart-%d", i)
			if _, err := fillStream(ctx, e, paths[i], mib, 1<<20); err != nil {
				return err
			}
		}
		tails := make([]string, streams)
		for i, p := range paths {
			t, err := e.client.tail(ctx, p)
			if err != nil {
				return err
			}
			tails[i] = t
		}
		e.report("data", float64(e.srv.dirBytes())/(1<<20), "MiB")
		e.client.hc.CloseIdleConnections()
		t0 := time.Now()
		if kill {
			e.srv.kill()
		} else {
			e.srv.stop()
		}
		e.report("stop_s", time.Since(t0).Seconds(), "s")
		t0 = time.Now()
		if _, err := e.srv.start(ctx); err != nil {
			return err
		}
		ready := time.Since(t0)
		for i, p := range paths {
			t, err := e.client.tail(ctx, p)
			if err != nil {
				return err
			}
			if t != tails[i] {
				return fmt.Errorf("%s: tail %s after restart, %s before", p, t, tails[i])
			}
		}
		e.report("ready_s", ready.Seconds(), "s")
		e.report("serving_s", time.Since(t0).Seconds(), "s")
		return nil
	}
}
