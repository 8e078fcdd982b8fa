package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/miniotest"
)

// TestObservabilityMinIO follows a cold-store outage through the
// operational endpoints of the real binary: /readyz turns degraded (200)
// while appends go on, the rotation metrics show the queue, lag and
// failures, and everything returns to normal when MinIO is back. Request
// ids reach the server's log.
func TestObservabilityMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("cold-tier e2e test skipped in -short mode")
	}
	mio := miniotest.Start(t)
	srv := StartServer(t, BuildServer(t), WithArgs(aggressiveRotation...), WithEnv(minioEnv(mio)...), WithLogLevel("info"))
	client := loopbackClient(30 * time.Second)
	url := srv.StreamURL("ops/outage")

	do := func(method, target, body string, hdr ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	readyz := func() (int, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep struct{ Status string }
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatalf("readyz: %v", err)
		}
		return resp.StatusCode, rep.Status
	}
	metrics := func() map[string]float64 {
		t.Helper()
		return scrapeMetrics(t, client, srv.URL)
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	chunk := strings.Repeat("x", 1024)
	appendSome := func(n int) {
		t.Helper()
		for range n {
			if resp := do(http.MethodPost, url, chunk); resp.StatusCode/100 != 2 {
				t.Fatalf("append: %s", resp.Status)
			}
		}
	}

	if resp := do(http.MethodPut, url, "", "X-Request-Id", "e2e-create-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	} else if got := resp.Header.Get("X-Request-Id"); got != "e2e-create-1" {
		t.Errorf("X-Request-Id %q", got)
	}
	appendSome(10) // seals at 4 KiB: two segments go to MinIO
	if code, status := readyz(); code != http.StatusOK || status != "ok" {
		t.Fatalf("readyz with MinIO up: %d %s", code, status)
	}
	waitFor("uploads", 30*time.Second, func() bool {
		m := metrics()
		return m["durable_streams_rotation_uploads_total"] >= 2 && m["durable_streams_rotation_queue_length"] == 0
	})
	if m := metrics(); m["durable_streams_rotation_uploaded_bytes_total"] < 8192 || m["durable_streams_appends_total"] != 10 {
		t.Errorf("uploaded bytes %v, appends %v", m["durable_streams_rotation_uploaded_bytes_total"], m["durable_streams_appends_total"])
	}
	if !srv.logContains(`"request_id":"e2e-create-1"`) {
		t.Errorf("request id not in the server log:\n%s", srv.logTail())
	}

	// MinIO down: degraded but appends still succeed; uploads queue up.
	mio.Stop()
	appendSome(10)
	waitFor("readyz degraded", 20*time.Second, func() bool {
		code, status := readyz()
		return code == http.StatusOK && status == "degraded"
	})
	waitFor("rotation lag and failures", 30*time.Second, func() bool {
		m := metrics()
		return m["durable_streams_rotation_queue_length"] >= 1 && m["durable_streams_rotation_lag_seconds"] > 0 &&
			m["durable_streams_rotation_failures_total"] >= 1
	})
	m := metrics()
	t.Logf("during the outage: queue %v, lag %.1f s, failures %v", m["durable_streams_rotation_queue_length"],
		m["durable_streams_rotation_lag_seconds"], m["durable_streams_rotation_failures_total"])

	// MinIO back: ready again and the queue drains (retries back off up
	// to 30 s).
	mio.Restart(t)
	waitFor("readyz ok", 20*time.Second, func() bool {
		_, status := readyz()
		return status == "ok"
	})
	waitFor("queue drained", 60*time.Second, func() bool {
		m := metrics()
		return m["durable_streams_rotation_queue_length"] == 0 && m["durable_streams_rotation_lag_seconds"] == 0
	})
}
