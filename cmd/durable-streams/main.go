// Command durable-streams runs and administers a Durable Streams server.
//
//	durable-streams serve [flags]   run the server (flags also from DS_* env vars)
//	durable-streams segments <command> [flags]
//	                                administer cold segments of a running server
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

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: durable-streams <command> [flags]

commands:
  serve    run the server (see durable-streams serve -h)
  segments list, stats, verify, gc: administer the cold segments of a
           running server (see durable-streams segments help)
`)
}
