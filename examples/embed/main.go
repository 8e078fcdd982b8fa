// Command embed runs a Durable Streams server inside an application's own
// HTTP server: the application keeps its routes, mounts the streams API
// under /streams/, and uses hooks to check appends, count them, and log
// stream creation and deletion. Every create and delete is also recorded
// in the stream __registry__, which clients can follow.
//
//	go run ./examples/embed -addr 127.0.0.1:8080
//	curl -X PUT -H 'Content-Type: application/json' localhost:8080/streams/v1/stream/announcements
//	curl -X POST -H 'Content-Type: application/json' -H 'X-Role: editor' \
//	     -d '{"text":"hello"}' localhost:8080/streams/v1/stream/announcements
//	curl 'localhost:8080/streams/v1/stream/__registry__?offset=-1'
//	curl localhost:8080/stats
//
// The X-Role header stands in for the application's real authorization.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dataDir := flag.String("data-dir", "./embed-data", "data directory of the streams")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lg := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *addr, *dataDir, lg, func(a net.Addr) { lg.Info("listening", "addr", a.String()) }); err != nil {
		log.Fatal(err)
	}
}

// run serves the application on addr until ctx is done; ready, if not
// nil, is told the listening address.
func run(ctx context.Context, addr, dataDir string, lg *slog.Logger, ready func(net.Addr)) error {
	var appends atomic.Int64
	srv, err := server.New(ctx, server.Config{
		DataDir:        dataDir,
		Logger:         lg,
		RegistryStream: "__registry__",
		Hooks: hooks.Hooks{
			// Only editors may post to announcements/ streams.
			BeforeAppend: func(ctx context.Context, a *hooks.AppendInfo) error {
				if strings.HasPrefix(a.Path, "announcements") && a.Header.Get("X-Role") != "editor" {
					return hooks.Reject(http.StatusForbidden, "only editors may post announcements")
				}
				return nil
			},
			AfterAppend: func(ctx context.Context, r hooks.AppendResult) {
				appends.Add(1)
				lg.Info("appended", "stream", r.Path, "messages", r.Messages, "next_offset", r.NextOffset)
			},
			OnStreamCreated: func(ctx context.Context, s hooks.StreamInfo) {
				lg.Info("stream created", "stream", s.Path, "content_type", s.ContentType)
			},
			OnStreamDeleted: func(ctx context.Context, s hooks.StreamInfo) {
				lg.Info("stream deleted", "stream", s.Path, "expired", s.Expired)
			},
		},
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/streams/", http.StripPrefix("/streams", srv.Handler()))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"appends\":%d}\n", appends.Load())
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	// The stream handler bounds request bodies itself; connection timeouts
	// and bounds are the http.Server's and the listener's. No ReadTimeout
	// or WriteTimeout: they would cut long-polls and SSE responses.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(srv.Listener(ln)) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.BeginShutdown() // ends long-polls and SSE so that Shutdown is quick
	shutErr := hs.Shutdown(shutCtx)
	closeErr := srv.Close(shutCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, shutErr, closeErr)
}
