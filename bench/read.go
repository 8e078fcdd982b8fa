package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

type readTier int

const (
	readHot        readTier = iota // everything still in the hot log
	readColdCached                 // sealed segments, already in the local disk cache
	readColdRemote                 // sealed segments, fetched from the object store
)

// Server settings per tier, passed as environment variables: this server
// reads DS_* variables, other servers ignore them.
var tierEnv = map[readTier][]string{
	readHot:        {"DS_SEAL_BYTES=4294967296", "DS_SEAL_AGE=24h", "DS_MAX_READ_CHUNK=4194304"},
	readColdCached: {"DS_SEAL_BYTES=16777216", "DS_MAX_READ_CHUNK=4194304"},
	readColdRemote: {"DS_SEAL_BYTES=16777216", "DS_MAX_READ_CHUNK=4194304"},
}

// readWorkload writes 256 MiB (times -scale) as 1 MiB messages and measures
// catch-up reads of all of it by one reader: the median of 3 passes after
// an unmeasured one (one pass, after a restart, for read-cold-remote).
func readWorkload(tier readTier) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		if tier != readHot && e.srv == nil {
			return errNoServer
		}
		if e.srv != nil {
			if err := e.restartWith(ctx, tierEnv[tier], false); err != nil {
				return err
			}
		}
		const path = "bench/read"
		// Cold tiers need at least a few 16 MiB segments.
		minMiB := 8
		if tier != readHot {
			minMiB = 48
		}
		total, err := fillStream(ctx, e, path, e.scaled(256, minMiB), 1<<20)
		if err != nil {
			return err
		}
		if tier != readHot {
			if err := e.waitUploaded(ctx, path); err != nil {
				return err
			}
		}
		passes := 3
		if tier == readColdRemote {
			passes = 1
		}
		var rates []float64
		for range passes {
			if tier == readColdRemote {
				// An empty disk cache forces every segment to come from the store.
				if err := e.restartWith(ctx, tierEnv[tier], true); err != nil {
					return err
				}
			} else if len(rates) == 0 {
				// One unmeasured pass: it fills the segment cache (cold
				// tiers), and it lets a freshly started server grow its heap
				// (the first catch-up after a start page-faults every buffer
				// it allocates), so that the passes measure a server in its
				// steady state.
				if _, err := e.client.readAll(ctx, path, nil); err != nil {
					return err
				}
			}
			begin := time.Now()
			n, err := e.client.readAll(ctx, path, nil)
			if err != nil {
				return err
			}
			if n != total {
				return fmt.Errorf("read %d bytes, wrote %d", n, total)
			}
			rates = append(rates, float64(n)/time.Since(begin).Seconds()/1e6)
		}
		slices.Sort(rates)
		e.report("MB_per_s", rates[len(rates)/2], "MB/s")
		e.reportRSS("after_")
		return nil
	}
}

// parallelReadWorkload has 8 readers catch up on the same 128 MiB at once,
// after one unmeasured pass, to show aggregate throughput and that memory
// per reader stays bounded.
func parallelReadWorkload(ctx context.Context, e *env) error {
	if e.srv != nil {
		if err := e.restartWith(ctx, tierEnv[readHot], false); err != nil {
			return err
		}
	}
	const path, readers = "bench/read", 8
	total, err := fillStream(ctx, e, path, e.scaled(128, 8), 1<<20)
	if err != nil {
		return err
	}
	// One unmeasured pass, as in readWorkload.
	if _, err := e.client.readAll(ctx, path, nil); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	var peak memUse
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for e.srv != nil {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if m, err := e.srv.memory(); err == nil {
					peak.rss, peak.anon = max(peak.rss, m.rss), max(peak.anon, m.anon)
				}
			}
		}
	}()
	begin := time.Now()
	for range readers {
		wg.Go(func() {
			n, err := e.client.readAll(ctx, path, nil)
			if err == nil && n != total {
				err = fmt.Errorf("read %d bytes, wrote %d", n, total)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	e.report("aggregate_MB_per_s", float64(total*readers)/time.Since(begin).Seconds()/1e6, "MB/s")
	if peak.rss > 0 {
		e.report("peak_rss", float64(peak.rss)/(1<<20), "MiB")
		e.report("peak_rss_anon", float64(peak.anon)/(1<<20), "MiB")
	}
	return nil
}

// fillStream writes mib messages of size bytes with 8 concurrent writers
// (order does not matter to the reads) and returns the bytes written.
func fillStream(ctx context.Context, e *env, path string, mib, size int) (int64, error) {
	if err := e.client.create(ctx, path, "application/octet-stream"); err != nil {
		return 0, err
	}
	msg := make([]byte, size)
	rand.Read(msg)
	n := mib * (1 << 20) / size
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range work {
				if err := e.client.appendData(ctx, path, "application/octet-stream", msg, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return int64(n * size), nil
}

// restartWith restarts the server with extra environment variables, and
// optionally with an empty cold-segment cache.
func (e *env) restartWith(ctx context.Context, extra []string, dropCache bool) error {
	e.srv.stop()
	if dropCache {
		os.RemoveAll(filepath.Join(e.srv.dir, "cache"))
	}
	for _, kv := range extra {
		k, v, _ := cutEnv(kv)
		os.Setenv(k, v)
	}
	defer func() {
		for _, kv := range extra {
			k, _, _ := cutEnv(kv)
			os.Unsetenv(k)
		}
	}()
	_, err := e.srv.start(ctx)
	return err
}

func cutEnv(kv string) (string, string, bool) {
	for i := range len(kv) {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// waitUploaded polls this server's admin API until no segment of path waits
// for upload.
func (e *env) waitUploaded(ctx context.Context, path string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.baseURL+"/v1/admin/stats?stream="+path, nil)
		resp, err := e.client.hc.Do(req)
		if err != nil {
			return err
		}
		var st struct {
			Cold struct {
				Segments int64            `json:"segments"`
				ByState  map[string]int64 `json:"by_state"`
			} `json:"cold"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("admin stats: %w", err)
		}
		if st.Cold.Segments > 0 && st.Cold.ByState["uploaded"] == st.Cold.Segments {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("segments of %s not uploaded after 5 minutes", path)
}
