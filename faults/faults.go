// Package faults injects HTTP errors into a server for tests of client
// retry and resilience logic. It is off unless an application creates an
// [Injector] and mounts it; production servers should never do so.
//
// A fault applies to the next Count requests that match its path (and
// method, if set), or to each of them only with a probability. It can
// answer them with its status and optional Retry-After header, delay them
// (with jitter), drop their connections, or let them through and alter the
// response: cut or corrupt a successful body, or send an extra event first
// on an SSE response. Then requests pass through unchanged again. The
// control endpoint (see [Injector.ServeControl]) accepts the JSON body of
// the reference server's POST /_test/inject-error:
//
//	{"path":"/v1/stream/x","status":503,"count":2,"retryAfter":1,"method":"POST"}
//	{"path":"/v1/stream/x","delayMs":300,"jitterMs":300}
//	{"path":"/v1/stream/x","truncateBodyBytes":10,"method":"GET"}
//	{"path":"/v1/stream/x","corruptBody":true,"probability":0.5}
//	{"path":"/v1/stream/x","injectSseEvent":{"eventType":"control","data":"{"}}
//
// and DELETE clears every fault.
package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/cache"
)

// ControlPath is where a server mounts [Injector.ServeControl].
const ControlPath = "/_test/inject-error"

// maxDelay bounds Fault.Delay so a stray fault cannot hang a test run.
const maxDelay = time.Minute

// Fault describes an injected failure.
type Fault struct {
	// Path is the request path the fault applies to, as the server's
	// handler sees it (below any mount prefix), e.g. "/v1/stream/x".
	Path string `json:"path"`
	// Prefix makes Path match every path that starts with it.
	Prefix bool `json:"prefix,omitempty"`
	// Method limits the fault to one HTTP method ("" matches all).
	Method string `json:"method,omitempty"`
	// Status is the status to answer with (400-599); 0 serves matching
	// requests normally after the other effects.
	Status int `json:"status,omitempty"`
	// Count is how many matching requests the fault applies to (default 1).
	Count int `json:"count,omitempty"`
	// Probability, if set, is the chance (0 to 1) that a matching request
	// triggers the fault; a request it spares does not use up Count.
	Probability *float64 `json:"probability,omitempty"`
	// RetryAfter, if positive, is sent as Retry-After (seconds).
	RetryAfter int `json:"retryAfter,omitempty"`
	// Delay is waited before answering (or before passing through).
	Delay time.Duration `json:"-"`
	// Jitter adds a random wait in [0, Jitter) to Delay.
	Jitter time.Duration `json:"-"`
	// DropConnection closes the connection without an answer.
	DropConnection bool `json:"dropConnection,omitempty"`
	// TruncateBody, if set, cuts a successful non-SSE response body after
	// that many bytes (dropping Content-Length, so the response still ends
	// cleanly: the client sees a short body, not a broken connection).
	TruncateBody *int64 `json:"truncateBodyBytes,omitempty"`
	// CorruptBody overwrites bytes of a successful non-SSE response body:
	// the first two become 'X' and 'Y', and about one in ten of the others
	// 'Z'. The length stays the same.
	CorruptBody bool `json:"corruptBody,omitempty"`
	// SSEEvent, if set, is sent before anything else on a successful SSE
	// response.
	SSEEvent *SSEEvent `json:"injectSseEvent,omitempty"`
}

// SSEEvent is an extra server-sent event for [Fault.SSEEvent].
type SSEEvent struct {
	// Type is the event's "event:" field; it must not be empty or hold a
	// line break.
	Type string `json:"eventType"`
	// Data is the event's data; each of its lines is sent as a "data:" field.
	Data string `json:"data"`
}

// altersBody reports whether f lets requests through to change their
// responses.
func (f *Fault) altersBody() bool {
	return f.TruncateBody != nil || f.CorruptBody || f.SSEEvent != nil
}

// Validate reports what is wrong with f, if anything.
func (f *Fault) Validate() error {
	switch {
	case !strings.HasPrefix(f.Path, "/"):
		return errors.New("path must start with /")
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d is not an error status (400-599)", f.Status)
	case f.Status == 0 && f.Delay == 0 && f.Jitter == 0 && !f.DropConnection && !f.altersBody():
		return errors.New("a fault needs a status, delayMs, jitterMs, dropConnection, truncateBodyBytes, corruptBody or injectSseEvent")
	case f.Count < 0:
		return errors.New("count must not be negative")
	case f.Probability != nil && !(*f.Probability >= 0 && *f.Probability <= 1):
		return errors.New("probability must be between 0 and 1")
	case f.RetryAfter < 0:
		return errors.New("retryAfter must not be negative")
	case f.Delay < 0 || f.Jitter < 0 || f.Delay+f.Jitter > maxDelay:
		return fmt.Errorf("delay and jitter must not be negative nor add up to more than %v", maxDelay)
	case f.TruncateBody != nil && *f.TruncateBody < 0:
		return errors.New("truncateBodyBytes must not be negative")
	case f.SSEEvent != nil && (f.SSEEvent.Type == "" || strings.ContainsAny(f.SSEEvent.Type, "\r\n")):
		return errors.New("injectSseEvent needs an eventType without line breaks")
	case f.Method != "" && strings.ContainsAny(f.Method, " \t/"):
		return fmt.Errorf("invalid method %q", f.Method)
	}
	return nil
}

