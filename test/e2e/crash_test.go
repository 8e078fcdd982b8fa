package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashDurability kills the server with SIGKILL while plain appenders
// and idempotent producers are writing, restarts it on the same data
// directory, and checks the durability promise: every append that got a
// 2xx is readable exactly once and in per-writer order, and producer
// retries of requests that were in flight at the crash are deduplicated.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	bin := BuildServer(t)
	srv := StartServer(t, bin)
	const (
		plainWriters = 8
		producers    = 4
	)
	plainURL := srv.StreamURL("crash/plain")
	prodURL := srv.StreamURL("crash/producers")
	for _, u := range []string{plainURL, prodURL} {
		mustStatus(t, do(t, http.MethodPut, u, nil, "text/plain"), http.StatusCreated)
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	plainAcked := make([][]int, plainWriters)
	for w := range plainWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				st, err := post(ctx, client, plainURL, fmt.Sprintf("p%d-%d\n", w, i), nil)
				if err != nil {
					return // the server died: this append's fate is unknown
				}
				if st/100 != 2 {
					t.Errorf("plain writer %d append %d: status %d", w, i, st)
					return
				}
				plainAcked[w] = append(plainAcked[w], i)
			}
		}()
	}
	// Per producer: the last acknowledged seq and the seq in flight when the
	// server died (-1 if none).
	prodAcked := make([]int, producers)
	prodInFlight := make([]int, producers)
	for p := range producers {
		prodAcked[p], prodInFlight[p] = -1, -1
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				prodInFlight[p] = seq
				st, err := post(ctx, client, prodURL, fmt.Sprintf("q%d-%d\n", p, seq), producerHeaders(p, seq))
				if err != nil {
					return
				}
				if st != http.StatusOK {
					t.Errorf("producer %d seq %d: status %d", p, seq, st)
					return
				}
				prodAcked[p], prodInFlight[p] = seq, -1
			}
		}()
	}

	time.Sleep(1500 * time.Millisecond)
	srv.Kill()
	stop()
	wg.Wait()
	if t.Failed() {
		return
	}
	srv.Restart(t)

	// Retry whatever was in flight, then append one more per producer: the
	// retry must be a duplicate (204) if it had committed, else a fresh 200.
	retried := make([]bool, producers)
	for p := range producers {
		if seq := prodInFlight[p]; seq >= 0 {
			st, err := post(context.Background(), client, prodURL, fmt.Sprintf("q%d-%d\n", p, seq), producerHeaders(p, seq))
			if err != nil || (st != http.StatusOK && st != http.StatusNoContent) {
				t.Fatalf("producer %d retry of seq %d after restart: status %d err %v", p, seq, st, err)
			}
			prodAcked[p], retried[p] = seq, true
		}
		next := prodAcked[p] + 1
		st, err := post(context.Background(), client, prodURL, fmt.Sprintf("q%d-%d\n", p, next), producerHeaders(p, next))
		if err != nil || st != http.StatusOK {
			t.Fatalf("producer %d seq %d after restart: status %d err %v", p, next, st, err)
		}
		prodAcked[p] = next
	}

	plainLines := readAllLines(t, plainURL)
	checkPlain(t, plainLines, plainAcked)
	prodLines := readAllLines(t, prodURL)
	checkProducers(t, prodLines, prodAcked)
	total := 0
	for _, a := range plainAcked {
		total += len(a)
	}
	msg := fmt.Sprintf("CRASH one stream: plain-acknowledged=%d plain-stored=%d producer-lines=%d producer-retries-after-restart=%d",
		total, len(plainLines), len(prodLines), count(retried))
	t.Log(msg)
	Summary(msg)
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func producerHeaders(p, seq int) map[string]string {
	return map[string]string{"Producer-Id": fmt.Sprintf("crash-producer-%d", p), "Producer-Epoch": "0", "Producer-Seq": strconv.Itoa(seq)}
}

func post(ctx context.Context, c *http.Client, url, body string, hdr map[string]string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/plain")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func do(t *testing.T, method, url string, body []byte, ct string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func mustStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, b)
	}
}

// readAllLines reads a text stream from the start with catch-up requests
// until it is up to date.
func readAllLines(t *testing.T, url string) []string {
	t.Helper()
	var all bytes.Buffer
	next := "-1"
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("read did not reach the tail")
		}
		resp, err := http.Get(url + "?offset=" + next)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read %s at %s: status %d: %s", url, next, resp.StatusCode, b)
		}
		all.Write(b)
		next = resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" {
			break
		}
	}
	s := strings.TrimSuffix(all.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// checkPlain verifies each acknowledged plain append appears exactly once
// and that each writer's appends appear in the order they were made.
func checkPlain(t *testing.T, lines []string, acked [][]int) {
	t.Helper()
	seen := map[string]int{}
	last := make([]int, len(acked))
	for i := range last {
		last[i] = -1
	}
	for _, l := range lines {
		seen[l]++
		var w, i int
		if _, err := fmt.Sscanf(l, "p%d-%d", &w, &i); err != nil || w < 0 || w >= len(acked) {
			t.Fatalf("unexpected line %q", l)
		}
		if i <= last[w] {
			t.Errorf("writer %d: message %d after %d (order broken)", w, i, last[w])
		}
		last[w] = i
	}
	for l, n := range seen {
		if n > 1 {
			t.Errorf("line %q stored %d times", l, n)
		}
	}
	for w, a := range acked {
		for _, i := range a {
			if seen[fmt.Sprintf("p%d-%d", w, i)] != 1 {
				t.Errorf("acknowledged append p%d-%d is missing", w, i)
			}
		}
	}
}

// checkProducers verifies every producer's seqs 0..acked appear exactly
// once, in order, and nothing beyond.
func checkProducers(t *testing.T, lines []string, acked []int) {
	t.Helper()
	next := make([]int, len(acked))
	for _, l := range lines {
		var p, seq int
		if _, err := fmt.Sscanf(l, "q%d-%d", &p, &seq); err != nil || p < 0 || p >= len(acked) {
			t.Fatalf("unexpected line %q", l)
		}
		if seq != next[p] {
			t.Fatalf("producer %d: got seq %d, want %d (duplicate or gap)", p, seq, next[p])
		}
		next[p]++
	}
	for p, a := range acked {
		if next[p] != a+1 {
			t.Errorf("producer %d: %d seqs stored, want %d", p, next[p], a+1)
		}
	}
}
