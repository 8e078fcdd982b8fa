//go:build unix

package proctest

import (
	"syscall"
	"time"
)

// CPU is the CPU time (user plus system) this process has used so far.
// Benchmarks report its growth per operation (cpu-ns/op) because on a
// shared machine it depends much less on the neighbours than wall time
// does. It is 0 if the system cannot say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
