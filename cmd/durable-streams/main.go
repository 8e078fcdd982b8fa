// Command durable-streams runs and administers a Durable Streams server.
//
//	durable-streams serve [flags]   run the server (flags also from DS_* env vars)
//	durable-streams segments <command> [flags]
//	                                administer cold segments of a running server
//	durable-streams cluster status [flags]
//	                                nodes, liveness and leases of a cluster
//	durable-streams server start|stop|restart|status|run
//	                                run the server in the background (run: in
//	                                the foreground, like serve)
//	durable-streams stream <command> [flags]
//	                                create, append to, read and follow streams
//	durable-streams token [flags]   print a signed JWT for access control
//	durable-streams node drain [flags]
//	                                hand off every stream of a node (cluster mode)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes scripts can rely on.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithInput(ctx, args, os.Stdin, stdout, stderr)
}

// runWithInput is run with stdin given, for tests.
func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "segments":
		err = segments(ctx, args[1:], stdout, stderr)
	case "cluster":
		err = clusterCmd(ctx, args[1:], stdout, stderr)
	case "node":
		err = nodeCmd(ctx, args[1:], stdout, stderr)
	case "server":
		err = serverCmd(ctx, args[1:], stdout, stderr)
	case "stream":
		err = streamCmd(ctx, args[1:], stdin, stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "durable-streams: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ce exitCodeError
	if errors.As(err, &ce) {
		if ce.err != nil {
			fmt.Fprintln(stderr, "durable-streams:", err)
		}
		return ce.code
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "durable-streams:", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "durable-streams:", err)
		return exitError
	}
	return exitOK
}

type usageError struct{ error }

// flagError classifies an error from parsing flags: -h passes through as
// flag.ErrHelp (the command exits 0 after the usage text), anything else is
// a usage error.
func flagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: durable-streams <command> [flags]

commands:
  serve    run the server (see durable-streams serve -h)
  segments list, stats, verify, gc: administer the cold segments of a
           running server (see durable-streams segments help)
  cluster  status: the nodes of a cluster, which are live, and the leases
           and streams of each (see durable-streams cluster help)
  server   start, stop, restart, status: run the server in the background;
           run: in the foreground, like serve (see durable-streams server help)
  stream   create, append, get, tail, subscribe, head, close, delete, list: use streams,
           starting the background server if needed (see durable-streams stream help)
  token    print a signed JWT for access control (see durable-streams token -h)
  node     drain: hand off every stream of a running node (see
           durable-streams node help)

exit status: 0 ok, 1 error, 2 usage error, 3 stream not found (server
status: not running), 4 conflict (stream closed or exists differently)
`)
}
