package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/faultstore"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

// faultEnv is a server over a fault-injecting local cold store, serving
// HTTP, with one text stream "s".
type faultEnv struct {
	dir    string
	verify rotation.VerifyMode
	stop   func() // closes srv, hs and h

	srv   *server.Server
	fs    *faultstore.Store
	local *coldstore.Local
	hs    *httptest.Server
	h     *sequencer.Handle
	want  bytes.Buffer // every acknowledged byte, in order
}

func newFaultEnv(t *testing.T, verify rotation.VerifyMode, seed uint64) *faultEnv {
	t.Helper()
	local, err := coldstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{dir: t.TempDir(), verify: verify, fs: faultstore.New(local, seed), local: local}
	e.open(t)
	// Cleanups run last-in first-out: heal first so that no upload blocked
	// in the store holds up Close.
	t.Cleanup(func() { e.stop() })
	t.Cleanup(e.fs.Heal)
	ct, _ := protocol.ParseContentType("text/plain")
	res, err := e.srv.Registry().Create(t.Context(), &sequencer.CreateRequest{Path: "s", ContentType: &ct})
	if err != nil {
		t.Fatal(err)
	}
	res.Handle.Release()
	e.acquire(t)
	return e
}

// open starts the server on e.dir.
func (e *faultEnv) open(t *testing.T) {
	t.Helper()
	var err error
	e.srv, err = server.New(t.Context(), server.Config{
		DataDir:  e.dir,
		Store:    e.fs,
		Verify:   e.verify,
		Rotation: sequencer.RotationPolicy{SealMessages: 4},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.hs = httptest.NewServer(e.srv.Handler())
	e.stop = func() {
		if e.h != nil {
			e.h.Release()
			e.h = nil
		}
		e.hs.Close()
		e.srv.Close(context.Background())
	}
}

func (e *faultEnv) acquire(t *testing.T) {
	t.Helper()
	h, err := e.srv.Registry().Acquire(t.Context(), "s", false)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
}

// restart closes the server and opens it again on the same data and store,
// so that the in-memory tail cache and the on-disk cold cache start empty.
func (e *faultEnv) restart(t *testing.T) {
	t.Helper()
	e.stop()
	e.open(t)
	e.acquire(t)
}

// appendN appends n messages and records them as acknowledged.
func (e *faultEnv) appendN(t *testing.T, n int) {
	t.Helper()
	ct, _ := protocol.ParseContentType("text/plain")
	for range n {
		m := fmt.Sprintf("message-%04d;", e.want.Len()/13)
		if _, err := e.h.Append(t.Context(), &sequencer.AppendRequest{ContentType: ct, Messages: [][]byte{[]byte(m)}}); err != nil {
			t.Fatal(err)
		}
		e.want.WriteString(m)
	}
}

// readAll reads the whole stream over HTTP, following Stream-Next-Offset.
// It fails the test on wrong bytes, and returns the first error answer
// (status and JSON error code) instead of the body if there is one.
func (e *faultEnv) readAll(t *testing.T) (status int, code string) {
	t.Helper()
	var got bytes.Buffer
	off := "-1"
	for range 1000 {
		resp, err := http.Get(e.hs.URL + "/v1/stream/s?offset=" + off)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			var je struct{ Error, Message string }
			if err := json.Unmarshal(body, &je); err != nil || je.Error == "" || je.Message == "" {
				t.Errorf("status %d with a body that is no JSON error: %q", resp.StatusCode, body)
			}
			return resp.StatusCode, je.Error
		}
		got.Write(body)
		if !bytes.HasPrefix(e.want.Bytes(), got.Bytes()) {
			t.Fatalf("read wrong bytes: got %q, want a prefix of %q", got.Bytes(), e.want.Bytes())
		}
		if resp.Header.Get(protocol.HeaderStreamUpToDate) == "true" {
			if got.Len() != e.want.Len() {
				t.Fatalf("up to date after %d bytes, want %d", got.Len(), e.want.Len())
			}
			return http.StatusOK, ""
		}
		off = resp.Header.Get(protocol.HeaderStreamNextOffset)
	}
	t.Fatal("read did not reach the tail")
	return 0, ""
}

func (e *faultEnv) hotRows(t *testing.T) int64 {
	t.Helper()
	st, release, err := e.srv.Registry().AcquireID(t.Context(), e.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	hs, err := st.HotStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return hs.Rows
}

// TestBadUploadsAreNotTrimmed makes every upload fail in one way and checks
// that the hot log keeps every row until the store is healed, and that the
// retried uploads then succeed and are trimmed.
func TestBadUploadsAreNotTrimmed(t *testing.T) {
	tests := []struct {
		name   string
		op     faultstore.Op
		fault  faultstore.Fault
		verify rotation.VerifyMode
	}{
		{"put unavailable", faultstore.OpPut, faultstore.Unavailable, rotation.VerifyFull},
		{"put truncated, size verify", faultstore.OpPut, faultstore.Truncate, rotation.VerifySize},
		{"put truncated", faultstore.OpPut, faultstore.Truncate, rotation.VerifyFull},
		{"put corrupt", faultstore.OpPut, faultstore.Corrupt, rotation.VerifyFull},
		{"verify read truncated", faultstore.OpGet, faultstore.Truncate, rotation.VerifyFull},
		{"verify read corrupt", faultstore.OpGet, faultstore.Corrupt, rotation.VerifyFull},
		{"head unavailable", faultstore.OpHead, faultstore.Unavailable, rotation.VerifyFull},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultEnv(t, tt.verify, uint64(i))
			e.fs.Set(tt.op, faultstore.Plan{Rates: map[faultstore.Fault]float64{tt.fault: 1}})
			e.appendN(t, 10) // two sealed segments and an open one
			waitFor(t, func() bool { return e.srv.Rotator().Stats().Failures >= 3 })
			if st := e.srv.Rotator().Stats(); st.Uploaded != 0 {
				t.Fatalf("%d uploads counted as done while every upload is bad", st.Uploaded)
			}
			if n := e.hotRows(t); n != 10 {
				t.Fatalf("hot rows = %d while no upload is verified, want 10", n)
			}
			if status, code := e.readAll(t); status != http.StatusOK {
				t.Fatalf("read during failing uploads: %d %s", status, code)
			}
			e.fs.Heal()
			waitFor(t, func() bool { return e.srv.Rotator().Stats().Uploaded >= 2 })
			waitFor(t, func() bool { return e.hotRows(t) == 2 })
			if status, code := e.readAll(t); status != http.StatusOK {
				t.Fatalf("read after healing: %d %s", status, code)
			}
			res, err := e.srv.Admin().Verify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !res.Clean {
				t.Errorf("admin verify after healing is not clean: %+v", res)
			}
		})
	}
}

