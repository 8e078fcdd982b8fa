// Package httpcall sends one HTTP request from a test and returns the whole
// answer, so tests across packages share one small helper instead of each
// writing their own.
package httpcall

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is a finished exchange: status, headers and the whole body.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends method url with body (none when empty) and the headers given as
// alternating names and values; any transport failure fails the test.
func Do(t testing.TB, method, url, body string, header ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// Want fails the test unless the status is status; it returns r for chaining.
func (r Response) Want(t testing.TB, status int) Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d (%s), want %d", r.Status, r.Body, status)
	}
	return r
}

// ErrorBody decodes the server's JSON error answer {"error","message"}.
func (r Response) ErrorBody(t testing.TB) (code, msg string) {
	t.Helper()
	var e struct {
		Code    string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return e.Code, e.Message
}

// Drain GETs url with client and reads its body to the end without
// keeping it, for benchmarks: it returns the status and the body's size;
// a transport failure fails the benchmark.
func Drain(tb testing.TB, client *http.Client, url string) (status int, n int64) {
	tb.Helper()
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	n, err = io.Copy(io.Discard, resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, n
}
