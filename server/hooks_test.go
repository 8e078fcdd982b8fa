package server

import (
	"github.com/streamtier/durable-streams/internal/httpcall"

	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/hooks"
)

// recorder collects hook calls.
type recorder struct {
	mu      sync.Mutex
	appends []hooks.AppendResult
	events  []string // "created path" / "deleted path [expired]"
}

func (r *recorder) hooks() hooks.Hooks {
	return hooks.Hooks{
		AfterAppend: func(_ context.Context, res hooks.AppendResult) {
			r.mu.Lock()
			r.appends = append(r.appends, res)
			r.mu.Unlock()
		},
		OnStreamCreated: func(_ context.Context, s hooks.StreamInfo) { r.event("created " + s.Path) },
		OnStreamDeleted: func(_ context.Context, s hooks.StreamInfo) {
			e := "deleted " + s.Path
			if s.Expired {
				e += " expired"
			}
			r.event(e)
		},
	}
}

func (r *recorder) event(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]hooks.AppendResult, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.appends), slices.Clone(r.events)
}

func TestBeforeAppendVeto(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"rejection", hooks.Reject(http.StatusUnprocessableEntity, "no swearing"), 422, "UNPROCESSABLE_ENTITY", "no swearing"},
		{"rejection with code", &hooks.Rejection{Status: 429, Code: "QUOTA", Reason: "quota used up"}, 429, "QUOTA", "quota used up"},
		{"wrapped rejection", errorsJoin(hooks.Reject(409, "busy")), 409, "CONFLICT", "busy"},
		{"plain error", errors.New("not allowed here"), 403, "FORBIDDEN", "not allowed here"},
		{"server status is not allowed", hooks.Reject(500, "boom"), 403, "FORBIDDEN", "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []hooks.AppendInfo
			var mu sync.Mutex
			cfg := Config{Hooks: hooks.Hooks{BeforeAppend: func(_ context.Context, a *hooks.AppendInfo) error {
				mu.Lock()
				seen = append(seen, *a)
				mu.Unlock()
				if strings.HasPrefix(a.Path, "deny/") {
					return tt.err
				}
				return nil
			}}}
			_, hs := startServer(t, cfg)
			url := hs.URL + "/v1/stream/deny/x"
			httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, 201)
			httpcall.Do(t, "POST", url, "ok?", "Content-Type", "text/plain").Want(t, tt.wantStatus)
			before := httpcall.Do(t, "HEAD", url, "").Want(t, 200).Header.Get("Stream-Next-Offset")

			r := httpcall.Do(t, "POST", url, "hello", "Content-Type", "text/plain").Want(t, tt.wantStatus)
			if code, msg := r.ErrorBody(t); code != tt.wantCode || msg != tt.wantMsg {
				t.Errorf("error %q %q, want %q %q", code, msg, tt.wantCode, tt.wantMsg)
			}
			// A close is vetoed too.
			httpcall.Do(t, "POST", url, "", "Stream-Closed", "true").Want(t, tt.wantStatus)
			h := httpcall.Do(t, "HEAD", url, "").Want(t, 200)
			if got := h.Header.Get("Stream-Next-Offset"); got != before {
				t.Errorf("offset moved from %s to %s after vetoed appends", before, got)
			}
			if h.Header.Get("Stream-Closed") != "" {
				t.Error("vetoed close closed the stream")
			}
			if got := httpcall.Do(t, "GET", url+"?offset=-1", "").Want(t, 200).Body; got != "" {
				t.Errorf("stream holds %q after vetoed appends", got)
			}
			// A PUT with initial data is vetoed before the stream exists.
			httpcall.Do(t, "PUT", hs.URL+"/v1/stream/deny/y", "init", "Content-Type", "text/plain").Want(t, tt.wantStatus)
			httpcall.Do(t, "HEAD", hs.URL+"/v1/stream/deny/y", "").Want(t, 404)
			// Other paths pass.
			httpcall.Do(t, "PUT", hs.URL+"/v1/stream/ok", "init", "Content-Type", "text/plain").Want(t, 201)
			httpcall.Do(t, "POST", hs.URL+"/v1/stream/ok", "more", "Content-Type", "text/plain", "Producer-Id", "p",
				"Producer-Epoch", "0", "Producer-Seq", "0").Want(t, 200)

			mu.Lock()
			defer mu.Unlock()
			last := seen[len(seen)-1]
			if last.Path != "ok" || string(last.Data) != "more" || last.Size() != 4 || last.Messages != 1 ||
				last.ContentType != "text/plain" || last.Producer == nil || last.Producer.ID != "p" || last.Create {
				t.Errorf("last AppendInfo = %+v", last)
			}
			put := seen[len(seen)-2]
			if !put.Create || string(put.Data) != "init" {
				t.Errorf("PUT AppendInfo = %+v", put)
			}
		})
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }

