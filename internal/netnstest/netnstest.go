// Package netnstest gives a test several hosts on one machine: Linux network
// namespaces on one private /24 chosen at random, joined by a bridge, with
// the root namespace (the test and the servers it runs, such as PostgreSQL
// and MinIO) on the same network. Servers of the root namespace listen on
// its address there (Net.Root) to be reachable from every host; processes
// run inside a host with `ip netns exec`; a host can be cut off entirely
// (its link down) or from one address (a blackhole route in its namespace)
// and healed.
//
// Layout of a network of n hosts with tag T (see tagFor):
//
//	namespace T-sw: bridge br0; veths hK and root enslaved to it
//	namespace T-nK: lo up; eth0 (the peer of hK) with 10.X.Y.(10+K)/24
//	root namespace: T-r (the peer of root) with 10.X.Y.1/24, and .2-.9
//	                from AddRootAddr
//
// The bridge has a namespace of its own so that the root namespace's
// firewall never sees traffic between hosts: with br_netfilter loaded,
// bridged packets traverse iptables' FORWARD chain of the bridge's
// namespace, whose policy a container runtime may have set to DROP in the
// root namespace. Traffic between the root namespace and a host is the
// root namespace's own input and output.
//
// Everything is removed by a cleanup of the test that made it, which also
// runs after a failed or panicking test. A test binary killed before its
// cleanups (go test -timeout, SIGKILL) leaves its namespaces and links
// behind: their names carry the creating process's id, and Start removes
// those of processes that no longer exist before making new ones.
//
// It needs root and iproute2 (`ip`, Debian's iproute2 package, installed by
// scripts/setup.sh). Without them the test is skipped, unless $CI is set:
// then it fails, so that a CI job without them cannot pass unnoticed.
package netnstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/proctest"
)

const (
	// namePrefix starts every namespace and link this package makes, so
	// that leftovers can be recognized (see parseTag).
	namePrefix = "dt"
	// firstHost is the last octet of host 0's address.
	firstHost = 10
	// MaxHosts bounds the hosts of one network (addresses .10 to .209).
	MaxHosts = 200
	// cmdTimeout bounds every `ip` invocation.
	cmdTimeout = 30 * time.Second
)

// Net is a network of hosts and the root namespace.
type Net struct {
	// Prefix is the network's /24, e.g. 10.83.7.0/24.
	Prefix netip.Prefix
	// Root is the root namespace's address on the network (.1), the source
	// address of its connections to hosts: servers of the root namespace
	// that hosts must reach listen on it (or on an AddRootAddr address).
	Root netip.Addr
	// Hosts are the namespaces, in order.
	Hosts []*Host

	tag   string
	sw    string       // the switch namespace holding the bridge
	link  string       // the root namespace's interface on the network
	extra atomic.Int32 // root addresses added by AddRootAddr
}

// Host is one network namespace joined to the bridge.
type Host struct {
	// Name is the namespace's name (for `ip netns exec`).
	Name string
	// Addr is the host's address on the network.
	Addr netip.Addr

	net  *Net
	port string // the host's port on the bridge, in the switch namespace
}

// seq numbers the networks of this process, for unique names.
var seq atomic.Int64

// Require skips the test when namespaces cannot be made here (not root, no
// `ip`), or fails it when $CI is set.
func Require(t testing.TB) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "network namespaces need root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "the ip command (iproute2) is not on PATH; run scripts/setup.sh"
	}
	if why != "" {
		unavailable(t, why)
	}
}

// unavailable skips t because namespaces cannot be made, or fails it when
// $CI is set.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal("netnstest: " + why + " [CI is set, so this is a failure, not a skip]")
	}
	t.Skip("netnstest: " + why)
}

