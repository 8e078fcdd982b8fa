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
                   --create          create the stream if it does not exist (always
                                     done with the local background server)
                   --content-type T  type of a stream created so (default
                                     application/json for -e values, else
                                     application/octet-stream); --json for JSON
  get PATH       print the stream from --offset to its current end; the next
                 offset goes to stderr
                   --offset O        -1 (start, default), now, or an offset
                   -n N              stop after N messages (JSON) or chunks (others)
                   --limit-bytes N   stop after the response that reaches N bytes
                   --output F        raw (default: the data, JSON streams as one
                                     array), lines (--json-lines) or jsonl (--jsonl)
  tail PATH      follow the stream, one JSON line per message (JSON streams)
                 or per chunk ({"offset":...,"data":TEXT} for text/*,
                 {"offset":...,"base64":DATA} for others); ends at the end of a
                 closed stream
                   --offset O        -1 (start, default), now, or an offset
                   -n N              stop after N messages or chunks
                   --output F        lines (default), jsonl (--jsonl: every line
                                     {"offset":...,"data":VALUE}, JSON streams too) or raw
  subscribe PATH like tail, from now on: prints what is appended from now
                   --offset O        now (default), -1 (start), or an offset
                   -n N, --output F  as for tail
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
130 tail or subscribe interrupted
`

// streamEnv is what every stream command shares.
type streamEnv struct {
	url, token, stateDir string
	base                 string // the server's base URL, once connected
	local                bool   // the server is the CLI's own background server
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
			addr, err := withPort(envOr("DS_ADDR", defaultDaemonAddr), int(envInt("DS_PORT", -1)))
			if err != nil {
				return err
			}
			var started bool
			info, started, err = d.start(ctx, startOptions{addr: addr})
			if err != nil {
				return fmt.Errorf("no server: DURABLE_STREAMS_URL is not set and the local server did not start: %w", err)
			}
			if started {
				fmt.Fprintf(e.stderr, "durable-streams: started a local server at %s (pid %d; stop it with: durable-streams server stop)\n", info.URL, info.PID)
			}
		}
		base = info.URL
		e.local = true
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
		cmd = followCommand(fs, client.OffsetStart)
	case "subscribe":
		cmd = followCommand(fs, client.OffsetNow)
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
	var count int
	var of outputFlags
	fs.StringVar(&offset, "offset", client.OffsetStart, "where to start: -1 (start), now, or an offset")
	fs.Int64Var(&limit, "limit-bytes", 0, "stop after the response that reaches this many bytes (0: no limit)")
	fs.IntVar(&count, "n", 0, "stop after this many messages (JSON) or chunks (other types); 0: no limit")
	of.register(fs, outRaw)
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		if limit < 0 || count < 0 {
			return usageError{errors.New("--limit-bytes and -n must not be negative")}
		}
		format, err := of.format()
		if err != nil {
			return err
		}
		r := e.client.Stream(args[0]).Read(ctx, client.ReadOptions{Offset: offset})
		defer r.Close()
		w := bufio.NewWriterSize(e.stdout, 64<<10)
		out := &messageWriter{w: w, format: format, max: count}
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
			if out.full() || (limit > 0 && total >= limit) {
				break
			}
		}
		if err := out.finish(); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		out.reportOffset(e.stderr, r.Offset(), closed)
		return nil
	}}
}

// followCommand is tail (from the start by default) and subscribe (from
// now by default): follow the stream live, print each batch as it comes.
func followCommand(fs *flag.FlagSet, defOffset string) streamCommand {
	var offset string
	var count int
	var of outputFlags
	fs.StringVar(&offset, "offset", defOffset, "where to start: -1 (start), now, or an offset")
	fs.IntVar(&count, "n", 0, "stop after this many messages (JSON) or chunks (other types); 0: follow until interrupted or the stream is closed")
	of.register(fs, outLines)
	return streamCommand{args: "PATH", run: func(ctx context.Context, e *streamEnv, args []string) error {
		if count < 0 {
			return usageError{errors.New("-n must not be negative")}
		}
		format, err := of.format()
		if err != nil {
			return err
		}
		r := e.client.Stream(args[0]).Read(ctx, client.ReadOptions{Offset: offset, Live: client.LiveAuto})
		defer r.Close()
		w := bufio.NewWriterSize(e.stdout, 64<<10)
		out := &messageWriter{w: w, format: format, max: count}
		for {
			b, err := r.Next()
			if err == io.EOF {
				out.reportOffset(e.stderr, r.Offset(), true)
				return nil
			}
			if err != nil {
				w.Flush()
				if ctx.Err() != nil {
					out.reportOffset(e.stderr, r.Offset(), false)
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
			if out.full() {
				out.reportOffset(e.stderr, r.Offset(), b.Closed)
				return nil
			}
		}
	}}
}

// outputFormat is how get, tail and subscribe print batches.
type outputFormat int

const (
	// outRaw: the data as stored; a JSON stream's messages as one array.
	outRaw outputFormat = iota
	// outLines: one line per message of a JSON stream (the value), or per
	// chunk of other streams (a jsonLine).
	outLines
	// outJSONL: one jsonLine per message or chunk, of every stream.
	outJSONL
)

// outputFlags are --output and its short forms.
type outputFlags struct {
	def    outputFormat
	output string
	lines  bool // --json-lines
	jsonl  bool // --jsonl
}

func (o *outputFlags) register(fs *flag.FlagSet, def outputFormat) {
	o.def = def
	fs.StringVar(&o.output, "output", "", "raw (the data; JSON streams as one array), lines (one line per JSON message or chunk) or jsonl (one {\"offset\",\"data\"} object a line)")
	fs.BoolVar(&o.lines, "json-lines", false, "short for --output lines")
	fs.BoolVar(&o.jsonl, "jsonl", false, "short for --output jsonl")
}

func (o *outputFlags) format() (outputFormat, error) {
	f := o.def
	n := 0
	if o.output != "" {
		n++
		switch o.output {
		case "raw":
			f = outRaw
		case "lines":
			f = outLines
		case "jsonl":
			f = outJSONL
		default:
			return 0, usageError{fmt.Errorf("bad --output %q: want raw, lines or jsonl", o.output)}
		}
	}
	if o.lines {
		n++
		f = outLines
	}
	if o.jsonl {
		n++
		f = outJSONL
	}
	if n > 1 {
		return 0, usageError{errors.New("give one of --output, --json-lines and --jsonl")}
	}
	return f, nil
}

// messageWriter prints batches in an outputFormat, up to max messages
// (0: no limit).
type messageWriter struct {
	w      *bufio.Writer
	format outputFormat
	max    int
	n      int  // messages (JSON) or chunks written
	json   bool // the stream is a JSON stream (raw format)
	// unprinted counts the messages of the last batch left out by max:
	// the next offset lies after them.
	unprinted int
}

// jsonLine is one line of outJSONL, and of outLines for streams other
// than JSON: Offset is the offset after the batch holding the message
// (every message of one batch shares it), so reading from the last line's
// offset continues after everything printed. Data is the message of a
// JSON stream, or the text of a text/* chunk as a JSON string; other
// chunks are in Base64.
type jsonLine struct {
	Offset string          `json:"offset"`
	Data   json.RawMessage `json:"data,omitempty"`
	Base64 []byte          `json:"base64,omitempty"`
}

// full reports whether max messages were written.
func (m *messageWriter) full() bool { return m.max > 0 && m.n >= m.max }

func (m *messageWriter) batch(b client.Batch) error {
	if isJSON(b.ContentType) {
		m.json = true
		msgs, err := b.JSONMessages()
		if err != nil {
			return err
		}
		for i, msg := range msgs {
			if m.full() {
				m.unprinted = len(msgs) - i
				return nil
			}
			if err := m.message(msg, b.NextOffset); err != nil {
				return err
			}
		}
		return nil
	}
	if len(b.Data) == 0 || m.full() {
		return nil
	}
	if m.format == outRaw {
		m.n++
		_, err := m.w.Write(b.Data)
		return err
	}
	line := jsonLine{Offset: b.NextOffset}
	if isText(b.ContentType) && utf8.Valid(b.Data) {
		line.Data, _ = json.Marshal(string(b.Data)) // a string always encodes
	} else {
		line.Base64 = b.Data
	}
	m.n++
	return m.line(line)
}

// message writes one message of a JSON stream.
func (m *messageWriter) message(msg json.RawMessage, next string) error {
	defer func() { m.n++ }()
	switch m.format {
	case outJSONL:
		return m.line(jsonLine{Offset: next, Data: msg})
	case outLines:
		m.w.Write(msg)
		return m.w.WriteByte('\n')
	}
	if m.n == 0 {
		m.w.WriteByte('[')
	} else {
		m.w.WriteByte(',')
	}
	_, err := m.w.Write(msg)
	return err
}

func (m *messageWriter) line(l jsonLine) error {
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	m.w.Write(raw)
	return m.w.WriteByte('\n')
}

// finish ends the JSON array of the raw format.
func (m *messageWriter) finish() error {
	if m.format != outRaw || !m.json {
		return nil
	}
	if m.n == 0 {
		m.w.WriteString("[")
	}
	_, err := m.w.WriteString("]\n")
	return err
}

// reportOffset tells, on w, where to continue reading.
func (m *messageWriter) reportOffset(w io.Writer, offset string, closed bool) {
	note := ""
	switch {
	case m.unprinted > 0:
		// Offsets lie between batches: there is none just after the last
		// message printed.
		note = fmt.Sprintf(" (after %d more messages of the last batch, not printed)", m.unprinted)
	case closed:
		note = " (stream closed)"
	}
	fmt.Fprintf(w, "next offset: %s%s\n", offset, note)
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
