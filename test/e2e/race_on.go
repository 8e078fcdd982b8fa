//go:build race

package e2e

// raceEnabled: the test binary was built with -race, so BuildServer builds
// the server with -race too (shared build cache, and the server itself is
// race-checked under the end-to-end tests).
const raceEnabled = true
