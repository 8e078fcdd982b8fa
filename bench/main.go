// Command bench is the load program of the Durable Streams server. It runs
// workloads against any server that speaks the protocol on loopback (this
// one, or the upstream Node reference server) and prints one result line per
// measurement, so scripts/bench-compare.sh can put two servers side by side.
//
//	go run ./bench -server 'durable-streams serve --addr {addr} --data-dir {dir}' \
//	    -base /v1/stream/ -workload append-1x64,read-hot
//
// With -server the program starts the server itself ({addr} and {dir} are
// filled in), samples its memory and open files, and can restart it (the
// restart workload). With -url it uses a server that is already running.
// `bench report FILE...` turns -json results of several runs into a
// Markdown table of medians and ratios.
// Every workload stops by itself; nothing but loopback is ever contacted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command-line settings shared by every workload.
type options struct {
	serverCmd string        // command template that starts the server
	readyPath string        // path polled until the server answers
	target    string        // label in the results (ours, node, ...)
	url       string        // base URL of an already running server
	base      string        // path prefix of streams, e.g. /v1/stream/
	duration  time.Duration // length of throughput workloads
	scale     float64       // scales data sizes and counts (quick runs)
	json      bool          // print results as JSON lines
	keep      bool          // keep the data directory
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return report(args[1:], stdout, stderr)
	}
	var o options
	var workloads string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.serverCmd, "server", "", "command that starts the server; {addr} and {dir} are replaced (exclusive with -url)")
	fs.StringVar(&o.readyPath, "ready-path", "/", "path polled until the started server answers with any HTTP status")
	fs.StringVar(&o.url, "url", "", "base URL of a running server, e.g. http://127.0.0.1:4437 (loopback only)")
	fs.StringVar(&o.base, "base", "/v1/stream/", "path prefix under which streams live")
	fs.StringVar(&o.target, "target", "server", "label of the server in the results")
	fs.StringVar(&workloads, "workload", "quick", "comma-separated workloads, or a group: quick, all ("+strings.Join(workloadNames(), ", ")+")")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each throughput measurement")
	fs.Float64Var(&o.scale, "scale", 1, "multiplies data sizes and subscriber counts (e.g. 0.1 for a smoke run)")
	fs.BoolVar(&o.json, "json", false, "print results as JSON lines instead of a table")
	fs.BoolVar(&o.keep, "keep", false, "keep the server's data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (o.serverCmd == "") == (o.url == "") {
		return errors.New("exactly one of -server and -url is required")
	}
	if o.url != "" {
		if err := checkLoopback(o.url); err != nil {
			return err
		}
	}
	names, err := expandWorkloads(workloads)
	if err != nil {
		return err
	}
	lg := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	out := newPrinter(stdout, o.json)
	// A failed workload is reported and the others still run: a peer that
	// cannot do one workload should not cost the whole comparison.
	var failed []string
	for _, name := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lg.Info("workload", "name", name, "target", o.target)
		if err := runWorkload(ctx, o, name, out, lg); err != nil {
			lg.Error("workload failed", "name", name, "target", o.target, "err", err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed workloads: %s", strings.Join(failed, ", "))
	}
	return nil
}

// runWorkload gives one workload a fresh server (when bench starts it), so
// workloads do not see each other's data.
func runWorkload(ctx context.Context, o options, name string, out *printer, lg *slog.Logger) error {
	w := workloads[name]
	env := &env{opt: o, name: name, out: out, lg: lg}
	if o.serverCmd != "" {
		srv, err := startServer(ctx, o.serverCmd, o.readyPath, lg)
		if err != nil {
			return err
		}
		defer srv.close(o.keep)
		env.srv = srv
		env.baseURL = srv.baseURL
	} else {
		env.baseURL = strings.TrimRight(o.url, "/")
	}
	env.client = newClient(env.baseURL + o.base)
	return w.run(ctx, env)
}

func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad -url: %w", err)
	}
	switch u.Hostname() {
	case "127.0.0.1", "localhost", "::1":
		return nil
	}
	return fmt.Errorf("-url must point at loopback, got %q", u.Host)
}

func expandWorkloads(s string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch n {
		case "":
		case "all":
			names = append(names, workloadNames()...)
		case "quick":
			names = append(names, quickWorkloads...)
		default:
			if _, ok := workloads[n]; !ok {
				return nil, fmt.Errorf("unknown workload %q (have: %s)", n, strings.Join(workloadNames(), ", "))
			}
			names = append(names, n)
		}
	}
	return names, nil
}

func workloadNames() []string {
	names := make([]string, 0, len(workloads))
	for n := range workloads {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return workloads[a].order - workloads[b].order })
	return names
}

// printer writes result lines.
type printer struct {
	w    io.Writer
	json bool
}

func newPrinter(w io.Writer, asJSON bool) *printer { return &printer{w: w, json: asJSON} }

// result is one measured figure.
type result struct {
	Target   string  `json:"target"`
	Workload string  `json:"workload"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
}

func (p *printer) print(r result) {
	if p.json {
		b, _ := json.Marshal(r)
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "%-8s %-22s %-18s %14.3f %s\n", r.Target, r.Workload, r.Metric, r.Value, r.Unit)
}
