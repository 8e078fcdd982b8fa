package server

import (
	"testing"

	"github.com/streamtier/durable-streams/faults"
)

func TestFaultInjectionFromGo(t *testing.T) {
	inj := faults.New()
	_, hs := startServer(t, Config{Faults: inj})
	url := hs.URL + "/v1/stream/f"
	call(t, "PUT", url, "", "Content-Type", "text/plain").want(t, 201)
	if err := inj.Inject(faults.Fault{Path: "/v1/stream/f", Method: "POST", Status: 503, Count: 2, RetryAfter: 1}); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", url+"?offset=-1", "").want(t, 200) // other method passes
	for i := range 2 {
		r := call(t, "POST", url, "x", "Content-Type", "text/plain").want(t, 503)
		if r.header.Get("Retry-After") != "1" {
			t.Errorf("attempt %d: Retry-After %q", i, r.header.Get("Retry-After"))
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("injected error lacks CORS headers, so browsers could not read it")
		}
		if code, _ := r.errorBody(t); code != "INJECTED_FAULT" {
			t.Errorf("code %q", code)
		}
	}
	call(t, "POST", url, "x", "Content-Type", "text/plain").want(t, 204)
	if got := call(t, "GET", url+"?offset=-1", "").want(t, 200).body; got != "x" {
		t.Errorf("stream holds %q, want only the append that got through", got)
	}
}

func TestFaultInjectionEndpoint(t *testing.T) {
	_, hs := startServer(t, Config{Faults: faults.New()})
	url := hs.URL + "/v1/stream/f"
	ctl := hs.URL + faults.ControlPath
	call(t, "PUT", url, "", "Content-Type", "text/plain").want(t, 201)
	call(t, "POST", ctl, `{"path":"/v1/stream/f","status":500,"count":1}`, "Content-Type", "application/json").want(t, 200)
	call(t, "HEAD", url, "").want(t, 500)
	call(t, "HEAD", url, "").want(t, 200)

	call(t, "POST", ctl, `{"path":"/v1/stream/","prefix":true,"status":429,"count":5}`).want(t, 200)
	call(t, "GET", url, "").want(t, 429)
	call(t, "DELETE", ctl, "").want(t, 200) // clears the rest
	call(t, "GET", url, "").want(t, 200)

	r := call(t, "POST", ctl, `{"path":"/v1/stream/f"}`).want(t, 400)
	if code, msg := r.errorBody(t); code != "BAD_REQUEST" || msg == "" {
		t.Errorf("bad fault answered %q %q", code, msg)
	}
	call(t, "GET", ctl, "").want(t, 405)
}

func TestFaultInjectionDisabled(t *testing.T) {
	_, hs := startServer(t, Config{})
	r := call(t, "POST", hs.URL+faults.ControlPath, `{"path":"/v1/stream/f","status":503}`).want(t, 404)
	if code, _ := r.errorBody(t); code != "NOT_FOUND" {
		t.Errorf("code %q", code)
	}
}
