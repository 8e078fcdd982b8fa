package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMinIOOutage stops MinIO while several streams are being appended to
// and read: for ~5 s every append, catch-up read and long-poll read of
// recent data must still succeed (the data stays in the hot log), and the
// server must log that it will retry its uploads. After MinIO is back, all
// sealed segments must reach the bucket within 30 s, and every stream must
// read back byte-identical.
func TestMinIOOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	env := startCold(t)
	const nStreams = 4
	models := make([]*streamModel, nStreams)
	ids := make([]int64, nStreams)
	for i := range models {
		name := fmt.Sprintf("cold/outage/%d", i)
		models[i] = newModel(name, env.srv.StreamURL(name), "application/octet-stream")
		createStream(t, env.client, models[i].url, models[i].ct, nil)
		ids[i] = streamID(t, env.client, models[i].url)
	}

	// outage is set while MinIO is down; tokens recorded then are only
	// ever in the hot log.
	var outage atomic.Bool
	type obs struct {
		m        *streamModel
		from     token
		ch       chunk
		longPoll bool
	}
	var (
		obsMu    sync.Mutex
		observed []obs
		appended [nStreams]atomic.Int64
		reads    [nStreams]atomic.Int64
		polls    [nStreams]atomic.Int64
	)
	// duringOutage[i] are the tokens stream i handed out while MinIO was down.
	duringOutage := make([][]string, nStreams)
	var outMu sync.Mutex

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop()
	}
	for i, m := range models {
		// Appender: random 128 B..1 KiB appends.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			c := loopbackClient(10 * time.Second)
			for ctx.Err() == nil {
				b := make([]byte, 128+rng.IntN(896))
				for k := range b {
					b[k] = byte(rng.Uint32())
				}
				down := outage.Load()
				// Not canceled by stop: an append in flight then must be
				// recorded, since the server may have committed it.
				resp, _, err := tryDo(context.Background(), c, http.MethodPost, m.url, b, map[string]string{"Content-Type": m.ct})
				if err != nil || resp.StatusCode/100 != 2 {
					fail("%s: append (MinIO down: %v): %v", m.name, down, statusOrErr(resp, err))
					return
				}
				tok := resp.Header.Get("Stream-Next-Offset")
				m.add(t, [][]byte{b}, tok)
				appended[i].Add(1)
				if down && outage.Load() {
					outMu.Lock()
					duringOutage[i] = append(duringOutage[i], tok)
					outMu.Unlock()
				}
				// ~60 appends/s per stream: enough for hundreds of
				// segments, few enough to upload them in seconds.
				time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
			}
		}()
		// Reader: while MinIO is down, catch-up reads from offsets handed
		// out during the outage and long-polls at the latest of them.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 8))
			c := loopbackClient(10 * time.Second)
			for ctx.Err() == nil {
				outMu.Lock()
				toks := duringOutage[i]
				outMu.Unlock()
				if !outage.Load() || len(toks) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				longPoll := rng.IntN(3) == 0
				off := toks[rng.IntN(len(toks))]
				q := "?offset=" + off
				if longPoll {
					off = toks[len(toks)-1]
					q = "?offset=" + off + "&live=long-poll"
				}
				resp, body, err := tryDo(ctx, c, http.MethodGet, m.url+q, nil, nil)
				if ctx.Err() != nil {
					return
				}
				if err != nil || (resp.StatusCode != http.StatusOK && !(longPoll && resp.StatusCode == http.StatusNoContent)) {
					fail("%s: GET %s during the outage: %v: %s", m.name, q, statusOrErr(resp, err), body)
					return
				}
				if longPoll {
					polls[i].Add(1)
				} else {
					reads[i].Add(1)
				}
				if resp.StatusCode == http.StatusOK {
					ch := chunk{status: resp.StatusCode, body: body, next: resp.Header.Get("Stream-Next-Offset"),
						upToDate: resp.Header.Get("Stream-Up-To-Date") == "true"}
					from, _ := tryParseToken(off) // recorded by add, which checked it
					obsMu.Lock()
					observed = append(observed, obs{m: m, from: from, ch: ch, longPoll: longPoll})
					obsMu.Unlock()
				}
			}
		}()
	}

	// Some data and uploads with MinIO up, then the outage.
	waitAppends := func(n int64) {
		eventually(t, 20*time.Second, 20*time.Millisecond, "appends", func() string {
			for i := range nStreams {
				if appended[i].Load() < n {
					return fmt.Sprintf("stream %d has %d appends", i, appended[i].Load())
				}
			}
			return ""
		})
	}
	waitAppends(20)
	eventually(t, 20*time.Second, 50*time.Millisecond, "first uploads", func() string {
		if n := mustList(t, env.bucket).count(); n < nStreams {
			return fmt.Sprintf("%d objects", n)
		}
		return ""
	})
	before := mustList(t, env.bucket).count()
	logBefore := len(env.srv.Log())
	env.mio.Stop()
	outage.Store(true)
	outStart := time.Now()
	t.Logf("MinIO stopped with %d objects in the bucket", before)
	retried := false
	for time.Since(outStart) < 5*time.Second && ctx.Err() == nil {
		if !retried && strings.Contains(env.srv.Log()[logBefore:], "will retry") {
			retried = true
			t.Logf("server logged a rotation retry %v into the outage", time.Since(outStart).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !retried {
		eventually(t, 10*time.Second, 100*time.Millisecond, "a rotation retry in the server log", func() string {
			if strings.Contains(env.srv.Log()[logBefore:], "will retry") {
				return ""
			}
			return `no "will retry" line since MinIO was stopped`
		})
	}
	outage.Store(false)
	var during [nStreams]int
	outMu.Lock()
	for i := range nStreams {
		during[i] = len(duringOutage[i])
	}
	outMu.Unlock()
	env.mio.Restart(t)
	restarted := time.Now()
	t.Logf("MinIO restarted after %v", restarted.Sub(outStart).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // keep writing a little with MinIO back
	stop()
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range nStreams {
		if during[i] == 0 || reads[i].Load() == 0 || polls[i].Load() == 0 {
			t.Errorf("stream %d: %d appends, %d catch-up reads and %d long-polls during the outage; want some of each",
				i, during[i], reads[i].Load(), polls[i].Load())
		}
		t.Logf("stream %d: %d appends in all, %d during the outage; %d catch-up reads and %d long-polls during the outage",
			i, appended[i].Load(), during[i], reads[i].Load(), polls[i].Load())
	}

	// Every sealed segment reaches the bucket (the open ones are sealed by
	// age 2 s after their first message).
	want := map[int64]int64{}
	for i, m := range models {
		want[ids[i]] = m.tail().seg
	}
	l := env.awaitUploads(t, want, 30*time.Second)
	t.Logf("all %d segments uploaded %v after MinIO came back", l.count(), time.Since(restarted).Round(time.Millisecond))

	// The reads made during the outage returned the right bytes, and every
	// stream reads back byte-identical.
	checkers := map[*streamModel]*readCheck{}
	for _, m := range models {
		checkers[m] = m.checker(t)
	}
	for _, o := range observed {
		checkers[o.m].check(t, o.from, o.ch)
	}
	for _, m := range models {
		checkers[m].readWhole(t, env.client, true)
	}
	t.Logf("%d reads made during the outage verified; all streams read back byte-identical", len(observed))
}

func statusOrErr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}
