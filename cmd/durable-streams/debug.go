package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves the runtime profiles of net/http/pprof on their own
// listener at addr, apart from the API: profiles reveal internals and cost
// CPU, so they are neither behind the API's access control nor reachable
// through the CDN. It returns the listener's address and a function that
// stops it.
func serveDebug(addr string, lg *slog.Logger) (bound net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	if ip, ok := ln.Addr().(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
		lg.Warn("the debug listener is reachable from other machines; profiles reveal internals", "debug_addr", ln.Addr().String())
	}
	lg.Info("serving profiles", "debug_addr", ln.Addr().String())
	return ln.Addr(), func() { hs.Close() }, nil
}
