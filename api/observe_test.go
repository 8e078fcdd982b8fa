package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/proctest"
	"github.com/streamtier/durable-streams/internal/servertest"
	"github.com/streamtier/durable-streams/server"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct{ proctest.Output }

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type observed struct {
	srv  *server.Server
	url  string
	logs *syncBuffer
}

// startObserved runs a server logging JSON at level into a buffer.
func startObserved(t *testing.T, level slog.Level, mod func(*server.Config)) *observed {
	t.Helper()
	logs := &syncBuffer{}
	cfg := server.Config{
		DataDir:         t.TempDir(),
		LongPollTimeout: 200 * time.Millisecond,
		SSEMaxDuration:  2 * time.Second,
		Logger:          slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level})),
	}
	if mod != nil {
		mod(&cfg)
	}
	// Some tests close the catalog themselves.
	srv, ts := servertest.Start(t, cfg, servertest.IgnoreCloseError())
	return &observed{srv: srv, url: ts.URL, logs: logs}
}

// do sends a request and returns the response with its body read.
func (o *observed) do(t *testing.T, method, path string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, o.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// scrape returns the samples of /metrics keyed by "name{labels}" as
// exposed (labels sorted by name).
func (o *observed) scrape(t *testing.T, hdr map[string]string) map[string]float64 {
	t.Helper()
	resp, body := o.do(t, http.MethodGet, "/metrics", hdr, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// labelValues returns the distinct values of label among the samples of
// metric.
func labelValues(samples map[string]float64, metric, label string) map[string]bool {
	re := regexp.MustCompile(label + `="([^"]*)"`)
	vals := map[string]bool{}
	for k := range samples {
		if !strings.HasPrefix(k, metric+"{") {
			continue
		}
		if m := re.FindStringSubmatch(k); m != nil {
			vals[m[1]] = true
		}
	}
	return vals
}

func TestMetricsAfterTraffic(t *testing.T) {
	o := startObserved(t, slog.LevelInfo, func(c *server.Config) { c.LongPollTimeout = 5 * time.Second })
	text := map[string]string{"Content-Type": "text/plain"}
	if resp, body := o.do(t, http.MethodPut, "/v1/stream/m/a", text, ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	for i := range 3 {
		if resp, body := o.do(t, http.MethodPost, "/v1/stream/m/a", text, fmt.Sprintf("msg-%d", i)); resp.StatusCode/100 != 2 {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
	}
	// A producer retry is answered as a duplicate.
	prod := map[string]string{"Content-Type": "text/plain", "Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "0"}
	for range 2 {
		if resp, body := o.do(t, http.MethodPost, "/v1/stream/m/a", prod, "once"); resp.StatusCode/100 != 2 {
			t.Fatalf("producer POST: %d %s", resp.StatusCode, body)
		}
	}
	resp, _ := o.do(t, http.MethodGet, "/v1/stream/m/a?offset=-1", nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("catch-up read: %d", resp.StatusCode)
	}
	tail := resp.Header.Get("Stream-Next-Offset")

	// A long-poll at the tail waits; while it does, it is a live reader.
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(o.url + "/v1/stream/m/a?live=long-poll&offset=" + tail)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for o.scrape(t, nil)[`durable_streams_live_readers{mode="long-poll"}`] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiting long-poll never showed in durable_streams_live_readers")
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.do(t, http.MethodPost, "/v1/stream/m/a", text, "wake")
	if code := <-done; code != http.StatusOK {
		t.Fatalf("long-poll: %d", code)
	}

	m := o.scrape(t, nil)
	want := map[string]float64{
		`durable_streams_http_requests_total{code="201",method="PUT",route="/v1/stream/*"}`:                       1,
		`durable_streams_http_requests_total{code="200",method="GET",route="/v1/stream/*"}`:                       2,
		`durable_streams_http_request_duration_seconds_count{live="long-poll",method="GET",route="/v1/stream/*"}`: 1,
		`durable_streams_http_request_duration_seconds_count{live="none",method="GET",route="/v1/stream/*"}`:      1,
		`durable_streams_live_readers{mode="long-poll"}`:                                                          0,
		`durable_streams_appends_total`:                       5, // 3 + the producer's first + wake
		`durable_streams_appended_messages_total`:             5,
		`durable_streams_appended_bytes_total`:                float64(3*len("msg-0") + len("once") + len("wake")),
		`durable_streams_producer_duplicates_total`:           1,
		`durable_streams_streams_created_total`:               1,
		`durable_streams_streams_deleted_total`:               0,
		`durable_streams_open_streams`:                        1,
		`durable_streams_group_commit_appends_count`:          5,
		`durable_streams_group_commit_appends_sum`:            5,
		`durable_streams_group_commit_appends_bucket{le="1"}`: 5,
		`durable_streams_rotation_queue_length`:               0,
		`durable_streams_rotation_lag_seconds`:                0,
		`durable_streams_rotation_uploads_total`:              0,
		`durable_streams_rotation_failures_total`:             0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("missing series %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	// Present, value depending on timing or the platform.
	for _, k := range []string{
		`durable_streams_http_requests_in_flight`, // this scrape
		`durable_streams_hotlog_bytes`, `durable_streams_hotlog_files`,
		`durable_streams_rotation_uploaded_bytes_total`,
		`durable_streams_cold_cache_hits_total`, `durable_streams_cold_cache_misses_total`,
		`durable_streams_storage_reads_total`, `durable_streams_collapsed_reads_total`, `durable_streams_live_waiters`,
		`go_goroutines`,
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing series %s", k)
		}
	}
	// hotlog_bytes may still be 0: a new stream's hot log file is written
	// after its appends are acknowledged (write-behind, docs/journal.md).
	if m[`durable_streams_hotlog_bytes`] < 0 || m[`durable_streams_storage_reads_total`] < 1 {
		t.Errorf("hotlog_bytes = %v, storage_reads_total = %v; want >= 0 and > 0",
			m[`durable_streams_hotlog_bytes`], m[`durable_streams_storage_reads_total`])
	}
}

// TestMetricsRouteLabelsBounded checks that request paths never become
// label values: a hundred streams and a hundred unknown paths add no
// series beyond their route templates.
func TestMetricsRouteLabelsBounded(t *testing.T) {
	o := startObserved(t, slog.LevelWarn, nil)
	for i := range 100 {
		o.do(t, http.MethodGet, fmt.Sprintf("/v1/stream/many/%d", i), nil, "")
		if i%10 == 0 { // creating streams costs fsyncs: a few suffice
			o.do(t, http.MethodPut, fmt.Sprintf("/v1/stream/many/%d", i), nil, "")
		}
		o.do(t, http.MethodGet, fmt.Sprintf("/no/such/route/%d", i), nil, "")
		o.do(t, fmt.Sprintf("BREW%d", i), "/v1/stream/x", nil, "")
	}
	m := o.scrape(t, nil)
	routes := labelValues(m, "durable_streams_http_requests_total", "route")
	for r := range routes {
		switch r {
		case "/v1/stream/*", "/metrics", "unmatched":
		default:
			t.Errorf("unexpected route label %q", r)
		}
	}
	if methods := labelValues(m, "durable_streams_http_requests_total", "method"); len(methods) > 4 {
		t.Errorf("method labels %v: arbitrary methods must map to OTHER", methods)
	}
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "durable_streams_http_requests_total{") {
			n++
		}
	}
	if n > 10 {
		t.Errorf("%d series of durable_streams_http_requests_total after hundreds of requests to distinct paths", n)
	}
}

func TestRequestIDs(t *testing.T) {
	o := startObserved(t, slog.LevelInfo, nil)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name, sent string
		keep       bool
		status     int // of GET /v1/stream/missing
	}{
		{"none", "", false, 404},
		{"uuid", "0f8fad5b-d9cb-469f-a165-70867728950e", true, 404},
		{"trace", "Root=1-67891233-abcdef012345678912345678", true, 404},
		{"too long", strings.Repeat("a", 129), false, 400}, // refused, logged under a generated id
		{"spaces", "hello world", false, 404},
		{"quote", `a"b`, false, 404},
		{"non-ascii", "ïd", false, 404},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.sent != "" {
				hdr["X-Request-Id"] = tc.sent
			}
			resp, _ := o.do(t, http.MethodGet, "/v1/stream/missing", hdr, "")
			got := resp.Header.Get("X-Request-Id")
			switch {
			case tc.keep && got != tc.sent:
				t.Errorf("X-Request-Id = %q, want the client's %q", got, tc.sent)
			case !tc.keep && !hexID.MatchString(got):
				t.Errorf("X-Request-Id = %q, want a generated id", got)
			case seen[got]:
				t.Errorf("id %q given twice", got)
			}
			seen[got] = true
			found := false
			for _, l := range o.logs.lines(t) {
				if l["msg"] == "request" && l["request_id"] == got {
					found = true
					if l["route"] != "/v1/stream/*" || l["path"] != "/v1/stream/missing" || l["status"] != float64(tc.status) || l["method"] != "GET" {
						t.Errorf("request line %v", l)
					}
					for _, k := range []string{"bytes", "duration_ms"} {
						if _, ok := l[k]; !ok {
							t.Errorf("request line without %s: %v", k, l)
						}
					}
				}
			}
			if !found {
				t.Errorf("no request line with request_id %q in\n%s", got, o.logs)
			}
		})
	}
	// Browsers may send the id and read it back.
	resp, _ := o.do(t, http.MethodOptions, "/v1/stream/x", map[string]string{"Origin": "https://app.example",
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-request-id"}, "")
	for _, h := range []string{"Access-Control-Allow-Headers", "Access-Control-Expose-Headers"} {
		if !strings.Contains(resp.Header.Get(h), "X-Request-Id") {
			t.Errorf("%s %q lacks X-Request-Id", h, resp.Header.Get(h))
		}
	}
}

// TestRequestLogLevels checks that probes and scrapes are logged at Debug
// only, and that a failing request's error line carries its request id.
func TestRequestLogLevels(t *testing.T) {
	o := startObserved(t, slog.LevelInfo, nil)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		o.do(t, http.MethodGet, p, nil, "")
	}
	for _, l := range o.logs.lines(t) {
		if l["msg"] == "request" {
			t.Errorf("probe logged at Info: %v", l)
		}
	}
	// A broken catalog makes stream requests fail with 500.
	if err := o.srv.Catalog().Close(); err != nil {
		t.Fatal(err)
	}
	resp, _ := o.do(t, http.MethodGet, "/v1/stream/x", map[string]string{"X-Request-Id": "req-500"}, "")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	var failed, logged bool
	for _, l := range o.logs.lines(t) {
		switch {
		case l["msg"] == "request failed" && l["request_id"] == "req-500":
			failed = true
		case l["msg"] == "request" && l["request_id"] == "req-500" && l["status"] == float64(500):
			logged = true
		}
	}
	if !failed || !logged {
		t.Errorf("want an error line and a request line with request_id req-500 (got %v, %v) in\n%s", failed, logged, o.logs)
	}

	debug := startObserved(t, slog.LevelDebug, nil)
	debug.do(t, http.MethodGet, "/healthz", nil, "")
	if !strings.Contains(debug.logs.String(), `"route":"/healthz"`) {
		t.Errorf("no Debug line for /healthz in\n%s", debug.logs)
	}
}

func TestTokensNotLogged(t *testing.T) {
	const secret = "s3cret-admin-token-value"
	o := startObserved(t, slog.LevelDebug, func(c *server.Config) { c.AdminToken = secret })
	bearer := map[string]string{"Authorization": "Bearer " + secret}
	if resp, body := o.do(t, http.MethodGet, "/metrics", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d %s, want 401", resp.StatusCode, body)
	}
	o.scrape(t, bearer)
	o.do(t, http.MethodGet, "/v1/admin/stats", bearer, "")
	o.do(t, http.MethodGet, "/v1/stream/x?offset=-1&token="+secret+"&access_token="+secret, bearer, "")
	o.do(t, http.MethodGet, "/v1/stream/x?token="+secret, map[string]string{"Authorization": "Bearer wrong-" + secret}, "")
	logs := o.logs.String()
	if strings.Contains(logs, secret) {
		t.Errorf("the token shows in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, `"route":"/metrics"`) || !strings.Contains(logs, `"status":401`) {
		t.Errorf("requests not logged:\n%s", logs)
	}
}

// flakyStore is a cold store whose probe fails on demand and counts calls.
type flakyStore struct {
	coldstore.Store
	down   atomic.Bool
	probes atomic.Int64
}

func (s *flakyStore) Probe(ctx context.Context) error {
	s.probes.Add(1)
	if s.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

func TestReadyz(t *testing.T) {
	type report struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	start := func(down bool) (*observed, *flakyStore) {
		local, err := coldstore.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		store := &flakyStore{Store: local}
		store.down.Store(down)
		return startObserved(t, slog.LevelWarn, func(c *server.Config) { c.Store = store }), store
	}
	readyz := func(o *observed) (int, report) {
		t.Helper()
		resp, body := o.do(t, http.MethodGet, "/readyz", nil, "")
		var r report
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("readyz body %q: %v", body, err)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("readyz Cache-Control %q", cc)
		}
		return resp.StatusCode, r
	}

	healthy, _ := start(false)
	code, r := readyz(healthy)
	if code != http.StatusOK || r.Status != "ok" || r.Checks["catalog"] != "ok" || r.Checks["coldstore"] != "ok" {
		t.Fatalf("healthy: %d %+v", code, r)
	}
	if resp, _ := healthy.do(t, http.MethodGet, "/healthz", nil, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}

	// With the cold store down the server is degraded but still serves:
	// appends go on, rotation retries later.
	o, store := start(true)
	code, r = readyz(o)
	if code != http.StatusOK || r.Status != "degraded" || r.Checks["catalog"] != "ok" ||
		!strings.HasPrefix(r.Checks["coldstore"], "unreachable: ") || !strings.Contains(r.Checks["coldstore"], "connection refused") {
		t.Fatalf("cold store down: %d %+v", code, r)
	}
	// A flood of probes within the cache period reaches the store once.
	before := store.probes.Load()
	for range 20 {
		if code, r := readyz(o); r.Status != "degraded" {
			t.Fatalf("cached: %d %+v", code, r)
		}
	}
	if n := store.probes.Load() - before; n != 0 {
		t.Errorf("%d cold-store probes for 20 cached readyz calls", n)
	}
	if resp, body := o.do(t, http.MethodPut, "/v1/stream/degraded", nil, ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT while degraded: %d %s", resp.StatusCode, body)
	}

	// Without its catalog the server is unavailable.
	if err := o.srv.Catalog().Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the catalog result is cached for 1 s
	code, r = readyz(o)
	if code != http.StatusServiceUnavailable || r.Status != "unavailable" || !strings.HasPrefix(r.Checks["catalog"], "unreachable: ") {
		t.Fatalf("catalog closed: %d %+v", code, r)
	}
}
