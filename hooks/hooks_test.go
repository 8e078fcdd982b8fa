package hooks

import (
	"errors"
	"fmt"
	"testing"
)

func TestAsRejection(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code, text string
	}{
		{"reject", Reject(422, "bad shape"), 422, "UNPROCESSABLE_ENTITY", "bad shape"},
		{"wrapped", fmt.Errorf("policy: %w", Reject(409, "busy")), 409, "CONFLICT", "busy"},
		{"own code", &Rejection{Status: 429, Code: "QUOTA", Reason: "used up"}, 429, "QUOTA", "used up"},
		{"plain error", errors.New("nope"), 403, "FORBIDDEN", "nope"},
		{"5xx becomes 403", Reject(503, "later"), 403, "FORBIDDEN", "later"},
		{"2xx becomes 403", Reject(200, "fine?"), 403, "FORBIDDEN", "fine?"},
		{"empty reason", Reject(400, ""), 400, "BAD_REQUEST", "append rejected"},
		{"unnamed 4xx", Reject(499, "x"), 499, "REJECTED", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := AsRejection(tt.err)
			if r.Status != tt.status || r.Code != tt.code || r.Reason != tt.text {
				t.Errorf("AsRejection(%v) = %+v, want %d %s %q", tt.err, r, tt.status, tt.code, tt.text)
			}
		})
	}
}
