package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/offset"
)

// fakeStreams is an in-memory Streams: a stream is its tail position and
// the messages appended through AppendJSON.
type fakeStreams struct {
	mu   sync.Mutex
	tail map[string]int64
	msgs map[string][][]byte
}

func newFakeStreams() *fakeStreams {
	return &fakeStreams{tail: map[string]int64{}, msgs: map[string][][]byte{}}
}

func tok(pos int64) string { return offset.Token{Segment: 1, Position: pos}.String() }

func (f *fakeStreams) Tail(_ context.Context, path string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.tail[path]
	if !ok {
		return "", false, nil
	}
	return tok(p), true, nil
}

func (f *fakeStreams) List(_ context.Context, prefix string, fn func(string) bool) error {
	f.mu.Lock()
	var paths []string
	for p := range f.tail {
		if strings.HasPrefix(p, prefix) {
			paths = append(paths, p)
		}
	}
	f.mu.Unlock()
	slices.Sort(paths)
	for _, p := range paths {
		if !fn(p) {
			break
		}
	}
	return nil
}

func (f *fakeStreams) AppendJSON(_ context.Context, path string, msg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tail[path]; !ok {
		return errors.New("stream not found")
	}
	f.tail[path] += int64(len(msg))
	f.msgs[path] = append(f.msgs[path], msg)
	return nil
}

func (f *fakeStreams) messages(path string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs[path])
}

// append grows a stream by n bytes (creating it) and tells m.
func (f *fakeStreams) append(m *Manager, path string, n int64) string {
	f.mu.Lock()
	f.tail[path] += n
	t := tok(f.tail[path])
	f.mu.Unlock()
	if m != nil {
		m.Appended(path, t)
	}
	return t
}

// testEnv is a manager over fake streams in a temporary directory.
type testEnv struct {
	t       *testing.T
	dir     string
	streams *fakeStreams
	opt     Options
	m       *Manager
}

func newEnv(t *testing.T, adjust func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), streams: newFakeStreams()}
	e.opt = Options{Path: filepath.Join(e.dir, "subscriptions.db"), Streams: e.streams, Webhooks: true, AllowLoopback: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if adjust != nil {
		adjust(&e.opt)
	}
	e.open()
	t.Cleanup(func() { e.m.Close() })
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	m, err := Open(context.Background(), e.opt)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.m = m
}

// restart closes the manager and opens it again on the same database.
func (e *testEnv) restart() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open()
}

func (e *testEnv) put(id string, req CreateRequest) View {
	e.t.Helper()
	v, created, err := e.m.Put(context.Background(), id, &req, "http://streams.test/v1/stream")
	if err != nil || !created {
		e.t.Fatalf("Put %s: created=%v err=%v", id, created, err)
	}
	return v
}

func (e *testEnv) get(id string) View {
	e.t.Helper()
	v, err := e.m.Get(context.Background(), id, "http://streams.test/v1/stream")
	if err != nil {
		e.t.Fatalf("Get %s: %v", id, err)
	}
	return v
}

func webhookReq(url, pattern string) CreateRequest {
	r := CreateRequest{Type: string(TypeWebhook), Pattern: pattern}
	r.Webhook = &struct {
		URL string `json:"url"`
	}{url}
	return r
}

func ptr[T any](v T) *T { return &v }

// delivery is one webhook request a receiver got.
type delivery struct {
	body      []byte
	signature string
	n         Notification
}

// receiver is a webhook target whose answers a test scripts.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []delivery
	arrived chan struct{}
	answer  func(n int) (status int, body string) // n counts from 1
}

func newReceiver(t *testing.T, answer func(n int) (int, string)) *receiver {
	r := &receiver{arrived: make(chan struct{}, 100), answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		d := delivery{body: b, signature: req.Header.Get(SignatureHeader)}
		_ = json.Unmarshal(b, &d.n)
		r.mu.Lock()
		r.got = append(r.got, d)
		n := len(r.got)
		r.mu.Unlock()
		status, body := http.StatusOK, "{}"
		if r.answer != nil {
			status, body = r.answer(n)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the n-th delivery (1-based), failing after a timeout.
func (r *receiver) wait(t *testing.T, n int) delivery {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			d := r.got[n-1]
			r.mu.Unlock()
			return d
		}
		r.mu.Unlock()
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("delivery %d did not arrive", n)
		}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// eventually polls cond until it holds, failing after a timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ackedOf(v View, path string) string {
	for _, l := range v.Streams {
		if l.Path == path {
			return l.AckedOffset
		}
	}
	return ""
}

func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