func TestAfterAppend(t *testing.T) {
	rec := &recorder{}
	s, hs := startServer(t, Config{Hooks: rec.hooks()})
	url := hs.URL + "/v1/stream/j"
	httpcall.Do(t, "PUT", url, `[{"a":1},{"b":2}]`, "Content-Type", "application/json").Want(t, 201)
	httpcall.Do(t, "POST", url, `{"c":3}`, "Content-Type", "application/json").Want(t, 204)
	prod := []string{"Content-Type", "application/json", "Producer-Id", "w", "Producer-Epoch", "0", "Producer-Seq", "0"}
	httpcall.Do(t, "POST", url, `[{"d":4},{"e":5}]`, prod...).Want(t, 200)
	httpcall.Do(t, "POST", url, `[{"d":4},{"e":5}]`, prod...).Want(t, 204) // duplicate: not an append
	httpcall.Do(t, "POST", url, `{"f":6}`, "Content-Type", "application/json", "Stream-Closed", "true").Want(t, 204)
	httpcall.Do(t, "POST", url, "", "Stream-Closed", "true").Want(t, 204) // close-only: not an append
	httpcall.Do(t, "PUT", url, `[{"a":1},{"b":2}]`, "Content-Type", "application/json").Want(t, 409)
	httpcall.Do(t, "PUT", hs.URL+"/v1/stream/empty", "", "Content-Type", "text/plain").Want(t, 201) // no data
	tail := httpcall.Do(t, "HEAD", url, "").Want(t, 200).Header.Get("Stream-Next-Offset")
	waitHooks(t, s)

	got, _ := rec.snapshot()
	type short struct {
		msgs           int
		create, closed bool
		producer       bool
	}
	var shorts []short
	for _, r := range got {
		if r.Path != "j" || r.ContentType != "application/json" {
			t.Errorf("result %+v", r)
		}
		shorts = append(shorts, short{r.Messages, r.Create, r.Closed, r.Producer != nil})
	}
	want := []short{{2, true, false, false}, {1, false, false, false}, {2, false, false, true}, {1, false, true, false}}
	if !slices.Equal(shorts, want) {
		t.Fatalf("AfterAppend calls %+v, want %+v", shorts, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].StartByte != got[i-1].EndByte || got[i].EndByte <= got[i].StartByte {
			t.Errorf("call %d covers %d-%d after %d-%d", i, got[i].StartByte, got[i].EndByte, got[i-1].StartByte, got[i-1].EndByte)
		}
	}
	if got[0].StartByte != 0 || got[len(got)-1].NextOffset != tail {
		t.Errorf("first starts at %d, last ends at %s; tail %s", got[0].StartByte, got[len(got)-1].NextOffset, tail)
	}
}

func TestAfterAppendPanicIsContained(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	s, hs := startServer(t, Config{Hooks: hooks.Hooks{AfterAppend: func(context.Context, hooks.AppendResult) {
		mu.Lock()
		calls++
		mu.Unlock()
		panic("hook bug")
	}}})
	url := hs.URL + "/v1/stream/p"
	httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, 201)
	for range 3 {
		httpcall.Do(t, "POST", url, "x", "Content-Type", "text/plain").Want(t, 204)
	}
	waitHooks(t, s)
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Errorf("%d calls, want 3", calls)
	}
}

