package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"
)

// Exit statuses beyond exitOK, exitError and exitUsage (see docs/cli.md).
const (
	// exitNotFound: the stream does not exist, or (server status) the
	// server is not running, like LSB's "program is not running".
	exitNotFound = 3
	// exitConflict: the request conflicts with the stream's state: it is
	// closed, or exists with another configuration.
	exitConflict = 4
)

// exitCodeError makes the process exit with code; with a nil err nothing
// is printed (the command already said what there is to say).
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitCodeError) Unwrap() error { return e.err }

const serverUsage = `usage: durable-streams server <command> [flags]

Runs the server in the background, with its pid, URL and log in a state
directory (default $DS_STATE_DIR, else $XDG_STATE_HOME/durable-streams, else
~/.local/state/durable-streams).

commands:
  start    start the server unless it runs; waits until it is ready and
           prints its URL
             --addr A       listen address (default $DS_ADDR, else 127.0.0.1:4437)
             --port P       listen on port P (of the --addr host, default
                            127.0.0.1) ($DS_PORT)
             --data-dir D   data directory (default <state dir>/data)
             --timeout T    how long to wait for readiness (default 30s)
             -- FLAGS...    further flags for durable-streams serve
  stop     stop it: SIGTERM, SIGKILL after --timeout (default 30s)
  restart  stop, then start with the same settings (flags of start override)
  status   print whether it runs, with pid, URL, data dir and uptime;
           exit status 0 if it runs, 3 if not (--json for JSON)
  run      run the server in the foreground: the same as durable-streams
           serve, with the same flags

flags of every command:
  --state-dir D  the state directory (DS_STATE_DIR)
`

func serverCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, serverUsage)
		return usageError{errors.New("server: missing command")}
	}
	name, rest := args[0], args[1:]
	fs := flag.NewFlagSet("server "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serverUsage) }
	stateDir := fs.String("state-dir", "", "state directory (DS_STATE_DIR)")
	var so startOptions
	port := -1
	var stopTimeout time.Duration
	var asJSON bool
	switch name {
	case "start", "restart":
		fs.StringVar(&so.addr, "addr", "", "listen address (DS_ADDR, default 127.0.0.1:4437)")
		fs.StringVar(&so.dataDir, "data-dir", "", "data directory (default <state dir>/data)")
		fs.DurationVar(&so.timeout, "timeout", 30*time.Second, "how long to wait for readiness")
		portFlag(fs, &port)
		if name == "restart" {
			fs.DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "SIGKILL the old server after this")
		}
	case "stop":
		fs.DurationVar(&stopTimeout, "timeout", 30*time.Second, "SIGKILL after this")
	case "status":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "run":
		// An alias of serve, for users of CLIs that spell it so.
		return serve(ctx, rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, serverUsage)
		return nil
	default:
		fmt.Fprint(stderr, serverUsage)
		return usageError{fmt.Errorf("server: unknown command %q", name)}
	}
	if err := flagError(fs.Parse(rest)); err != nil {
		return err
	}
	so.args = fs.Args()
	if name != "start" && name != "restart" && fs.NArg() > 0 {
		return usageError{fmt.Errorf("server %s: unexpected argument %q", name, fs.Arg(0))}
	}
	d, err := newDaemon(*stateDir)
	if err != nil {
		return err
	}
	switch name {
	case "start":
		if so.addr == "" {
			so.addr = envOr("DS_ADDR", defaultDaemonAddr)
		}
		if so.addr, err = withPort(so.addr, port); err != nil {
			return err
		}
		return serverStart(ctx, d, so, stdout, stderr)
	case "stop":
		info, err := d.stop(ctx, stopTimeout)
		if err != nil {
			return err
		}
		if info == nil {
			fmt.Fprintln(stderr, "durable-streams: server not running")
		} else {
			fmt.Fprintf(stderr, "durable-streams: stopped server (pid %d)\n", info.PID)
		}
		return nil
	case "restart":
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		old, err := d.stop(ctx, stopTimeout)
		if err != nil {
			return err
		}
		if old != nil {
			fmt.Fprintf(stderr, "durable-streams: stopped server (pid %d)\n", old.PID)
			// The new server runs like the old one unless told otherwise.
			if !set["addr"] {
				so.addr = old.Addr
			}
			if !set["data-dir"] {
				so.dataDir = old.DataDir
			}
			if len(so.args) == 0 {
				so.args = old.Args
			}
		}
		if so.addr == "" {
			so.addr = envOr("DS_ADDR", defaultDaemonAddr)
		}
		if set["port"] {
			if so.addr, err = withPort(so.addr, port); err != nil {
				return err
			}
		}
		return serverStart(ctx, d, so, stdout, stderr)
	default: // status
		return serverStatus(ctx, d, stdout, stderr, asJSON)
	}
}