// Start makes a network of n hosts and removes it when the test ends. It
// first removes the leftovers of earlier test processes that were killed.
func Start(t testing.TB, n int) *Net {
	t.Helper()
	Require(t)
	if n < 1 || n > MaxHosts {
		t.Fatalf("netnstest: %d hosts, want 1 to %d", n, MaxHosts)
	}
	if err := Sweep(); err != nil {
		t.Logf("netnstest: removing leftovers: %v", err)
	}
	prefix, err := freePrefix()
	if err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	tag := tagFor(os.Getpid(), seq.Add(1))
	nw := &Net{
		Prefix: prefix,
		Root:   prefix.Addr().Next(),
		tag:    tag,
		sw:     tag + "-sw",
		link:   tag + "-r",
	}
	// Registered before anything exists, so a failure halfway still
	// removes what was made.
	t.Cleanup(func() {
		if err := nw.remove(); err != nil {
			t.Errorf("netnstest: %v", err)
		}
	})
	steps := [][]string{
		{"netns", "add", nw.sw},
		{"-n", nw.sw, "link", "add", "name", "br0", "type", "bridge"},
		{"-n", nw.sw, "link", "set", "br0", "up"},
		{"link", "add", "name", nw.link, "type", "veth", "peer", "name", "root", "netns", nw.sw},
		{"-n", nw.sw, "link", "set", "root", "master", "br0"},
		{"-n", nw.sw, "link", "set", "root", "up"},
		{"addr", "add", netip.PrefixFrom(nw.Root, prefix.Bits()).String(), "dev", nw.link},
		{"link", "set", nw.link, "up"},
	}
	for i, s := range steps {
		err := ip(s...)
		if err != nil && i == 0 && (strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied")) {
			// Root without CAP_SYS_ADMIN, e.g. in an unprivileged container.
			unavailable(t, err.Error())
		}
		if err != nil {
			t.Fatalf("netnstest: %v", err)
		}
	}
	addr := prefix.Addr()
	for range firstHost {
		addr = addr.Next()
	}
	for i := range n {
		h := &Host{
			Name: fmt.Sprintf("%s-n%d", tag, i),
			Addr: addr,
			net:  nw,
			port: fmt.Sprintf("h%d", i),
		}
		addr = addr.Next()
		nw.Hosts = append(nw.Hosts, h)
		if err := h.create(); err != nil {
			t.Fatalf("netnstest: host %d: %v", i, err)
		}
	}
	return nw
}

// AddRootAddr gives the root namespace one more address on the network
// (.2, .3, ... up to .9) and returns it. A server listening there alone can
// be blocked from a host (Block) while the test still reaches that host
// from Root, the source address of the root namespace's own connections.
func (nw *Net) AddRootAddr(t testing.TB) netip.Addr {
	t.Helper()
	n := nw.extra.Add(1)
	if n >= firstHost-1 {
		t.Fatalf("netnstest: more than %d root addresses", firstHost-2)
	}
	a := nw.Root
	for range n {
		a = a.Next()
	}
	if err := ip("addr", "add", netip.PrefixFrom(a, nw.Prefix.Bits()).String(), "dev", nw.link); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	return a
}

