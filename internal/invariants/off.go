//go:build !invariants

package invariants

// Enabled is true in builds with the "invariants" tag: checks panic, and
// code may run extra, costly checks guarded by it.
const Enabled = false
