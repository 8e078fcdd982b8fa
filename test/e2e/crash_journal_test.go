package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// TestCrashDurabilityManyStreams is TestCrashDurability over 64 streams
// sharing the commit journal: 32 streams with a plain writer each and 32
// with an idempotent producer each. The server is SIGKILLed several times
// in a row while they write, some of the kills landing while it recovers
// (replaying the journal) and, with checkpoints made very frequent, some
// during a checkpoint. After every restart the producers retry what was in
// flight; at the end every acknowledged append must be readable exactly
// once and in order, producer retries deduplicated, and the segment index
// verified clean.
func TestCrashDurabilityManyStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	bin := BuildServer(t)
	srv := StartServer(t, bin, WithArgs(
		"--journal-checkpoint-bytes", "262144", // a checkpoint every few thousand appends
		"--journal-checkpoint-age", "100ms",
		"--seal-bytes", "65536", // and segments sealed and uploaded meanwhile
	))
	const plain, producers, rounds = 32, 32, 4
	url := func(i int) string { return srv.StreamURL(fmt.Sprintf("crash64/s-%02d", i)) }
	for i := range plain + producers {
		mustStatus(t, do(t, http.MethodPut, url(i), nil, "text/plain"), http.StatusCreated)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	plainAcked := make([][]int, plain) // per plain stream: indexes acknowledged
	plainNext := make([]int, plain)    // per plain stream: next index to write
	prodAcked := make([]int, producers)
	prodInFlight := make([]int, producers)
	for p := range producers {
		prodAcked[p], prodInFlight[p] = -1, -1
	}
	rng := rand.New(rand.NewPCG(64, uint64(time.Now().UnixNano())))
	recoveryKills := 0
	for round := range rounds {
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range plain {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := plainNext[w]
					plainNext[w]++
					st, err := post(ctx, client, url(w), fmt.Sprintf("p0-%d\n", i), nil)
					if err != nil {
						return // the server died: this append's fate is unknown
					}
					if st/100 != 2 {
						t.Errorf("round %d stream %d append %d: status %d", round, w, i, st)
						return
					}
					plainAcked[w] = append(plainAcked[w], i)
				}
			})
		}
		for p := range producers {
			wg.Go(func() {
				for seq := prodAcked[p] + 1; ctx.Err() == nil; seq++ {
					prodInFlight[p] = seq
					st, err := post(ctx, client, url(plain+p), fmt.Sprintf("q0-%d\n", seq), producerHeaders(p, seq))
					if err != nil {
						return
					}
					if st != http.StatusOK {
						t.Errorf("round %d producer %d seq %d: status %d", round, p, seq, st)
						return
					}
					prodAcked[p], prodInFlight[p] = seq, -1
				}
			})
		}
		time.Sleep(time.Duration(400+rng.IntN(1200)) * time.Millisecond)
		srv.Kill()
		stop()
		wg.Wait()
		if t.Failed() {
			return
		}
		// Kill some starts again while they recover.
		for range rng.IntN(3) {
			killDuringStart(t, srv, time.Duration(20+rng.IntN(300))*time.Millisecond)
			recoveryKills++
		}
		srv.Restart(t)
		// Retry whatever was in flight: a duplicate (204) if it had
		// committed, else a fresh 200.
		for p := range producers {
			if seq := prodInFlight[p]; seq >= 0 {
				st, err := post(context.Background(), client, url(plain+p), fmt.Sprintf("q0-%d\n", seq), producerHeaders(p, seq))
				if err != nil || (st != http.StatusOK && st != http.StatusNoContent) {
					t.Fatalf("round %d producer %d retry of seq %d: status %d err %v", round, p, seq, st, err)
				}
				prodAcked[p], prodInFlight[p] = seq, -1
			}
		}
	}

	total, stored := 0, 0
	for w := range plain {
		lines := readAllLines(t, url(w))
		checkPlain(t, lines, [][]int{plainAcked[w]})
		total += len(plainAcked[w])
		stored += len(lines)
	}
	prodLines := 0
	for p := range producers {
		lines := readAllLines(t, url(plain+p))
		checkProducers(t, lines, []int{prodAcked[p]})
		prodLines += len(lines)
	}
	verifySegments(t, srv)
	msg := fmt.Sprintf("CRASH 64 streams: kills-writing=%d kills-recovering=%d plain-acknowledged=%d plain-stored=%d producer-appends=%d (every acknowledged append once, in order)",
		rounds, recoveryKills, total, stored, prodLines)
	t.Log(msg)
	Summary(msg)
}

// killDuringStart starts the server on srv's data directory and SIGKILLs
// it after d, ready or not (a crash during recovery).
func killDuringStart(t *testing.T, srv *Server, d time.Duration) {
	t.Helper()
	args := append([]string{"serve", "--addr", srv.Addr, "--data-dir", srv.DataDir,
		"--long-poll-timeout", srv.cfg.longPollTimeout.String(), "--log-level", srv.cfg.logLevel}, srv.cfg.args...)
	cmd := exec.Command(srv.bin, args...)
	cmd.Env = append(serverEnv(), srv.cfg.env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	killProcess(cmd)
	_ = cmd.Wait()
}

// verifySegments runs the admin verification of the segment index against
// the cold store and fails unless it is clean.
func verifySegments(t *testing.T, srv *Server) {
	t.Helper()
	resp := do(t, http.MethodPost, srv.URL+"/v1/admin/verify", nil, "")
	defer resp.Body.Close()
	var rep struct {
		Clean bool `json:"clean"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Clean {
		t.Error("segments verify: not clean")
	}
}