// create makes the host's namespace and joins it to the bridge.
func (h *Host) create() error {
	sw := h.net.sw
	steps := [][]string{
		{"netns", "add", h.Name},
		// The pair is made in the switch namespace with its peer inside
		// the host, so no name can clash with the root namespace's.
		{"-n", sw, "link", "add", "name", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
		{"-n", sw, "link", "set", h.port, "master", "br0"},
		{"-n", sw, "link", "set", h.port, "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
		{"-n", h.Name, "addr", "add", netip.PrefixFrom(h.Addr, h.net.Prefix.Bits()).String(), "dev", "eth0"},
		{"-n", h.Name, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the namespaces (their veth pairs and the bridge go with
// them) and the root namespace's link. Errors are collected, not stopped
// at.
func (nw *Net) remove() error {
	var errs []string
	names := []string{nw.sw}
	for _, h := range nw.Hosts {
		names = append(names, h.Name)
	}
	for _, name := range names {
		// Deleting a namespace destroys its interfaces, and a veth pair
		// with either end, even while a process still runs in it.
		if err := ip("netns", "del", name); err != nil && !notFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if err := ip("link", "del", nw.link); err != nil && !notFound(err) {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing network %s: %s", nw.tag, strings.Join(errs, "; "))
	}
	return nil
}

// Command returns a command that runs name with args inside the host's
// namespace. `ip netns exec` execs it in place, so the process's id is the
// command's and signals reach it directly.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", h.execArgs(name, args)...)
}

// execArgs are the arguments of `ip` that run name with args in the host.
func (h *Host) execArgs(name string, args []string) []string {
	return append([]string{"netns", "exec", h.Name, name}, args...)
}

// Prefix returns the arguments that run a command inside the host's
// namespace ("ip netns exec <name>"), for harnesses that build their own
// exec.Cmd.
func (h *Host) Prefix() []string { return []string{"ip", "netns", "exec", h.Name} }

// Run runs name with args inside the host's namespace and returns its
// output; a failure fails the test with the output.
func (h *Host) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", h.execArgs(name, args)...)
	out := &proctest.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("netnstest: in %s: %s %s: %v\n%s", h.Name, name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// Cut takes the host off the network: its port on the bridge goes down, so
// every packet to or from it is lost (connections hang rather than fail)
// until Heal. Its own address still works inside the namespace.
func (h *Host) Cut(t testing.TB) {
	t.Helper()
	if err := ip("-n", h.net.sw, "link", "set", h.port, "down"); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
}

// Heal puts a cut host back on the network.
func (h *Host) Heal(t testing.TB) {
	t.Helper()
	if err := ip("-n", h.net.sw, "link", "set", h.port, "up"); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
}

// Block drops the host's traffic to addr (a blackhole route in its
// namespace): new connections fail and established ones stall, while the
// host keeps talking to everyone else. Unblock lifts it.
func (h *Host) Block(t testing.TB, addr netip.Addr) {
	t.Helper()
	if err := ip("-n", h.Name, "route", "add", "blackhole", netip.PrefixFrom(addr, addr.BitLen()).String()); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
}

// Unblock lifts a Block of addr.
func (h *Host) Unblock(t testing.TB, addr netip.Addr) {
	t.Helper()
	if err := ip("-n", h.Name, "route", "del", "blackhole", netip.PrefixFrom(addr, addr.BitLen()).String()); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
}

// Sweep removes the namespaces and links of test processes that no longer
// run. Those of running processes (other tests on the machine) are kept.
func Sweep() error {
	var errs []string
	out, err := ipOutput("netns", "list")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if stale(name) {
			if err := ip("netns", "del", name); err != nil && !notFound(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	out, err = ipOutput("-o", "link", "show")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		// "7: dt1x2y-1-r@if2: <BROADCAST,...>"
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if stale(name) {
			if err := ip("link", "del", name); err != nil && !notFound(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweep: %s", strings.Join(errs, "; "))
	}
	return nil
}

// tagFor names network seq of process pid: "dt" + pid and seq in base 36,
// short enough that tag+"-r" fits an interface name (15 bytes) for any pid
// (at most 2^22, five digits) and seq below 36^2; seq wraps there, long
// after the process's earlier networks are gone.
func tagFor(pid int, seq int64) string {
	return namePrefix + strconv.FormatInt(int64(pid), 36) + "-" + strconv.FormatInt(seq%(36*36), 36)
}

// parseTag returns the process id in a name this package made.
func parseTag(name string) (pid int, ok bool) {
	rest, found := strings.CutPrefix(name, namePrefix)
	if !found {
		return 0, false
	}
	p, rest, found := strings.Cut(rest, "-")
	if !found || rest == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(p, 36, 32)
	if err != nil || n <= 0 {
		return 0, false
	}
	return int(n), true
}

// stale reports whether name was made by this package in a process that
// has exited.
func stale(name string) bool {
	pid, ok := parseTag(name)
	if !ok {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return os.IsNotExist(err)
}

// freePrefix picks a random 10.X.Y.0/24 that overlaps no address or route
// of the root namespace (any routing table).
func freePrefix() (netip.Prefix, error) {
	var used []netip.Prefix
	for _, args := range [][]string{{"-o", "-4", "addr", "show"}, {"-o", "-4", "route", "show", "table", "all"}} {
		out, err := ipOutput(args...)
		if err != nil {
			return netip.Prefix{}, err
		}
		used = append(used, prefixesIn(out)...)
	}
	for range 1000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rand.IntN(256)), byte(rand.IntN(256)), 0}), 24)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free 10.X.Y.0/24 among %d routes and addresses", len(used))
}

// prefixesIn returns every address or prefix in the output of `ip`; a
// default route is not a claim on any particular network.
func prefixesIn(out string) []netip.Prefix {
	var ps []netip.Prefix
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p.Masked())
		} else if a, err := netip.ParseAddr(f); err == nil {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() > 0 && p.Overlaps(u) {
			return true
		}
	}
	return false
}

// ip runs `ip args...`, returning its output in the error.
func ip(args ...string) error {
	_, err := ipOutput(args...)
	return err
}

func ipOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// notFound reports whether err is `ip` saying the object does not exist
// (already removed). "No such device" is the kernel's answer for a veth
// end that went between the lookup and the delete: a namespace's deletion
// destroys the pair's other end asynchronously.
func notFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Cannot find device") || strings.Contains(s, "No such file") ||
		strings.Contains(s, "does not exist") || strings.Contains(s, "No such device")
}
