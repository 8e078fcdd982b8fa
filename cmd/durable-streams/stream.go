package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/streamtier/durable-streams/client"
)

// exitInterrupted is the status of a tail stopped by SIGINT or SIGTERM,
// as a shell reports a command killed by ^C.
const exitInterrupted = 130

const streamUsage = `usage: durable-streams stream <command> [flags] PATH ...

Uses the streams of the server at --url ($DURABLE_STREAMS_URL); without
one, of the local background server, which is started if it is not running
(see durable-streams server help).

commands:
  create PATH    create a stream
                   --content-type T  media type (default application/octet-stream)
                   --json            short for --content-type application/json
                   --ttl S           expire S seconds (or a duration: 1h) after last use
                   --expires-at T    expire at T (RFC 3339)
  append PATH [FILE...|-]
                 append -m/-e values, else the files, else stdin; prints the
                 next offset. Large input goes in appends of --chunk-size bytes
                 (not atomic as a whole); JSON streams take a sequence of JSON
                 values (e.g. JSON lines), one message each
                   -m TEXT           a message: TEXT (a JSON string on JSON streams); repeatable
                   -e JSON           a JSON value as one message (JSON streams); repeatable
                   --chunk-size N    bytes per append (default 1048576)
                   --no-progress     no progress bar (shown for large input on a terminal)
  get PATH       print the stream from --offset to its current end; the next
                 offset goes to stderr
                   --offset O        -1 (start, default), now, or an offset
                   --limit-bytes N   stop after the response that reaches N bytes
                   --json-lines      one line per message (JSON) or chunk (other types)
  tail PATH      follow the stream, one JSON line per message (JSON streams)
                 or per chunk ({"offset":...,"data":TEXT} for text/*,
                 {"offset":...,"base64":DATA} for others); ends at the end of a
                 closed stream
                   --offset O        -1 (start, default), now, or an offset
  head PATH      print the stream's metadata (--json for JSON)
  close PATH     close the stream: no more appends; prints its final offset
  delete PATH    delete the stream and its data
  list           list streams (--prefix P, --json for one JSON object a line)

flags of every command:
  --url URL        server URL (DURABLE_STREAMS_URL)
  --token TOKEN    bearer token (DURABLE_STREAMS_TOKEN)
  --state-dir D    state directory of the local server (DS_STATE_DIR)

exit status: 0 ok, 1 error, 2 usage error or request rejected as malformed
(400), 3 stream not found, 4 conflict (stream closed, exists differently),
130 tail interrupted
`

// streamEnv is what every stream command shares.
type streamEnv struct {
	url, token, stateDir string
	base                 string // the server's base URL, once connected
	stdin                io.Reader
	stdout, stderr       io.Writer
	client               *client.Client
}

func (e *streamEnv) flags(fs *flag.FlagSet) {
	fs.StringVar(&e.url, "url", e.url, "server URL (DURABLE_STREAMS_URL)")
	fs.StringVar(&e.token, "token", e.token, "bearer token (DURABLE_STREAMS_TOKEN)")
	fs.StringVar(&e.stateDir, "state-dir", e.stateDir, "state directory of the local server (DS_STATE_DIR)")
}

// connect resolves the server: --url, else the local daemon, started if
// it does not run.
func (e *streamEnv) connect(ctx context.Context) error {
	base := e.url
	if base == "" {
		d, err := newDaemon(e.stateDir)
		if err != nil {
			return err
		}
		info, _ := d.inspect()
		if info == nil || info.URL == "" {
			var started bool
			info, started, err = d.start(ctx, startOptions{addr: envOr("DS_ADDR", defaultDaemonAddr)})
			if err != nil {
				return fmt.Errorf("no server: DURABLE_STREAMS_URL is not set and the local server did not start: %w", err)
			}
			if started {
				fmt.Fprintf(e.stderr, "durable-streams: started a local server at %s (pid %d; stop it with: durable-streams server stop)\n", info.URL, info.PID)
			}
		}
		base = info.URL
	} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("bad --url %q: want http(s)://host[:port]", base)}
	}
	var opts []client.Option
	if e.token != "" {
		opts = append(opts, client.WithToken(e.token))
	}
	// A CLI answers quickly rather than retrying for a minute.
	opts = append(opts, client.WithRetry(client.RetryPolicy{MaxAttempts: 3}), client.WithUserAgent("durable-streams-cli/1"))
	e.base = base
	e.client = client.New(base, opts...)
	return nil
}

// streamCommand is one stream subcommand.
type streamCommand struct {
	args  string // positional arguments, for messages
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, e *streamEnv, args []string) error
}

func streamCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, streamUsage)
		return usageError{errors.New("stream: missing command")}
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, streamUsage)
		return nil
	}
	e := &streamEnv{
		url:   envOr("DURABLE_STREAMS_URL", ""),
		token: envOr("DURABLE_STREAMS_TOKEN", ""),
		stdin: stdin, stdout: stdout, stderr: stderr,
	}
	fs := flag.NewFlagSet("stream "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, streamUsage) }
	e.flags(fs)
	var cmd streamCommand
	switch name {
	case "create":
		cmd = createCommand(fs)
	case "append":
		cmd = appendCommand(fs)
	case "get":
		cmd = getCommand(fs)
	case "tail":
		cmd = tailCommand(fs)
	case "head":
		cmd = headCommand(fs)
	case "close":
		cmd = streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
			res, err := e.client.Stream(args[0]).Close(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, res.NextOffset)
			return nil
		}}
	case "delete":
		cmd = streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
			return e.client.Stream(args[0]).Delete(ctx)
		}}
	case "list":
		cmd = listCommand(fs)
	default:
		fmt.Fprint(stderr, streamUsage)
		return usageError{fmt.Errorf("stream: unknown command %q", name)}
	}
	pos, err := parseInterleaved(fs, rest)
	if err = flagError(err); err != nil {
		return err
	}
	switch {
	case cmd.args == "" && len(pos) > 0:
		return usageError{fmt.Errorf("stream %s: unexpected argument %q", name, pos[0])}
	case cmd.args == "PATH" && len(pos) != 1,
		strings.HasPrefix(cmd.args, "PATH ") && len(pos) == 0:
		return usageError{fmt.Errorf("stream %s: want %s", name, cmd.args)}
	}
	if len(pos) > 0 && strings.Trim(pos[0], "/") == "" {
		return usageError{fmt.Errorf("stream %s: empty stream path", name)}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := e.connect(ctx); err != nil {
		return err
	}
	return exitStatusOf(cmd.run(ctx, e, pos))
}

// parseInterleaved parses flags that may follow positional arguments, as
// in "append PATH -m hi"; "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exitStatusOf gives server answers their documented exit status.
func exitStatusOf(err error) error {
	var he *client.HTTPError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrGone):
		return exitCodeError{code: exitNotFound, err: err}
	case errors.Is(err, client.ErrConflict):
		return exitCodeError{code: exitConflict, err: err}
	case errors.As(err, &he) && he.Status == http.StatusBadRequest:
		return exitCodeError{code: exitUsage, err: err}
	case errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden):
		return fmt.Errorf("%w (pass --token or set DURABLE_STREAMS_TOKEN)", err)
	}
	return err
}

func createCommand(fs *flag.FlagSet) streamCommand {
	var o client.CreateOptions
	var asJSON bool
	var ttl, expires string
	fs.StringVar(&o.ContentType, "content-type", "", "media type (default application/octet-stream)")
	fs.BoolVar(&asJSON, "json", false, "a JSON stream (--content-type application/json)")
	fs.StringVar(&ttl, "ttl", "", "expire this many seconds (or a duration such as 1h) after last use")
	fs.StringVar(&expires, "expires-at", "", "expire at this time (RFC 3339)")
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		if asJSON {
			if o.ContentType != "" && !isJSON(o.ContentType) {
				return usageError{errors.New("--json contradicts --content-type " + o.ContentType)}
			}
			o.ContentType = "application/json"
		}
		if ttl != "" {
			d, err := parseTTL(ttl)
			if err != nil {
				return usageError{err}
			}
			o.TTL = d
		}
		if expires != "" {
			t, err := time.Parse(time.RFC3339Nano, expires)
			if err != nil {
				return usageError{fmt.Errorf("bad --expires-at %q: want RFC 3339, e.g. 2030-01-02T15:04:05Z", expires)}
			}
			o.ExpiresAt = t
		}
		if o.TTL > 0 && !o.ExpiresAt.IsZero() {
			return usageError{errors.New("--ttl and --expires-at are mutually exclusive")}
		}
		s := e.client.Stream(args[0])
		res, err := s.Create(ctx, o)
		if err != nil {
			return err
		}
		if !res.Created {
			fmt.Fprintf(e.stderr, "durable-streams: %s already exists with the same configuration\n", s.Path())
		}
		fmt.Fprintln(e.stdout, s.URL())
		return nil
	}}
}

// parseTTL reads whole seconds ("3600") or a duration ("1h").
func parseTTL(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n <= int64(1<<62)/int64(time.Second) {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= time.Second {
		return d, nil
	}
	return 0, fmt.Errorf("bad --ttl %q: want seconds (3600) or a duration of at least 1s (1h)", v)
}

func getCommand(fs *flag.FlagSet) streamCommand {
	var offset string
	var limit int64
	var lines bool
	fs.StringVar(&offset, "offset", client.OffsetStart, "where to start: -1 (start), now, or an offset")
	fs.Int64Var(&limit, "limit-bytes", 0, "stop after the response that reaches this many bytes (0: no limit)")
	fs.BoolVar(&lines, "json-lines", false, "one line per message (JSON) or chunk (other types)")
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		if limit < 0 {
			return usageError{errors.New("--limit-bytes must not be negative")}
		}
		r := e.client.Stream(args[0]).Read(ctx, client.ReadOptions{Offset: offset})
		defer r.Close()
		w := bufio.NewWriterSize(e.stdout, 64<<10)
		out := &messageWriter{w: w, lines: lines}
		var total int64
		closed := false
		for {
			b, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				w.Flush()
				return err
			}
			closed = b.Closed
			if err := out.batch(b); err != nil {
				return err
			}
			total += int64(len(b.Data))
			if limit > 0 && total >= limit {
				break
			}
		}
		if err := out.finish(); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		reportOffset(e.stderr, r.Offset(), closed)
		return nil
	}}
}