func TestLifecycleHooks(t *testing.T) {
	rec := &recorder{}
	s, hs := startServer(t, Config{Hooks: rec.hooks()})
	st := hs.URL + "/v1/stream/"
	httpcall.Do(t, "PUT", st+"a", "", "Content-Type", "text/plain").Want(t, 201)
	httpcall.Do(t, "PUT", st+"a", "", "Content-Type", "text/plain").Want(t, 200) // idempotent: no event
	httpcall.Do(t, "PUT", st+"b", "", "Content-Type", "text/plain", "Stream-TTL", "1").Want(t, 201)
	httpcall.Do(t, "PUT", st+"f", "", "Stream-Forked-From", "/v1/stream/a").Want(t, 201)
	httpcall.Do(t, "DELETE", st+"a", "").Want(t, 204) // soft: the fork keeps it
	httpcall.Do(t, "DELETE", st+"f", "").Want(t, 204) // cascades to a: reported once
	deadline := time.Now().Add(10 * time.Second)
	for {
		waitHooks(t, s)
		_, events := rec.snapshot()
		if len(events) >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, events := rec.snapshot()
	want := []string{"created a", "created b", "created f", "deleted a", "deleted f", "deleted b expired"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}

func TestRegistryStream(t *testing.T) {
	const reg = "__registry__"
	rec := &recorder{}
	dir := t.TempDir()
	s, hs := startServer(t, Config{DataDir: dir, RegistryStream: reg, Hooks: rec.hooks()})
	st := hs.URL + "/v1/stream/"
	httpcall.Do(t, "PUT", st+"x", "", "Content-Type", "text/plain").Want(t, 201)
	httpcall.Do(t, "PUT", st+"y", `[1]`, "Content-Type", "application/json").Want(t, 201)
	httpcall.Do(t, "DELETE", st+"x", "").Want(t, 204)
	waitHooks(t, s)

	events := readRegistry(t, st+reg)
	want := []string{"created x text/plain", "created y application/json", "deleted x text/plain"}
	if !slices.Equal(events, want) {
		t.Fatalf("registry %q, want %q", events, want)
	}
	// Clients can read it but not write it.
	h := httpcall.Do(t, "HEAD", st+reg, "").Want(t, 200)
	if ct := h.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("registry content type %q", ct)
	}
	r := httpcall.Do(t, "POST", st+reg, `{"type":"created","path":"forged"}`, "Content-Type", "application/json").Want(t, 403)
	if code, _ := r.ErrorBody(t); code != "READ_ONLY_STREAM" {
		t.Errorf("code %q", code)
	}
	// The application's hooks do not see the registry stream.
	_, hookEvents := rec.snapshot()
	if !slices.Equal(hookEvents, []string{"created x", "created y", "deleted x"}) {
		t.Errorf("hook events %q", hookEvents)
	}
	// A registry stream deleted behind the server's back (clients cannot:
	// TestRegistryStreamDeleteRefused) comes back with the next event.
	if err := s.Registry().Delete(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	httpcall.Do(t, "PUT", st+"z", "", "Content-Type", "text/plain").Want(t, 201)
	waitHooks(t, s)
	if got := readRegistry(t, st+reg); !slices.Equal(got, []string{"created z text/plain"}) {
		t.Fatalf("recreated registry %q", got)
	}
}

// TestRegistryStreamDeleteRefused: clients can read the registry stream
// but neither append to it, close it nor delete it (DELETE used to answer
// 204 and wipe its history).
func TestRegistryStreamDeleteRefused(t *testing.T) {
	const reg = "__registry__"
	s, hs := startServer(t, Config{DataDir: t.TempDir(), RegistryStream: reg})
	st := hs.URL + "/v1/stream/"
	httpcall.Do(t, "PUT", st+"x", "", "Content-Type", "text/plain").Want(t, 201)
	waitHooks(t, s)
	for _, tc := range []struct {
		method, body string
		h            []string
	}{
		{"DELETE", "", nil},
		{"POST", `{"type":"created","path":"forged"}`, []string{"Content-Type", "application/json"}},
		{"POST", "", []string{"Stream-Closed", "true"}},
		{"PUT", `[{"type":"created","path":"forged"}]`, []string{"Content-Type", "application/json"}},
	} {
		r := httpcall.Do(t, tc.method, st+reg, tc.body, tc.h...).Want(t, 403)
		if code, _ := r.ErrorBody(t); code != "READ_ONLY_STREAM" {
			t.Errorf("%s: code %q", tc.method, code)
		}
	}
	if got := readRegistry(t, st+reg); !slices.Equal(got, []string{"created x text/plain"}) {
		t.Fatalf("registry after refused writes %q", got)
	}
	httpcall.Do(t, "HEAD", st+reg, "").Want(t, 200)
}

func TestRegistryStreamSurvivesRestart(t *testing.T) {
	const reg = "_meta/registry"
	dir := t.TempDir()
	ctx := context.Background()
	for i := range 2 {
		s, err := New(ctx, Config{DataDir: dir, RegistryStream: reg, Logger: discard()})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		hs := httptestServer(s)
		httpcall.Do(t, "PUT", hs.URL+"/v1/stream/s"+string(rune('0'+i)), "", "Content-Type", "text/plain").Want(t, 201)
		waitHooks(t, s)
		hs.Close()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s, hs := startServer(t, Config{DataDir: dir, RegistryStream: reg})
	_ = s
	if got := readRegistry(t, hs.URL+"/v1/stream/"+reg); !slices.Equal(got, []string{"created s0 text/plain", "created s1 text/plain"}) {
		t.Fatalf("registry after restarts %q", got)
	}
}

func TestRegistryStreamConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := New(ctx, Config{DataDir: dir, RegistryStream: "../x", Logger: discard()}); err == nil {
		t.Error("invalid registry path accepted")
	}
	s, hs := startServer(t, Config{DataDir: dir})
	httpcall.Do(t, "PUT", hs.URL+"/v1/stream/reg", "", "Content-Type", "text/plain").Want(t, 201)
	hs.Close()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := New(ctx, Config{DataDir: dir, RegistryStream: "reg", Logger: discard()})
	if err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Errorf("registry over a text stream: %v", err)
	}
}

// readRegistry returns the registry's events as "type path contentType".
func readRegistry(t *testing.T, url string) []string {
	t.Helper()
	var evs []RegistryEvent
	body := httpcall.Do(t, "GET", url+"?offset=-1", "").Want(t, 200).Body
	if err := json.Unmarshal([]byte(body), &evs); err != nil {
		t.Fatalf("registry body %q: %v", body, err)
	}
	var out []string
	for _, e := range evs {
		if e.Time.IsZero() {
			t.Errorf("event without time: %+v", e)
		}
		out = append(out, e.Type+" "+e.Path+" "+e.ContentType)
	}
	return out
}
