package netnstest

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a tiny network tool inside a
// namespace instead of running tests (see TestHelperProcess).
const helperEnv = "NETNSTEST_HELPER"

// TestHelperProcess is not a test: run with $NETNSTEST_HELPER set, it is the
// tool the other tests start inside a namespace. "listen ADDR" accepts
// connections on ADDR (printing "ready ADDR" first) until killed; "dial
// ADDR" connects to ADDR and exits 0, or exits 1 after a second.
func TestHelperProcess(t *testing.T) {
	mode, addr, ok := strings.Cut(os.Getenv(helperEnv), " ")
	if !ok {
		t.Skip("helper process only")
	}
	switch mode {
	case "listen":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("ready", l.Addr())
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(2)
}

// helper returns the test binary as a helper command inside h.
func helper(h *Host, mode, addr string) *exec.Cmd {
	cmd := h.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+" "+addr)
	return cmd
}

// listenIn runs a listener on addr inside h until the test ends.
func listenIn(t *testing.T, h *Host, addr string) {
	t.Helper()
	cmd := helper(h, "listen", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("listener in %s: %q %v", h.Name, line, err)
	}
}

// acceptAll accepts (and closes) connections on a free port of addr in the
// root namespace until the test ends, and returns host:port.
func acceptAll(t *testing.T, addr netip.Addr) string {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// dialFrom reports whether a connection from h (nil: the root namespace)
// to addr succeeds.
func dialFrom(h *Host, addr string) bool {
	if h == nil {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	return helper(h, "dial", addr).Run() == nil
}

// eventually waits up to 5 s for dialFrom(h, addr) to report want (a healed
// link needs a moment for the bridge to forward again).
func eventually(t *testing.T, h *Host, addr string, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for dialFrom(h, addr) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: reachable = %v, want %v", what, !want, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNet checks reachability between the root namespace and hosts and
// between hosts, and that Cut/Heal and Block/Unblock change exactly what
// they say.
func TestNet(t *testing.T) {
	nw := Start(t, 2)
	h0, h1 := nw.Hosts[0], nw.Hosts[1]
	if !nw.Prefix.Contains(nw.Root) || !nw.Prefix.Contains(h0.Addr) || !nw.Prefix.Contains(h1.Addr) || h0.Addr == h1.Addr {
		t.Fatalf("addresses: prefix %v root %v hosts %v %v", nw.Prefix, nw.Root, h0.Addr, h1.Addr)
	}
	rootAddr := acceptAll(t, nw.Root)
	h0Addr := netip.AddrPortFrom(h0.Addr, 7000).String()
	listenIn(t, h0, h0Addr)
	if out := h0.Run(t, "ip", "-br", "addr"); !strings.Contains(out, h0.Addr.String()) {
		t.Fatalf("host 0 does not hold %v:\n%s", h0.Addr, out)
	}

	eventually(t, h0, rootAddr, true, "host 0 -> bridge")
	eventually(t, nil, h0Addr, true, "root -> host 0")
	eventually(t, h1, h0Addr, true, "host 1 -> host 0")
	if dialFrom(h1, "127.0.0.1:1") || dialFrom(h1, netip.AddrPortFrom(h0.Addr, 7001).String()) {
		t.Fatal("connected to a port nobody listens on")
	}

	h0.Cut(t)
	eventually(t, nil, h0Addr, false, "root -> cut host 0")
	eventually(t, h1, h0Addr, false, "host 1 -> cut host 0")
	eventually(t, h0, h0Addr, true, "cut host 0 -> itself")
	h0.Heal(t)
	eventually(t, nil, h0Addr, true, "root -> healed host 0")
	eventually(t, h1, h0Addr, true, "host 1 -> healed host 0")

	// A second root address, blocked alone.
	svc := nw.AddRootAddr(t)
	if svc == nw.Root || !nw.Prefix.Contains(svc) {
		t.Fatalf("AddRootAddr = %v", svc)
	}
	svcAddr := acceptAll(t, svc)
	eventually(t, h1, svcAddr, true, "host 1 -> second root address")

	h1.Block(t, svc)
	eventually(t, h1, svcAddr, false, "host 1 -> blocked second root address")
	eventually(t, h1, rootAddr, true, "host 1 -> bridge while the second address is blocked")
	eventually(t, h1, h0Addr, true, "host 1 -> host 0 while the second address is blocked")
	eventually(t, h0, svcAddr, true, "host 0 -> second root address while host 1 is blocked")
	h1.Unblock(t, svc)
	eventually(t, h1, svcAddr, true, "host 1 -> unblocked second root address")
}

// TestCleanup checks that a network is gone after its test, and that Sweep
// removes the leftovers of a process that no longer exists but keeps those
// of running ones.
func TestCleanup(t *testing.T) {
	Require(t)
	var nw *Net
	if !t.Run("make", func(t *testing.T) { nw = Start(t, 1) }) {
		t.FailNow()
	}
	if exists(t, "netns", nw.Hosts[0].Name) || exists(t, "netns", nw.sw) || exists(t, "link", nw.link) {
		t.Fatal("network left behind after its test")
	}

	// A pid above the kernel's largest possible pid_max (2^22) never runs.
	dead := tagFor(1<<22+1, 1)
	alive := tagFor(os.Getpid(), 36*36-1) // a seq no Start of this test reaches
	for _, tag := range []string{dead, alive} {
		for _, args := range [][]string{
			{"netns", "add", tag + "-sw"},
			{"netns", "add", tag + "-n0"},
			{"link", "add", "name", tag + "-r", "type", "veth", "peer", "name", "root", "netns", tag + "-sw"},
		} {
			if err := ip(args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		_ = ip("netns", "del", alive+"-n0")
		_ = ip("netns", "del", alive+"-sw")
		_ = ip("link", "del", alive+"-r")
	})
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{dead + "-n0", dead + "-sw", dead + "-r"} {
		if exists(t, "netns", name) || exists(t, "link", name) {
			t.Errorf("%s of a dead process survived Sweep", name)
		}
	}
	if !exists(t, "netns", alive+"-n0") || !exists(t, "netns", alive+"-sw") || !exists(t, "link", alive+"-r") {
		t.Error("Sweep removed what a running process made")
	}
}

// exists reports whether `ip` lists a namespace or link of that name.
func exists(t *testing.T, kind, name string) bool {
	t.Helper()
	args := []string{"netns", "list"}
	if kind == "link" {
		args = []string{"-o", "link", "show"}
	}
	out, err := ipOutput(args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		f, _, _ = strings.Cut(strings.TrimSuffix(f, ":"), "@")
		if f == name {
			return true
		}
	}
	return false
}

func TestParseTag(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{tagFor(12345, 7) + "-r", 12345, true},
		{tagFor(1, 1) + "-n3", 1, true},
		{"dtx", 0, false},
		{"dt-1-r", 0, false},
		{"eth0", 0, false},
		{"docker0", 0, false},
		{"dtzz", 0, false},
	} {
		pid, ok := parseTag(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("parseTag(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
	if n := len(tagFor(1<<22, 36*36-1) + "-r"); n > 15 {
		t.Errorf("longest interface name has %d bytes, more than 15", n)
	}
}

func TestFreePrefix(t *testing.T) {
	out := `default via 192.0.2.1 dev eth0
10.1.2.0/24 dev br0 proto kernel scope link src 10.1.2.1
local 10.9.9.9 dev lo table local
2: eth0    inet 10.5.0.7/16 brd 10.5.255.255 scope global eth0`
	used := prefixesIn(out)
	for _, tc := range []struct {
		p    string
		free bool
	}{
		{"10.1.2.0/24", false},
		{"10.1.3.0/24", true},
		{"10.9.9.0/24", false},
		{"10.5.77.0/24", false},
		{"10.6.0.0/24", true},
	} {
		if got := !overlapsAny(netip.MustParsePrefix(tc.p), used); got != tc.free {
			t.Errorf("%s free = %v, want %v (used %v)", tc.p, got, tc.free, used)
		}
	}
	Require(t)
	p, err := freePrefix()
	if err != nil || p.Bits() != 24 || p.Addr().As4()[0] != 10 {
		t.Fatalf("freePrefix = %v, %v", p, err)
	}
}