func (f *Fault) matches(method, path string) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, method) {
		return false
	}
	if f.Prefix {
		return strings.HasPrefix(path, f.Path)
	}
	return path == f.Path
}

// Injector holds the active faults. It is safe for concurrent use; the
// zero value is not, use [New].
type Injector struct {
	mu     sync.Mutex
	faults []*Fault
	// active is len(faults) > 0, read without the lock so that requests
	// pay one atomic load while no fault is set.
	active atomic.Bool
}

// New returns an Injector without faults.
func New() *Injector { return &Injector{} }

// Inject adds f, replacing an active fault with the same path, prefix flag
// and method. A zero Count means 1.
func (in *Injector) Inject(f Fault) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if f.Count == 0 {
		f.Count = 1
	}
	f.Method = strings.ToUpper(f.Method)
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, g := range in.faults {
		if g.Path == f.Path && g.Prefix == f.Prefix && g.Method == f.Method {
			in.faults[i] = &f
			return nil
		}
	}
	in.faults = append(in.faults, &f)
	in.active.Store(true)
	return nil
}

// Clear removes every fault.
func (in *Injector) Clear() {
	in.mu.Lock()
	in.faults = nil
	in.active.Store(false)
	in.mu.Unlock()
}

// Pending returns the active faults with their remaining counts.
func (in *Injector) Pending() []Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Fault, len(in.faults))
	for i, f := range in.faults {
		out[i] = *f
	}
	return out
}

// take consumes one use of the first fault matching r, unless its
// Probability spares the request.
func (in *Injector) take(r *http.Request) (Fault, bool) {
	if !in.active.Load() {
		return Fault{}, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, f := range in.faults {
		if !f.matches(r.Method, r.URL.Path) {
			continue
		}
		if f.Probability != nil && rand.Float64() >= *f.Probability {
			return Fault{}, false
		}
		hit := *f
		if f.Count--; f.Count <= 0 {
			in.faults = append(in.faults[:i], in.faults[i+1:]...)
			in.active.Store(len(in.faults) > 0)
		}
		return hit, true
	}
	return Fault{}, false
}

// Middleware applies faults to the requests they match and passes the
// others to next. Requests to ControlPath are never faulted.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answered, body := in.Apply(w, r)
		if answered {
			return
		}
		next.ServeHTTP(body.Wrap(w), r)
	})
}

// Apply consumes the first fault matching r, if any, and waits its delay.
// It reports whether the fault answered the request (a status or a dropped
// connection). Otherwise the request is to be served normally, through
// body.Wrap of the innermost response writer: body is nil unless the fault
// alters the response, and Wrap of nil returns the writer unchanged.
func (in *Injector) Apply(w http.ResponseWriter, r *http.Request) (answered bool, body *BodyFault) {
	if r.URL.Path == ControlPath {
		return false, nil
	}
	f, ok := in.take(r)
	if !ok {
		return false, nil
	}
	if d := f.Delay + randDuration(f.Jitter); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if f.DropConnection {
		// net/http closes the connection without a response and without
		// logging a stack trace for this sentinel.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		if f.altersBody() {
			return false, &BodyFault{truncate: f.TruncateBody, corrupt: f.CorruptBody, event: f.SSEEvent}
		}
		return false, nil
	}
	h := w.Header()
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	cache.SetNoStore(h)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, "{\"error\":\"INJECTED_FAULT\",\"message\":\"injected error for testing (status %d)\"}\n", f.Status)
	return true, nil
}

// randDuration returns a random duration in [0, d), or 0 if d <= 0.
func randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// controlRequest is the JSON body of POST ControlPath.
type controlRequest struct {
	Fault
	DelayMs  int64 `json:"delayMs,omitempty"`
	JitterMs int64 `json:"jitterMs,omitempty"`
}

// ServeControl serves ControlPath: POST adds a fault from a JSON body,
// DELETE clears all faults; both answer {"ok":true}. Bad bodies get 400
// and other methods 405, with a JSON error.
func (in *Injector) ServeControl(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var req controlRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", "invalid fault JSON: "+err.Error())
			return
		}
		for _, ms := range []struct {
			name string
			v    int64
		}{{"delayMs", req.DelayMs}, {"jitterMs", req.JitterMs}} {
			if ms.v < 0 || ms.v > maxDelay.Milliseconds() {
				writeError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("%s must be between 0 and %d", ms.name, maxDelay.Milliseconds()))
				return
			}
		}
		req.Fault.Delay = time.Duration(req.DelayMs) * time.Millisecond
		req.Fault.Jitter = time.Duration(req.JitterMs) * time.Millisecond
		if err := in.Inject(req.Fault); err != nil {
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", strings.TrimPrefix(err.Error(), "faults: "))
			return
		}
	case http.MethodDelete:
		in.Clear()
	default:
		w.Header().Set("Allow", "POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "use POST to inject a fault or DELETE to clear them")
		return
	}
	cache.SetNoStore(w.Header())
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{\"ok\":true}\n")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(struct {
		Code    string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	cache.SetNoStore(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