// TestFlakyUploadsEventuallySucceed mixes every fault at random into the
// store's writes and verification reads; uploads must still all succeed.
func TestFlakyUploadsEventuallySucceed(t *testing.T) {
	e := newFaultEnv(t, rotation.VerifyFull, 42)
	// Rates low enough that the uploader's backoff, which doubles with
	// every failure in a row, stays short.
	rates := map[faultstore.Fault]float64{faultstore.Unavailable: 0.1, faultstore.Truncate: 0.05, faultstore.Corrupt: 0.05}
	e.fs.Set(faultstore.OpPut, faultstore.Plan{Rates: rates})
	e.fs.Set(faultstore.OpGet, faultstore.Plan{Rates: rates})
	e.fs.Set(faultstore.OpHead, faultstore.Plan{Rates: map[faultstore.Fault]float64{faultstore.Unavailable: 0.1}})
	e.appendN(t, 24) // six segments
	waitFor(t, func() bool { return e.srv.Rotator().Stats().Uploaded >= 6 })
	e.fs.Heal() // the reads below check data, not the read path's retries
	if n := e.hotRows(t); n != 0 {
		t.Errorf("hot rows = %d after all segments are uploaded, want 0", n)
	}
	if status, code := e.readAll(t); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, code)
	}
	t.Logf("faults injected: put %d, get %d, head %d; upload failures %d",
		e.fs.Calls(faultstore.OpPut)-e.fs.Injected(faultstore.OpPut, faultstore.None),
		e.fs.Calls(faultstore.OpGet)-e.fs.Injected(faultstore.OpGet, faultstore.None),
		e.fs.Calls(faultstore.OpHead)-e.fs.Injected(faultstore.OpHead, faultstore.None),
		e.srv.Rotator().Stats().Failures)
}

