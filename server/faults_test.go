package server

import (
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/faults"
	"github.com/streamtier/durable-streams/internal/httpcall"
)

func TestFaultInjectionFromGo(t *testing.T) {
	inj := faults.New()
	_, hs := startServer(t, Config{Faults: inj})
	url := hs.URL + "/v1/stream/f"
	httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, 201)
	if err := inj.Inject(faults.Fault{Path: "/v1/stream/f", Method: "POST", Status: 503, Count: 2, RetryAfter: 1}); err != nil {
		t.Fatal(err)
	}
	httpcall.Do(t, "GET", url+"?offset=-1", "").Want(t, 200) // other method passes
	for i := range 2 {
		r := httpcall.Do(t, "POST", url, "x", "Content-Type", "text/plain").Want(t, 503)
		if r.Header.Get("Retry-After") != "1" {
			t.Errorf("attempt %d: Retry-After %q", i, r.Header.Get("Retry-After"))
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("injected error lacks CORS headers, so browsers could not read it")
		}
		if code, _ := r.ErrorBody(t); code != "INJECTED_FAULT" {
			t.Errorf("code %q", code)
		}
	}
	httpcall.Do(t, "POST", url, "x", "Content-Type", "text/plain").Want(t, 204)
	if got := httpcall.Do(t, "GET", url+"?offset=-1", "").Want(t, 200).Body; got != "x" {
		t.Errorf("stream holds %q, want only the append that got through", got)
	}
}

func TestFaultInjectionEndpoint(t *testing.T) {
	_, hs := startServer(t, Config{Faults: faults.New()})
	url := hs.URL + "/v1/stream/f"
	ctl := hs.URL + faults.ControlPath
	httpcall.Do(t, "PUT", url, "", "Content-Type", "text/plain").Want(t, 201)
	httpcall.Do(t, "POST", ctl, `{"path":"/v1/stream/f","status":500,"count":1}`, "Content-Type", "application/json").Want(t, 200)
	httpcall.Do(t, "HEAD", url, "").Want(t, 500)
	httpcall.Do(t, "HEAD", url, "").Want(t, 200)

	httpcall.Do(t, "POST", ctl, `{"path":"/v1/stream/","prefix":true,"status":429,"count":5}`).Want(t, 200)
	httpcall.Do(t, "GET", url, "").Want(t, 429)
	httpcall.Do(t, "DELETE", ctl, "").Want(t, 200) // clears the rest
	httpcall.Do(t, "GET", url, "").Want(t, 200)

	r := httpcall.Do(t, "POST", ctl, `{"path":"/v1/stream/f"}`).Want(t, 400)
	if code, msg := r.ErrorBody(t); code != "BAD_REQUEST" || msg == "" {
		t.Errorf("bad fault answered %q %q", code, msg)
	}
	httpcall.Do(t, "GET", ctl, "").Want(t, 405)
}

func TestFaultInjectionDisabled(t *testing.T) {
	_, hs := startServer(t, Config{})
	r := httpcall.Do(t, "POST", hs.URL+faults.ControlPath, `{"path":"/v1/stream/f","status":503}`).Want(t, 404)
	if code, _ := r.ErrorBody(t); code != "NOT_FOUND" {
		t.Errorf("code %q", code)
	}
}

// TestBodyFaultResponsesUncompressed: a body fault alters the decoded
// bytes, so a response it applies to is sent without a content coding,
// even to a client that accepts one.
func TestBodyFaultResponsesUncompressed(t *testing.T) {
	_, hs := startServer(t, Config{Faults: faults.New()})
	url := hs.URL + "/v1/stream/j"
	httpcall.Do(t, "PUT", url, "", "Content-Type", "application/json").Want(t, 201)
	msg := `{"pad":"` + strings.Repeat("x", 4096) + `"}`
	httpcall.Do(t, "POST", url, msg, "Content-Type", "application/json").Want(t, 204)
	if r := httpcall.Do(t, "GET", url+"?offset=-1", "", "Accept-Encoding", "gzip").Want(t, 200); r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("without a fault: Content-Encoding %q, want gzip (the test needs a compressed response)", r.Header.Get("Content-Encoding"))
	}
	httpcall.Do(t, "POST", hs.URL+faults.ControlPath, `{"path":"/v1/stream/j","method":"GET","truncateBodyBytes":10,"count":1}`,
		"Content-Type", "application/json").Want(t, 200)
	r := httpcall.Do(t, "GET", url+"?offset=-1", "", "Accept-Encoding", "gzip").Want(t, 200)
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("with a body fault: Content-Encoding %q, want none", ce)
	}
	if want := "[" + msg[:9]; r.Body != want {
		t.Errorf("cut body %q, want %q", r.Body, want)
	}
}
