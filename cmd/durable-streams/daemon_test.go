package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestURLForAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:4437": "http://127.0.0.1:4437",
		":8080":          "http://127.0.0.1:8080",
		"0.0.0.0:80":     "http://127.0.0.1:80",
		"[::]:4437":      "http://[::1]:4437",
		"[::1]:4437":     "http://[::1]:4437",
		"localhost:1":    "http://localhost:1",
		"127.0.0.1:0":    "", // the daemon needs a port it can print
		"nonsense":       "",
		"host:99999":     "",
	} {
		got, err := urlForAddr(addr)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("urlForAddr(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

func TestDefaultStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct{ state, xdg, want string }{
		{"", "", filepath.Join(home, ".local/state/durable-streams")},
		{"", "/x/state", "/x/state/durable-streams"},
		{"", "relative", filepath.Join(home, ".local/state/durable-streams")},
		{"/my/state", "/x/state", "/my/state"},
	} {
		t.Setenv("DS_STATE_DIR", tc.state)
		t.Setenv("XDG_STATE_HOME", tc.xdg)
		if got, err := defaultStateDir(); err != nil || got != tc.want {
			t.Errorf("DS_STATE_DIR=%q XDG_STATE_HOME=%q: %q, %v; want %q", tc.state, tc.xdg, got, err, tc.want)
		}
	}
}

func TestInspect(t *testing.T) {
	d := daemon{dir: t.TempDir()}
	if info, note := d.inspect(); info != nil || note != "" {
		t.Fatalf("empty dir: %v %q", info, note)
	}
	write := func(pid string) { os.WriteFile(d.path(pidFileName), []byte(pid), 0o600) }

	write("garbage")
	if info, note := d.inspect(); info != nil || !strings.Contains(note, "no pid") {
		t.Errorf("garbage pid file: %v %q", info, note)
	}
	// This test process is alive but is not a server.
	self := strconv.Itoa(os.Getpid())
	write(self)
	info, note := d.inspect()
	if runtime.GOOS == "linux" {
		if info != nil || !strings.Contains(note, "another program") {
			t.Errorf("pid of a test binary: %v %q", info, note)
		}
		st, err := readProcStat(os.Getpid())
		// A live process reads as running or sleeping, never as a zombie.
		if err != nil || st.startTicks == 0 || st.state == 'Z' || st.state == 'X' {
			t.Fatalf("readProcStat(self) = %+v, %v", st, err)
		}
		// With the right start time the pid is trusted; with another
		// it was reused.
		d.writeFiles(&daemonInfo{PID: os.Getpid(), URL: "http://x:1", StartTicks: st.startTicks})
		if info, note := d.inspect(); info == nil || info.URL != "http://x:1" {
			t.Errorf("matching start time: %v %q", info, note)
		}
		d.writeFiles(&daemonInfo{PID: os.Getpid(), StartTicks: st.startTicks + 1})
		if info, note := d.inspect(); info != nil || !strings.Contains(note, "pid reused") {
			t.Errorf("other start time: %v %q", info, note)
		}
	}
	d.removeFiles()
	if _, err := os.Stat(d.path(pidFileName)); !os.IsNotExist(err) {
		t.Errorf("pid file after removeFiles: %v", err)
	}
}

func TestIsServeCommand(t *testing.T) {
	for args, want := range map[string]bool{
		"/usr/bin/durable-streams serve --addr x": true,
		"durable-streams serve":                   true,
		"durable-streams stream tail x":           false,
		"sleep 30":                                false,
		"":                                        false,
	} {
		if got := isServeCommand(strings.Fields(args)); got != want {
			t.Errorf("isServeCommand(%q) = %v", args, got)
		}
	}
}