// TestColdReadFaults uploads cleanly, then lets the store fail reads of the
// cold tier: a read either fails with a JSON 5xx or returns the right bytes,
// never wrong ones, and once the store is healthy again reads succeed, so a
// bad download must not stay in the cache.
func TestColdReadFaults(t *testing.T) {
	for i, f := range []faultstore.Fault{faultstore.Unavailable, faultstore.Truncate, faultstore.Corrupt} {
		t.Run(f.String(), func(t *testing.T) {
			e := newFaultEnv(t, rotation.VerifyFull, uint64(i))
			e.appendN(t, 8)
			waitFor(t, func() bool { return e.hotRows(t) == 0 })
			e.restart(t)
			e.fs.Set(faultstore.OpGet, faultstore.Plan{Rates: map[faultstore.Fault]float64{f: 1}})
			status, code := e.readAll(t)
			if status < 500 {
				t.Errorf("cold read with every store read failing answered %d, want 5xx", status)
			}
			t.Logf("answer while the store fails: %d %s", status, code)
			e.fs.Heal()
			if status, code := e.readAll(t); status != http.StatusOK {
				t.Fatalf("read after healing: %d %s", status, code)
			}
		})
	}
}

// TestHangingStoreDoesNotBlockAppends lets every store call hang: uploads
// stall, but the stream's actor keeps taking appends and serving reads,
// and the server still shuts down promptly.
func TestHangingStoreDoesNotBlockAppends(t *testing.T) {
	e := newFaultEnv(t, rotation.VerifyFull, 1)
	hang := faultstore.Plan{Rates: map[faultstore.Fault]float64{faultstore.Timeout: 1}}
	for _, op := range []faultstore.Op{faultstore.OpPut, faultstore.OpHead, faultstore.OpGet} {
		e.fs.Set(op, hang)
	}
	e.appendN(t, 8)
	waitFor(t, func() bool { return e.fs.Injected(faultstore.OpPut, faultstore.Timeout) >= 2 })
	start := time.Now()
	e.appendN(t, 40)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("40 appends took %v while uploads hang", d)
	}
	if status, code := e.readAll(t); status != http.StatusOK {
		t.Fatalf("read while uploads hang: %d %s", status, code)
	}
	if n := e.hotRows(t); n != 48 {
		t.Errorf("hot rows = %d while no upload finished, want 48", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.stop()
		e.stop = func() {}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("Close did not return within 10s while store calls hang")
		e.fs.Heal()
		<-done
	}
}

// TestHangingStoreRecovers heals a hanging store: the stalled uploads finish.
func TestHangingStoreRecovers(t *testing.T) {
	e := newFaultEnv(t, rotation.VerifyFull, 2)
	e.fs.Set(faultstore.OpPut, faultstore.Plan{Rates: map[faultstore.Fault]float64{faultstore.Timeout: 1}})
	e.appendN(t, 8)
	waitFor(t, func() bool { return e.fs.Injected(faultstore.OpPut, faultstore.Timeout) >= 2 })
	e.fs.Heal()
	waitFor(t, func() bool { return e.hotRows(t) == 0 })
	if status, code := e.readAll(t); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, code)
	}
	if !strings.HasPrefix(e.want.String(), "message-0000;") {
		t.Fatalf("unexpected test data %q", e.want.String())
	}
}
