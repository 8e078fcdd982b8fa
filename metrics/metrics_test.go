package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
)

func TestLabels(t *testing.T) {
	methods := map[string]string{"GET": "GET", "PATCH": "PATCH", "BREW": "OTHER", "get": "OTHER", "": "OTHER"}
	for in, want := range methods {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
	codes := map[int]string{200: "200", 499: "499", 520: "520", 0: "other", 1000: "other"}
	for in, want := range codes {
		if got := codeLabel(in); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestRequests(t *testing.T) {
	m := New()
	m.StartRequest(LiveSSE)
	m.StartRequest(LiveNone)
	if v := testutil.ToFloat64(m.liveSSE); v != 1 {
		t.Errorf("sse readers %v", v)
	}
	if v := testutil.ToFloat64(m.inFlight); v != 2 {
		t.Errorf("in flight %v", v)
	}
	m.EndRequest(Request{Route: "/v1/stream/*", Method: "GET", Code: 200, Live: LiveSSE, Duration: time.Second})
	m.EndRequest(Request{Route: "", Method: "GET", Code: 404, Live: LiveNone, Duration: time.Millisecond})
	if v := testutil.ToFloat64(m.liveSSE) + testutil.ToFloat64(m.inFlight); v != 0 {
		t.Errorf("gauges not back to 0: %v", v)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues(RouteUnmatched, "GET", "404")); v != 1 {
		t.Errorf("unmatched requests %v", v)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
}

type fakeStreams sequencer.Stats

func (f fakeStreams) Stats() sequencer.Stats { return sequencer.Stats(f) }

type fakeRotation rotation.Stats

func (f fakeRotation) Stats() rotation.Stats { return rotation.Stats(f) }

func TestSources(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "01", "00"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, n int) {
		if err := os.WriteFile(filepath.Join(dir, "01", "00", name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1.db", 4096)
	write("1.db-wal", 100)

	now := time.Unix(10000, 0)
	st := sequencer.Stats{OpenStreams: 3, Appends: 7, AppendedMessages: 9, AppendedBytes: 100, Duplicates: 2,
		Commits: 4, CommitAppends: 7, StreamsCreated: 5, StreamsDeleted: 1}
	st.CommitSizes[0] = 2 // two commits of 1 append
	st.CommitSizes[2] = 1 // one of 3 or 4
	st.CommitSizes[sequencer.CommitSizeBuckets-1] = 1
	m := New()
	err := m.Watch(Sources{
		Streams:  fakeStreams(st),
		Rotation: fakeRotation(rotation.Stats{Queued: 2, OldestQueued: now.Add(-90 * time.Second), Uploaded: 4, UploadedBytes: 1000}),
		Reads:    func() ReadStats { return ReadStats{StorageReads: 10, CollapsedReads: 30} },
		HotDir:   dir,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(m.Handler())
	defer ts.Close()
	scrape := func() string {
		resp, err := http.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	body := scrape()
	for _, want := range []string{
		"durable_streams_open_streams 3\n",
		"durable_streams_appends_total 7\n",
		"durable_streams_appended_bytes_total 100\n",
		"durable_streams_producer_duplicates_total 2\n",
		`durable_streams_group_commit_appends_bucket{le="1"} 2` + "\n",
		`durable_streams_group_commit_appends_bucket{le="2"} 2` + "\n",
		`durable_streams_group_commit_appends_bucket{le="4"} 3` + "\n",
		`durable_streams_group_commit_appends_bucket{le="1024"} 3` + "\n",
		`durable_streams_group_commit_appends_bucket{le="+Inf"} 4` + "\n",
		"durable_streams_group_commit_appends_sum 7\n",
		"durable_streams_group_commit_appends_count 4\n",
		"durable_streams_rotation_queue_length 2\n",
		"durable_streams_rotation_lag_seconds 90\n",
		"durable_streams_rotation_uploaded_bytes_total 1000\n",
		"durable_streams_collapsed_reads_total 30\n",
		"durable_streams_hotlog_bytes 4196\n",
		"durable_streams_hotlog_files 2\n",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
	// The tree is measured at most once per interval.
	write("2.db", 1000)
	if body := scrape(); !strings.Contains(body, "durable_streams_hotlog_bytes 4196\n") {
		t.Error("hot dir walked again within the interval")
	}
	now = now.Add(time.Minute)
	if body := scrape(); !strings.Contains(body, "durable_streams_hotlog_bytes 5196\n") {
		t.Error("hot dir not measured again after the interval")
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.EndRequest(Request{Route: "/x", Method: "GET", Code: 200})
	if n := testutil.CollectAndCount(b.requests); n != 0 {
		t.Errorf("a request on one server shows in another's metrics (%d series)", n)
	}
}
