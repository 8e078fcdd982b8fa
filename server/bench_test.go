package server

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/streamtier/durable-streams/hooks"
)

// BenchmarkAppendHooks compares sequential appends without hooks and with
// every append hook set, to show what the hooks cost on the append path.
func BenchmarkAppendHooks(b *testing.B) {
	cases := []struct {
		name  string
		hooks hooks.Hooks
	}{
		{"none", hooks.Hooks{}},
		{"all", hooks.Hooks{
			BeforeAppend: func(context.Context, *hooks.AppendInfo) error { return nil },
			AfterAppend:  func(context.Context, hooks.AppendResult) {},
		}},
	}
	body := bytes.Repeat([]byte("x"), 100)
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s, hs := startServer(b, Config{Hooks: bc.hooks})
			url := hs.URL + "/v1/stream/bench"
			req, _ := http.NewRequest("PUT", url, nil)
			req.Header.Set("Content-Type", "text/plain")
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "text/plain")
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 204 {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.StopTimer()
			waitHooks(b, s)
		})
	}
}
