package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/sequencer"
)

// The benchmarks in this file drive the whole server in-process (HTTP
// client, echo, sequencer, hot log, cold tier) so that CPU profiles show
// where a request's time goes. Besides ns/op they report cpu-ns/op, the
// process CPU time (user+system, client included) per operation: on a
// shared machine wall time depends on the neighbours, CPU time much less.

// cpuMeter measures process CPU time and page faults between start and
// report. Page faults matter because every fresh large buffer costs one
// per 4 KiB page it is first written to.
type cpuMeter struct {
	cpu    time.Duration
	faults int64
}

func processUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

func (m *cpuMeter) start() { m.cpu, m.faults = processUsage() }

func (m *cpuMeter) report(b *testing.B, ops int) {
	if ops > 0 {
		cpu, faults := processUsage()
		b.ReportMetric(float64(cpu-m.cpu)/float64(ops), "cpu-ns/op")
		b.ReportMetric(float64(faults-m.faults)/float64(ops), "faults/op")
	}
}

// benchClient has enough idle connections per host for concurrent clients;
// http.DefaultClient keeps only two, so 64 clients would open and close a
// connection per request.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
}

func benchDo(b *testing.B, hc *http.Client, method, url, ctype string, body []byte, hdr ...string) *http.Response {
	b.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

func benchCreate(b *testing.B, hc *http.Client, url, ctype string) {
	b.Helper()
	resp := benchDo(b, hc, "PUT", url, ctype, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("create: status %d", resp.StatusCode)
	}
}

// benchSend sends a request with an application/octet-stream body from
// concurrent clients (b.RunParallel) and reads the answer; it reports
// (b.Error) and returns false when it fails or is not want.
func benchSend(b *testing.B, hc *http.Client, method, url string, body []byte, want int) bool {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := hc.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Errorf("%s: status %d, want %d", method, resp.StatusCode, want)
		return false
	}
	return true
}

// run64 measures op run by 64 concurrent clients on 2 CPUs, until b.N
// ops are done or one fails, with cpu-ns/op.
func run64(b *testing.B, op func() bool) {
	var m cpuMeter
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	m.start()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !op() {
				return
			}
		}
	})
	b.StopTimer()
	m.report(b, b.N)
}

// fill appends total bytes as messages of size bytes with 4 concurrent
// writers.
func fill(b *testing.B, hc *http.Client, url string, size int, total int64) {
	b.Helper()
	msg := bytes.Repeat([]byte("0123456789abcdef"), (size+15)/16)[:size]
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range 4 {
		wg.Go(func() {
			for next.Add(int64(size)) <= total {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(msg))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					failed.Store(fmt.Sprintf("append: status %d", resp.StatusCode))
					return
				}
			}
		})
	}
	wg.Wait()
	if v := failed.Load(); v != nil {
		b.Fatal(v)
	}
}

// readAll catches up on the whole stream at url chunk by chunk, discarding
// the bytes, and returns how many it read.
func readAll(b *testing.B, hc *http.Client, url string) int64 {
	b.Helper()
	var n int64
	off := "-1"
	for {
		resp := benchDo(b, hc, "GET", url+"?offset="+off, "", nil)
		m, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("read at %s: status %d, %v", off, resp.StatusCode, err)
		}
		n += m
		next := resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" || next == off {
			return n
		}
		off = next
	}
}

