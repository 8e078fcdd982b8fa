package server

import (
	"net"
	"testing"
	"time"
)

// TestHTTPServerLimits: HTTPServer carries the connection timeouts of
// Config.Limits (defaults for zero, none for negative) and never a read
// or write timeout for whole requests, which would cut live reads.
func TestHTTPServerLimits(t *testing.T) {
	tests := []struct {
		name          string
		limits        Limits
		header, idle  time.Duration
		wrapsListener bool
	}{
		{"defaults", Limits{}, 10 * time.Second, 2 * time.Minute, true},
		{"set", Limits{ReadHeaderTimeout: time.Second, ConnIdleTimeout: 3 * time.Second}, time.Second, 3 * time.Second, true},
		{"off", Limits{ReadHeaderTimeout: -1, ConnIdleTimeout: -1, MaxConns: -1, MaxConnsPerClient: -1}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := startServer(t, Config{Limits: tt.limits})
			hs := s.HTTPServer()
			if hs.ReadHeaderTimeout != tt.header || hs.IdleTimeout != tt.idle || hs.ReadTimeout != 0 || hs.WriteTimeout != 0 {
				t.Errorf("http.Server timeouts: header %v, idle %v, read %v, write %v", hs.ReadHeaderTimeout, hs.IdleTimeout, hs.ReadTimeout, hs.WriteTimeout)
			}
			if hs.Handler != s.Handler() {
				t.Error("http.Server does not serve Handler()")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if wrapped := s.Listener(ln) != ln; wrapped != tt.wrapsListener {
				t.Errorf("Listener wraps: %v, want %v", wrapped, tt.wrapsListener)
			}
		})
	}
}
