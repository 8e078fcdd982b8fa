//go:build race

package e2e

// raceEnabled: the test binary was built with -race. BuildServer does not
// follow it by default (see serverRace); DS_E2E_SERVER_RACE=1 races the server.
const raceEnabled = true