// waitUploaded waits until the rotator has uploaded at least n segments and
// has nothing queued.
func waitUploaded(b *testing.B, s *Server, n int64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := s.Rotator().Stats()
		if st.Uploaded >= n && st.Queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("uploads: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkCatchUp reads a whole stream from the start, as the bench
// program's read-hot and read-cold-cached workloads do (1 MiB messages,
// 4 MiB chunks), and also with small messages. SetBytes makes MB/s the
// catch-up throughput.
func BenchmarkCatchUp(b *testing.B) {
	cases := []struct {
		name  string
		size  int
		total int64
		chunk int
		cold  bool
	}{
		{"hot/1MiB", 1 << 20, 64 << 20, 4 << 20, false},
		{"hot/100B", 100, 4 << 20, 1 << 20, false},
		{"cold-cached/1MiB", 1 << 20, 64 << 20, 4 << 20, true},
		{"cold-cached/100B", 100, 4 << 20, 1 << 20, true},
	}
	for _, bc := range cases {
		bc.total -= bc.total % int64(bc.size)
		b.Run(bc.name, func(b *testing.B) {
			rot := sequencer.RotationPolicy{SealBytes: 1 << 40, SealAge: 24 * time.Hour}
			if bc.cold {
				rot.SealBytes = 16 << 20
				if bc.size < 1<<10 {
					rot.SealBytes = 1 << 20
				}
			}
			s, hs := startServer(b, Config{MaxReadChunk: bc.chunk, Rotation: rot, MaxAppendBytes: 8 << 20})
			hc := benchClient()
			url := hs.URL + "/v1/stream/catchup"
			benchCreate(b, hc, url, "application/octet-stream")
			fill(b, hc, url, bc.size, bc.total)
			if bc.cold {
				// All but the open segment's bytes come from the cold tier.
				waitUploaded(b, s, 1)
			}
			want := readAll(b, hc, url) // also fills the disk cache
			if want != bc.total {
				b.Fatalf("read %d bytes, want %d", want, bc.total)
			}
			var m cpuMeter
			b.SetBytes(bc.total)
			b.ReportAllocs()
			b.ResetTimer()
			m.start()
			for range b.N {
				// A new snapshot makes every pass read storage instead of
				// the results the API keeps for late arrivals.
				b.StopTimer()
				resp := benchDo(b, hc, "POST", url, "application/octet-stream", []byte("x"))
				resp.Body.Close()
				want++
				b.StartTimer()
				if n := readAll(b, hc, url); n != want {
					b.Fatalf("read %d bytes, want %d", n, want)
				}
			}
			b.StopTimer()
			m.report(b, b.N)
			if st := s.api.ReadStats(); st.CollapsedReads > 0 {
				b.Fatalf("%d of %d reads collapsed: not measuring storage", st.CollapsedReads, st.StorageReads)
			}
		})
	}
}

// BenchmarkAppendPath measures durable appends of 100 B: one client at a
// time (latency, one fsync each), 64 concurrent unbatched clients on one
// stream (group commit), and a binary producer sending batches of 1,000
// messages of 100 B (one 100 KB append each).
func BenchmarkAppendPath(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 100)
	b.Run("1x1", func(b *testing.B) {
		_, hs := startServer(b, Config{})
		hc := benchClient()
		url := hs.URL + "/v1/stream/a"
		benchCreate(b, hc, url, "application/octet-stream")
		var m cpuMeter
		b.ReportAllocs()
		b.ResetTimer()
		m.start()
		for range b.N {
			resp := benchDo(b, hc, "POST", url, "application/octet-stream", msg)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.StopTimer()
		m.report(b, b.N)
	})
	b.Run("1x64", func(b *testing.B) {
		_, hs := startServer(b, Config{})
		hc := benchClient()
		url := hs.URL + "/v1/stream/a"
		benchCreate(b, hc, url, "application/octet-stream")
		run64(b, func() bool { return benchSend(b, hc, "POST", url, msg, http.StatusNoContent) })
	})
	b.Run("producer-binary", func(b *testing.B) {
		const batch = 1000
		_, hs := startServer(b, Config{})
		hc := benchClient()
		url := hs.URL + "/v1/stream/p"
		benchCreate(b, hc, url, "application/octet-stream")
		body := bytes.Repeat(msg, batch)
		var (
			seq [4]atomic.Int64
			pid atomic.Int64
			m   cpuMeter
		)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.SetParallelism(2) // 4 producers on 2 CPUs, as the bench program
		b.ResetTimer()
		m.start()
		b.RunParallel(func(pb *testing.PB) {
			p := int(pid.Add(1)-1) % len(seq)
			for pb.Next() {
				s := seq[p].Add(1) - 1
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Producer-Id", fmt.Sprintf("bench-%d", p))
				req.Header.Set("Producer-Epoch", "0")
				req.Header.Set("Producer-Seq", fmt.Sprint(s))
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.StopTimer()
		m.report(b, b.N)
		b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkCreatePath measures what the bench program's create-64
// workload does: 64 concurrent clients, each creating a new stream and
// appending 100 B to it once per operation (two requests).
func BenchmarkCreatePath(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 100)
	_, hs := startServer(b, Config{})
	hc := benchClient()
	var n atomic.Int64
	run64(b, func() bool {
		url := fmt.Sprintf("%s/v1/stream/create-%d", hs.URL, n.Add(1))
		return benchSend(b, hc, "PUT", url, nil, http.StatusCreated) && benchSend(b, hc, "POST", url, msg, http.StatusNoContent)
	})
}

// BenchmarkLongPollWake measures the time from an append being acknowledged
// to a waiting long-poll reader receiving it.
func BenchmarkLongPollWake(b *testing.B) {
	_, hs := startServer(b, Config{LongPollTimeout: 10 * time.Second})
	hc := benchClient()
	url := hs.URL + "/v1/stream/lp"
	benchCreate(b, hc, url, "application/octet-stream")
	msg := []byte("x")
	ctx := context.Background()
	off := "-1"
	{
		resp := benchDo(b, hc, "GET", url+"?offset=now", "", nil)
		resp.Body.Close()
		off = resp.Header.Get("Stream-Next-Offset")
	}
	var lat []time.Duration
	var m cpuMeter
	b.ReportAllocs()
	b.ResetTimer()
	m.start()
	for range b.N {
		got := make(chan time.Time, 1)
		ready := make(chan struct{})
		var next string
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"?offset="+off+"&live=long-poll", nil)
			close(ready)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				got <- time.Time{}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			next = resp.Header.Get("Stream-Next-Offset")
			got <- time.Now()
		}()
		<-ready
		time.Sleep(2 * time.Millisecond) // let the reader start waiting
		resp := benchDo(b, hc, "POST", url, "application/octet-stream", msg)
		acked := time.Now()
		resp.Body.Close()
		at := <-got
		lat = append(lat, at.Sub(acked))
		off = next
	}
	b.StopTimer()
	m.report(b, b.N)
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "wake-p50-µs")
	}
}