func serverStart(ctx context.Context, d daemon, so startOptions, stdout, stderr io.Writer) error {
	info, started, err := d.start(ctx, so)
	if err != nil {
		return err
	}
	if started {
		fmt.Fprintf(stderr, "durable-streams: started server (pid %d, data %s, log %s)\n", info.PID, info.DataDir, info.Log)
	} else {
		fmt.Fprintf(stderr, "durable-streams: server already running (pid %d)\n", info.PID)
	}
	fmt.Fprintln(stdout, info.URL)
	return nil
}

// statusReport is the JSON of server status --json.
type statusReport struct {
	Running  bool      `json:"running"`
	PID      int       `json:"pid,omitempty"`
	URL      string    `json:"url,omitempty"`
	DataDir  string    `json:"data_dir,omitempty"`
	Log      string    `json:"log,omitempty"`
	Started  time.Time `json:"started_at,omitzero"`
	UptimeS  float64   `json:"uptime_seconds,omitempty"`
	Ready    bool      `json:"ready"`
	StateDir string    `json:"state_dir"`
	Note     string    `json:"note,omitempty"`
}

func serverStatus(ctx context.Context, d daemon, stdout, stderr io.Writer, asJSON bool) error {
	info, note := d.inspect()
	rep := statusReport{StateDir: d.dir, Note: note}
	if info != nil {
		rep.Running, rep.PID, rep.URL, rep.DataDir, rep.Log = true, info.PID, info.URL, info.DataDir, info.Log
		if !info.StartedAt.IsZero() {
			rep.Started = info.StartedAt
			rep.UptimeS = time.Since(info.StartedAt).Round(time.Second).Seconds()
		}
		rep.Ready = info.URL != "" && probeReady(ctx, info.URL)
	} else if note != "" {
		// Clean up after a daemon that died, unless a start or stop is
		// under way (it holds the lock and will clean up itself).
		if f, err := openLock(d); err == nil {
			if ok, _ := tryLock(f); ok {
				if again, _ := d.inspect(); again == nil {
					d.removeFiles()
					rep.Note += " (removed)"
				}
			}
			f.Close()
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		if rep.Running {
			fmt.Fprintln(tw, "running")
			fmt.Fprintf(tw, "pid:\t%d\n", rep.PID)
			fmt.Fprintf(tw, "url:\t%s\n", rep.URL)
			fmt.Fprintf(tw, "ready:\t%t\n", rep.Ready)
			fmt.Fprintf(tw, "data dir:\t%s\n", rep.DataDir)
			fmt.Fprintf(tw, "log:\t%s\n", rep.Log)
			if !rep.Started.IsZero() {
				fmt.Fprintf(tw, "uptime:\t%v (since %s)\n", time.Duration(rep.UptimeS)*time.Second, rep.Started.Local().Format(time.DateTime))
			}
		} else {
			fmt.Fprintln(tw, "stopped")
			fmt.Fprintf(tw, "state dir:\t%s\n", rep.StateDir)
			if note != "" {
				fmt.Fprintf(tw, "note:\t%s\n", rep.Note)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !rep.Running {
		return exitCodeError{code: exitNotFound}
	}
	return nil
}

func openLock(d daemon) (*os.File, error) {
	return os.OpenFile(d.path(lockFileName), os.O_CREATE|os.O_RDWR, 0o600)
}

// probeReady asks GET /readyz once, briefly.
func probeReady(ctx context.Context, baseURL string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
