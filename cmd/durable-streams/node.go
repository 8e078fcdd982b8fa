package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/streamtier/durable-streams/api"
	"github.com/streamtier/durable-streams/sequencer"
)

const nodeUsage = `usage: durable-streams node drain [--url URL] [--token TOKEN] [flags]

Operates on one node of a running server through its admin API.

commands:
  drain    hand off every stream this node holds: seal and upload its hot
           data, save its state for the next owner and release its lease;
           the node then takes no new streams (cluster mode, docs/cluster.md).
           Prints a line per stream as it goes; exit status 1 unless every
           stream was handed off.
             --concurrency N  streams handed off at once (default 64)
             --timeout D      bound on the whole drain (default 10m)

flags of every command:
  --url URL      server URL (default $DURABLE_STREAMS_URL, else http://127.0.0.1:4437)
  --token TOKEN  admin bearer token (default $DS_ADMIN_TOKEN)
  --json         print the API's JSON lines instead of text
`

func nodeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := segmentsCmd{url: envOr("DURABLE_STREAMS_URL", "http://127.0.0.1:4437"), token: envOr("DS_ADMIN_TOKEN", "")}
	if len(args) == 0 {
		fmt.Fprint(stderr, nodeUsage)
		return usageError{errors.New("node: missing command")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, nodeUsage)
		return nil
	case "drain":
	default:
		fmt.Fprint(stderr, nodeUsage)
		return usageError{fmt.Errorf("node: unknown command %q", name)}
	}
	fs := flag.NewFlagSet("node drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage) }
	cmd.common(fs)
	fs.BoolVar(&cmd.json, "json", false, "print the API's JSON lines")
	conc := fs.Int("concurrency", api.DefaultDrainConcurrency, "streams handed off at once")
	timeout := fs.Duration("timeout", api.DefaultDrainTimeout, "bound on the whole drain")
	if err := flagError(fs.Parse(rest)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("node drain: unexpected argument %q", fs.Arg(0))}
	}
	if *conc < 1 || *timeout <= 0 {
		return usageError{errors.New("node drain: --concurrency and --timeout must be positive")}
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	if err := runDrain(ctx, c, stdout, *conc, *timeout, cmd.json); err != nil {
		return fmt.Errorf("node drain: %w", err)
	}
	return nil
}

// runDrain calls the drain endpoint and prints its progress lines as they
// arrive.
func runDrain(ctx context.Context, c *adminClient, w io.Writer, conc int, timeout time.Duration, raw bool) error {
	q := url.Values{"concurrency": {strconv.Itoa(conc)}, "timeout": {timeout.String()}}
	body, err := c.open(ctx, http.MethodPost, "node/drain", q)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var last api.DrainReport
	for sc.Scan() {
		var r api.DrainReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("bad answer line: %w", err)
		}
		if raw {
			fmt.Fprintf(w, "%s\n", sc.Bytes())
		} else if !r.Done {
			fmt.Fprintf(w, "%d/%d handed off, %d failed\n", r.HandedOff, r.Total, r.Failed)
		}
		last = r
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if !last.Done {
		return errors.New("the answer ended before the drain did (is the server still up?)")
	}
	if !raw {
		fmt.Fprintf(w, "drained: %d of %d streams handed off, %d failed\n", last.HandedOff, last.Total, last.Failed)
		for _, f := range last.Failures {
			fmt.Fprintf(w, "  stream %d: %s\n", f.StreamID, f.Error)
		}
	}
	if last.Error != "" {
		return errors.New(last.Error)
	}
	return nil
}

// drainBeforeExit hands off every stream of a cluster node that is
// stopping, for up to timeout, while it still serves requests (the
// streams not yet handed off keep taking appends). Streams it could not
// hand off stay in the data directory, served again when the node
// returns.
func drainBeforeExit(reg *sequencer.Registry, timeout time.Duration, lg *slog.Logger) {
	lg.Info("draining before exit", "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := reg.Drain(ctx, api.DefaultDrainConcurrency, func(p sequencer.DrainProgress) {
		if n := p.HandedOff + p.Failed; n == p.Total || n%100 == 0 {
			lg.Info("drain progress", "handed_off", p.HandedOff, "failed", p.Failed, "total", p.Total)
		}
	})
	if err != nil {
		lg.Warn("drain did not finish; the streams not handed off wait for this node's return", "handed_off", p.HandedOff,
			"total", p.Total, "err", err)
		return
	}
	lg.Info("drained", "streams", p.Total)
}
