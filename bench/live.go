package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Live workloads append small text messages "<seq>;" and measure when each
// reaches the readers. Send time is taken before the POST and ack time when
// it returns; a reader can see a message before its writer sees the ack.

// liveLatencyWorkload measures append → delivery latency for one reader
// following the stream by long-poll or SSE.
func liveLatencyWorkload(sse bool) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		const path = "bench/live"
		if err := e.client.create(ctx, path, "text/plain"); err != nil {
			return err
		}
		n := e.scaled(500, 20)
		recv := make([]time.Time, n)
		var got atomic.Int64
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		readErr := make(chan error, 1)
		deliver := func(seq int) {
			if seq >= 0 && seq < n && recv[seq].IsZero() {
				recv[seq] = time.Now()
				got.Add(1)
			}
		}
		follow := e.client.followLongPoll
		if sse {
			follow = e.client.followSSE
		}
		go func() { readErr <- follow(rctx, path, "-1", deliver, nil) }()
		time.Sleep(200 * time.Millisecond) // let the reader park
		sent, acked := make([]time.Time, n), make([]time.Time, n)
		for i := range n {
			want := int64(i)
			// Wait until the reader has seen the previous message and is
			// parked again, so each sample measures a wakeup.
			for got.Load() < want {
				if err := waitOrFail(ctx, readErr); err != nil {
					return err
				}
			}
			time.Sleep(2 * time.Millisecond)
			sent[i] = time.Now()
			if err := e.client.appendData(ctx, path, "text/plain", []byte(strconv.Itoa(i)+";"), nil); err != nil {
				return err
			}
			acked[i] = time.Now()
		}
		deadline := time.Now().Add(10 * time.Second)
		for got.Load() < int64(n) && time.Now().Before(deadline) {
			if err := waitOrFail(ctx, readErr); err != nil {
				return err
			}
		}
		cancel()
		if g := got.Load(); g < int64(n) {
			return fmt.Errorf("reader got %d of %d messages", g, n)
		}
		var fromSend, fromAck latencies
		for i := range n {
			fromSend.add(recv[i].Sub(sent[i]))
			fromAck.add(recv[i].Sub(acked[i]))
		}
		e.report("send_to_recv_p50", fromSend.quantile(0.5), "ms")
		e.report("send_to_recv_p99", fromSend.quantile(0.99), "ms")
		e.report("ack_to_recv_p50", fromAck.quantile(0.5), "ms")
		return nil
	}
}

func waitOrFail(ctx context.Context, readErr chan error) error {
	select {
	case err := <-readErr:
		if err == nil {
			err = errors.New("reader stopped")
		}
		return fmt.Errorf("reader: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Microsecond):
		return nil
	}
}

// fanoutWorkload connects subs SSE subscribers to one stream, appends 20
// messages 100 ms apart and measures delivery to every subscriber.
func fanoutWorkload(subs int) func(context.Context, *env) error {
	return func(ctx context.Context, e *env) error {
		raiseFileLimit()
		subs = e.scaled(subs, 10)
		const path, msgs = "bench/fanout", 20
		if err := e.client.create(ctx, path, "text/plain"); err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		recv := make([][]time.Time, subs)
		var connected, complete atomic.Int64
		var wg sync.WaitGroup
		dial := make(chan struct{}, 128) // bounded connection ramp
		for s := range subs {
			recv[s] = make([]time.Time, msgs)
			wg.Go(func() {
				dial <- struct{}{}
				n := 0
				_ = e.client.followSSE(rctx, path, "-1", func(seq int) {
					if seq >= 0 && seq < msgs && recv[s][seq].IsZero() {
						recv[s][seq] = time.Now()
						if n++; n == msgs {
							complete.Add(1)
						}
					}
				}, func() { connected.Add(1); <-dial })
			})
		}
		ramp := time.Now()
		for connected.Load() < int64(subs) {
			if time.Since(ramp) > 2*time.Minute {
				return fmt.Errorf("only %d of %d subscribers connected", connected.Load(), subs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.report("connect_s", time.Since(ramp).Seconds(), "s")
		e.reportRSS("idle_")
		sent := make([]time.Time, msgs)
		for i := range msgs {
			sent[i] = time.Now()
			if err := e.client.appendData(ctx, path, "text/plain", []byte(strconv.Itoa(i)+";"), nil); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		deadline := time.Now().Add(30 * time.Second)
		for complete.Load() < int64(subs) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		e.reportRSS("live_")
		cancel()
		wg.Wait()
		var lat latencies
		for s := range subs {
			for i, t := range recv[s] {
				if !t.IsZero() {
					lat.add(t.Sub(sent[i]))
				}
			}
		}
		e.report("subscribers", float64(subs), "subs")
		e.report("delivered", float64(lat.count())/float64(subs*msgs)*100, "%")
		e.report("p50", lat.quantile(0.5), "ms")
		e.report("p99", lat.quantile(0.99), "ms")
		return nil
	}
}

// followLongPoll reads path from off with long-polls until ctx ends, calling
// deliver for every "<seq>;" it receives.
func (c *client) followLongPoll(ctx context.Context, path, off string, deliver func(int), _ func()) error {
	cursor := ""
	for ctx.Err() == nil {
		u := c.url(path) + "?offset=" + off + "&live=long-poll"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch resp.StatusCode {
		case http.StatusOK, http.StatusNoContent:
		default:
			return fmt.Errorf("long-poll: status %d: %s", resp.StatusCode, body)
		}
		splitSeqs(string(body), deliver)
		if next := resp.Header.Get("Stream-Next-Offset"); next != "" {
			off = next
		}
		cursor = resp.Header.Get("Stream-Cursor")
	}
	return nil
}

// followSSE reads path from off over one SSE connection until ctx ends.
// connected, if set, is called once the response headers arrived.
func (c *client) followSSE(ctx context.Context, path, off string, deliver func(int), connected func()) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path)+"?offset="+off+"&live=sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		if connected != nil {
			connected()
		}
		return err
	}
	defer resp.Body.Close()
	if connected != nil {
		connected()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sse: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	event, data := "", strings.Builder{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "data" || event == "" {
				splitSeqs(data.String(), deliver)
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

func splitSeqs(s string, deliver func(int)) {
	for _, f := range strings.Split(s, ";") {
		if f = strings.TrimSpace(f); f != "" {
			if n, err := strconv.Atoi(f); err == nil {
				deliver(n)
			}
		}
	}
}

// raiseFileLimit lifts the soft open-files limit to the hard one, for
// thousands of subscriber connections.
func raiseFileLimit() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}
