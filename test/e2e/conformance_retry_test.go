package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestTimedOutConformanceTests checks which failed runs retryTimeouts
// considers: only those whose every failure is a suite timeout.
func TestTimedOutConformanceTests(t *testing.T) {
	const timeout = `"Error: Test timed out in 5000ms.\nIf this is a long-running test, pass a timeout value"`
	for _, tc := range []struct {
		name, results string
		want          []string
	}{
		{"passes only", `{"fullName":"a","status":"passed","failureMessages":[]}`, nil},
		{"one timeout", `{"fullName":"a","status":"passed","failureMessages":[]},{"fullName":"Chunking chunk-size pagination","status":"failed","failureMessages":[` + timeout + `]}`,
			[]string{"Chunking chunk-size pagination"}},
		{"a timeout and an assertion", `{"fullName":"a","status":"failed","failureMessages":[` + timeout + `]},{"fullName":"b","status":"failed","failureMessages":["AssertionError: expected 200 to be 404"]}`, nil},
		{"failed without message", `{"fullName":"a","status":"failed","failureMessages":[]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.json")
			if err := os.WriteFile(path, []byte(`{"testResults":[{"assertionResults":[`+tc.results+`]}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := timedOutConformanceTests(path)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("timedOutConformanceTests = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if got := withoutFilter([]string{"--subscriptions", "-t", "Reserved", "--blocks"}); !slices.Equal(got, []string{"--subscriptions", "--blocks"}) {
		t.Fatalf("withoutFilter = %q", got)
	}
}
