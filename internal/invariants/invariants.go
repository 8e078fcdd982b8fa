// Package invariants checks conditions that hold whenever the code is
// right. The checks are switched on with the build tag "invariants", as
// pebble's package of the same name does: scripts/test.sh and the e2e
// server build set it, so every test run asserts them, while a production
// build pays for none of the expensive ones and never panics on them.
//
// A broken invariant found in production is logged, and the caller carries
// on with its documented safe fallback; under the tag it panics, so the
// test that reached it fails at the spot.
package invariants

import (
	"fmt"
	"log/slog"
)

// Failf reports a broken invariant described by format and args: it panics
// when Enabled, and otherwise logs it at error level on lg (slog.Default
// if nil) and returns, so that the caller can take its fallback.
func Failf(lg *slog.Logger, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if Enabled {
		panic("invariant violated: " + msg)
	}
	if lg == nil {
		lg = slog.Default()
	}
	lg.Error("invariant violated", "detail", msg)
}

// Check reports a broken invariant with Failf unless ok, and returns ok.
func Check(ok bool, lg *slog.Logger, format string, args ...any) bool {
	if !ok {
		Failf(lg, format, args...)
	}
	return ok
}