func reportOffset(w io.Writer, offset string, closed bool) {
	if closed {
		fmt.Fprintf(w, "next offset: %s (stream closed)\n", offset)
		return
	}
	fmt.Fprintf(w, "next offset: %s\n", offset)
}

func tailCommand(fs *flag.FlagSet) streamCommand {
	var offset string
	fs.StringVar(&offset, "offset", client.OffsetStart, "where to start: -1 (start), now, or an offset")
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		r := e.client.Stream(args[0]).Read(ctx, client.ReadOptions{Offset: offset, Live: client.LiveAuto})
		defer r.Close()
		w := bufio.NewWriterSize(e.stdout, 64<<10)
		out := &messageWriter{w: w, lines: true}
		for {
			b, err := r.Next()
			if err == io.EOF {
				reportOffset(e.stderr, r.Offset(), true)
				return nil
			}
			if err != nil {
				w.Flush()
				if ctx.Err() != nil {
					reportOffset(e.stderr, r.Offset(), false)
					return exitCodeError{code: exitInterrupted}
				}
				return err
			}
			if err := out.batch(b); err != nil {
				return err
			}
			// Followers of a live stream want each batch as it comes.
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}}
}

// messageWriter prints batches: JSON messages as one array, or one a
// line; other data raw, or as one JSON line per batch.
type messageWriter struct {
	w     *bufio.Writer
	lines bool
	n     int  // JSON messages written (array mode)
	json  bool // the stream is a JSON stream (array mode)
}

// chunkLine is the JSON line of a batch of a text or binary stream.
type chunkLine struct {
	Offset string `json:"offset"`
	Data   string `json:"data,omitempty"`
	Base64 []byte `json:"base64,omitempty"`
}

func (m *messageWriter) batch(b client.Batch) error {
	if isJSON(b.ContentType) {
		m.json = true
		msgs, err := b.JSONMessages()
		if err != nil {
			return err
		}
		for _, msg := range msgs {
			switch {
			case m.lines:
			case m.n == 0:
				m.w.WriteByte('[')
			default:
				m.w.WriteByte(',')
			}
			m.w.Write(msg)
			if m.lines {
				m.w.WriteByte('\n')
			}
			m.n++
		}
		return nil
	}
	if len(b.Data) == 0 {
		return nil
	}
	if !m.lines {
		_, err := m.w.Write(b.Data)
		return err
	}
	line := chunkLine{Offset: b.NextOffset}
	if isText(b.ContentType) && utf8.Valid(b.Data) {
		line.Data = string(b.Data)
	} else {
		line.Base64 = b.Data
	}
	raw, err := json.Marshal(line)
	if err != nil {
		return err
	}
	m.w.Write(raw)
	return m.w.WriteByte('\n')
}

// finish ends the JSON array of array mode.
func (m *messageWriter) finish() error {
	if m.lines || !m.json {
		return nil
	}
	if m.n == 0 {
		m.w.WriteString("[")
	}
	_, err := m.w.WriteString("]\n")
	return err
}

func headCommand(fs *flag.FlagSet) streamCommand {
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		s := e.client.Stream(args[0])
		md, err := s.Head(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			out := struct {
				Path        string     `json:"path"`
				URL         string     `json:"url"`
				ContentType string     `json:"contentType"`
				NextOffset  string     `json:"nextOffset"`
				Closed      bool       `json:"closed"`
				TTLSeconds  int64      `json:"ttlSeconds,omitempty"`
				ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
			}{Path: s.Path(), URL: s.URL(), ContentType: md.ContentType, NextOffset: md.NextOffset, Closed: md.Closed, TTLSeconds: int64(md.TTL / time.Second)}
			if !md.ExpiresAt.IsZero() {
				out.ExpiresAt = &md.ExpiresAt
			}
			raw, err := json.Marshal(out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "path:\t%s\n", s.Path())
		fmt.Fprintf(tw, "url:\t%s\n", s.URL())
		fmt.Fprintf(tw, "content type:\t%s\n", md.ContentType)
		fmt.Fprintf(tw, "next offset:\t%s\n", md.NextOffset)
		fmt.Fprintf(tw, "closed:\t%t\n", md.Closed)
		if md.TTL > 0 {
			fmt.Fprintf(tw, "ttl:\t%v\n", md.TTL)
		}
		if !md.ExpiresAt.IsZero() {
			fmt.Fprintf(tw, "expires at:\t%s\n", md.ExpiresAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}}
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func isText(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && strings.HasPrefix(mt, "text/")
}
