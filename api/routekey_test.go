package api

import (
	"net/http/httptest"
	"testing"
)

func TestRouteKey(t *testing.T) {
	for _, tc := range []struct {
		method, path, from, want string
	}{
		{"PUT", "/v1/stream/a/fork", "/v1/stream/a/src", "a/src"},
		{"PUT", "/v1/stream/a/fork", "http://edge.example/v1/stream/a/src", "a/src"},
		{"PUT", "/v1/stream/a/fork", "", "a/fork"},
		{"PUT", "/v1/stream/a/fork", "/v1/stream/bad//path", "a/fork"}, // refused where served
		{"POST", "/v1/stream/a/fork", "/v1/stream/a/src", "a/fork"},
		{"GET", "/v1/stream/a/fork", "/v1/stream/a/src", "a/fork"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.from != "" {
			r.Header.Set("Stream-Forked-From", tc.from)
		}
		if got := routeKey(r, "a/fork"); got != tc.want {
			t.Errorf("%s %s from %q: routeKey = %q, want %q", tc.method, tc.path, tc.from, got, tc.want)
		}
	}
}
