package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/api"
)

func TestNodeDrainCLI(t *testing.T) {
	e := newCLIEnv(t, "tok")
	t.Setenv("DS_ADMIN_TOKEN", "")
	for _, p := range []string{"cli/a", "cli/b", "cli/c"} {
		req, _ := http.NewRequest("PUT", e.url+"/v1/stream/"+p, strings.NewReader("data"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	if code, _, errs := cli(t, "node", "drain", "--url", e.url); code != exitError || !strings.Contains(errs, "401") {
		t.Fatalf("drain without a token: %d %s", code, errs)
	}
	if code, _, errs := cli(t, "node", "drain", "--concurrency", "0"); code != exitUsage {
		t.Fatalf("drain --concurrency 0: %d %s", code, errs)
	}
	if code, _, errs := cli(t, "node", "nope"); code != exitUsage || !strings.Contains(errs, "unknown command") {
		t.Fatalf("node nope: %d %s", code, errs)
	}
	code, out, errs := cli(t, "node", "drain", "--url", e.url, "--token", "tok", "--concurrency", "2")
	if code != exitOK || !strings.Contains(out, "3/3 handed off, 0 failed") || !strings.Contains(out, "drained: 3 of 3 streams handed off") {
		t.Fatalf("drain: %d\n%s\n%s", code, out, errs)
	}
	// Again, as JSON lines: nothing is left to hand off.
	code, out, errs = cli(t, "node", "drain", "--url", e.url, "--token", "tok", "--json")
	var last api.DrainReport
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &last); code != exitOK || err != nil || !last.Done || last.Total != 0 {
		t.Fatalf("second drain: %d %v\n%s\n%s", code, err, out, errs)
	}
}
