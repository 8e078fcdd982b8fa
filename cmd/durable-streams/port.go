package main

import (
	"flag"
	"fmt"
	"net"
	"strconv"
)

// portFlag registers --port, whose default comes from DS_PORT; -1 means
// not set.
func portFlag(fs *flag.FlagSet, p *int) {
	fs.IntVar(p, "port", int(envInt("DS_PORT", -1)), "listen on this port of the --addr host (default 127.0.0.1); overrides the port of --addr (DS_PORT)")
}

// withPort replaces the port of addr by port, unless port is -1 (--port
// not given): "--port 8080" is short for "--addr 127.0.0.1:8080", and
// keeps the host of an --addr or DS_ADDR.
func withPort(addr string, port int) (string, error) {
	if port == -1 {
		return addr, nil
	}
	if port < 0 || port > 65535 {
		return "", usageError{fmt.Errorf("bad --port %d: want 0 to 65535", port)}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError{fmt.Errorf("bad --addr %q: %w", addr, err)}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
