package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfBasic(t *testing.T) {
	if os.Getenv("SELFTEST") == "" {
		t.Skip()
	}
	bin := BuildServer(t)
	s := StartServer(t, bin, WithEnv("FAKE_MODE="+os.Getenv("FAKE_MODE")))
	t.Logf("url=%s data=%s", s.URL, s.DataDir)
	get := func() int {
		r, err := http.Get(s.StreamURL("a/b"))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if c := get(); c != 501 {
		t.Fatalf("code %d", c)
	}
	if os.Getenv("SELFTEST") == "crash" {
		time.Sleep(time.Second)
		return
	}
	s.Kill()
	if s.Running() {
		t.Fatal("running after kill")
	}
	s.Restart(t)
	get()
	s.Restart(t) // graceful stop + start
	b, _ := os.ReadFile(filepath.Join(s.DataDir, "starts"))
	if string(b) != "xxx" {
		t.Fatalf("starts=%q", b)
	}
	if !strings.Contains(s.Log(), "--long-poll-timeout 2s --log-level warn") {
		t.Fatal(s.Log())
	}
	t.Run("sub", func(t *testing.T) { s.Restart(t) })
	s.Stop()
	s.Stop()
	if os.Getenv("SELFTEST") == "fail" {
		t.Error("deliberate failure to see log tail")
	}
}

func TestSelfReadyTimeout(t *testing.T) {
	if os.Getenv("SELFTEST") != "slowready" {
		t.Skip()
	}
	StartServer(t, BuildServer(t), WithEnv("FAKE_MODE=slowready"), WithReadyTimeout(2*time.Second))
}

func TestSelfParallelPorts(t *testing.T) {
	if os.Getenv("SELFTEST") != "par" {
		t.Skip()
	}
	bin := BuildServer(t)
	for i := 0; i < 20; i++ {
		t.Run("p", func(t *testing.T) {
			t.Parallel()
			s := StartServer(t, bin)
			s.Restart(t)
		})
	}
}

func TestSelfPortBusy(t *testing.T) {
	if os.Getenv("SELFTEST") != "busy" {
		t.Skip()
	}
	s := StartServer(t, BuildServer(t))
	s.Kill()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s.Restart(t)
}
