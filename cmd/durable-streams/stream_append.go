package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/streamtier/durable-streams/client"
)

const (
	defaultChunkBytes = 1 << 20
	// maxChunkBytes keeps a chunk below the server's default largest
	// append (8 MiB), with room for the JSON array around messages.
	maxChunkBytes = 8<<20 - 1024
)

// literal is one -m or -e value, in command line order.
type literal struct {
	json bool // -e: a JSON value; -m: text
	val  string
}

// literalFlag collects -m and -e into one ordered list.
type literalFlag struct {
	json bool
	list *[]literal
}

func (f literalFlag) String() string { return "" }

func (f literalFlag) Set(v string) error {
	*f.list = append(*f.list, literal{json: f.json, val: v})
	return nil
}

func appendCommand(fs *flag.FlagSet) streamCommand {
	var lits []literal
	var chunk int64
	var noProgress bool
	var create createIfMissing
	create.register(fs)
	fs.Var(literalFlag{list: &lits}, "m", "a message: the text (a JSON string on JSON streams); repeatable")
	fs.Var(literalFlag{json: true, list: &lits}, "e", "a JSON value as one message (JSON streams); repeatable")
	fs.Int64Var(&chunk, "chunk-size", defaultChunkBytes, "bytes per append of large input")
	fs.BoolVar(&noProgress, "no-progress", false, "no progress bar")
	return streamCommand{args: "PATH [FILE...|-]", run: func(ctx context.Context, e *streamEnv, args []string) error {
		files := args[1:]
		if len(lits) > 0 && len(files) > 0 {
			return usageError{errors.New("stream append: give -m/-e values or input files, not both")}
		}
		if chunk < 1 || chunk > maxChunkBytes {
			return usageError{fmt.Errorf("--chunk-size must be between 1 and %d", maxChunkBytes)}
		}
		s := e.client.Stream(args[0])
		md, err := s.Head(ctx) // the content type decides how input is read
		if errors.Is(err, client.ErrNotFound) && (create.on || e.local) {
			md, err = create.create(ctx, e, s, lits)
		}
		if err != nil {
			return err
		}
		a := &appender{ctx: ctx, s: s, ct: md.ContentType, json: isJSON(md.ContentType), chunk: int(chunk), offset: md.NextOffset}
		if len(lits) > 0 {
			err = a.literals(lits)
		} else {
			err = a.input(e, files, noProgress)
		}
		if err == nil {
			err = a.flush()
		}
		if err != nil {
			if a.appends > 0 {
				// Some chunks are in the stream: say how far it got.
				return fmt.Errorf("%w (after %d appends of %s in all; the stream's tail is now at %s)", err, a.appends, fmtBytes(a.sent), a.offset)
			}
			return err
		}
		fmt.Fprintln(e.stdout, a.offset)
		return nil
	}}
}

// appender sends data to a stream in appends of bounded size. JSON
// messages are batched into arrays, which the server splits into messages.
type appender struct {
	ctx   context.Context
	s     *client.Stream
	ct    string
	json  bool
	chunk int

	buf     []byte // the pending append
	pending int    // messages in buf (JSON)
	appends int
	sent    int64
	offset  string // the stream's tail after the last append
}

func (a *appender) literals(lits []literal) error {
	msgs := make([][]byte, 0, len(lits))
	for _, l := range lits {
		switch {
		case l.json && !a.json:
			return usageError{fmt.Errorf("-e needs a JSON stream; this one is %s (use -m)", a.ct)}
		case l.json && !json.Valid([]byte(l.val)):
			return usageError{fmt.Errorf("-e %q is not valid JSON", l.val)}
		case l.json:
			msgs = append(msgs, []byte(l.val))
		case a.json:
			raw, _ := json.Marshal(l.val) // a string always encodes
			msgs = append(msgs, raw)
		case l.val == "":
			return usageError{errors.New("-m: empty message")}
		default:
			msgs = append(msgs, []byte(l.val))
		}
	}
	for _, m := range msgs {
		if err := a.add(m); err != nil {
			return err
		}
	}
	return nil
}

// input appends the files ("-" is stdin), or stdin without files.
func (a *appender) input(e *streamEnv, files []string, noProgress bool) error {
	if len(files) == 0 {
		if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
			return usageError{errors.New("stream append: nothing to append: give -m TEXT, -e JSON, files, or pipe data to stdin")}
		}
		files = []string{"-"}
	}
	var readers []io.Reader
	var total int64
	for i, name := range files {
		var r io.Reader
		var size int64 = -1
		if name == "-" {
			r = e.stdin
			if f, ok := e.stdin.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
			}
		} else {
			f, err := os.Open(name)
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				size = fi.Size()
			}
			r = f
		}
		if total >= 0 && size >= 0 {
			total += size
		} else {
			total = -1
		}
		if a.json && i > 0 {
			// Keep "1" at the end of one file and "2" at the start of
			// the next from reading as 12.
			readers = append(readers, bytes.NewReader([]byte{'\n'}))
		}
		readers = append(readers, r)
	}
	pr := newProgress(e.stderr, total, !noProgress)
	defer pr.finish()
	in := io.TeeReader(io.MultiReader(readers...), pr)
	if a.json {
		return a.jsonValues(in)
	}
	return a.raw(in)
}

// jsonValues appends each JSON value of r (JSON lines, or values
// separated by any whitespace) as one message.
func (a *appender) jsonValues(r io.Reader) error {
	dec := json.NewDecoder(r)
	n := 0
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			return usageError{fmt.Errorf("input is not a sequence of JSON values: message %d, near byte %d: %w", n+1, dec.InputOffset(), err)}
		}
		if err := a.add(v); err != nil {
			return err
		}
		n++
	}
	if n == 0 && a.appends == 0 {
		return usageError{errors.New("stream append: empty input")}
	}
	return nil
}

// raw appends r's bytes in chunks.
func (a *appender) raw(r io.Reader) error {
	buf := make([]byte, a.chunk)
	empty := true
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			empty = false
			if serr := a.send(buf[:n]); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
	}
	if empty {
		return usageError{errors.New("stream append: empty input")}
	}
	return nil
}

// add queues one message, sending the pending batch first if the message
// would make it exceed the chunk size.
func (a *appender) add(msg []byte) error {
	if !a.json {
		if len(a.buf)+len(msg) > a.chunk && len(a.buf) > 0 {
			if err := a.flush(); err != nil {
				return err
			}
		}
		a.buf = append(a.buf, msg...)
		return nil
	}
	if a.pending > 0 && len(a.buf)+len(msg)+2 > a.chunk {
		if err := a.flush(); err != nil {
			return err
		}
	}
	if a.pending == 0 {
		a.buf = append(a.buf[:0], '[')
	} else {
		a.buf = append(a.buf, ',')
	}
	a.buf = append(a.buf, msg...)
	a.pending++
	return nil
}

// flush sends the pending batch.
func (a *appender) flush() error {
	if len(a.buf) == 0 {
		return nil
	}
	if a.json {
		a.buf = append(a.buf, ']')
	}
	err := a.send(a.buf)
	a.buf, a.pending = a.buf[:0], 0
	return err
}

func (a *appender) send(body []byte) error {
	res, err := a.s.Append(a.ctx, body, client.AppendOptions{ContentType: a.ct})
	if err != nil {
		return err
	}
	a.appends++
	a.sent += int64(len(body))
	a.offset = res.NextOffset
	return nil
}

// createIfMissing is append's --create: make the stream on first append.
type createIfMissing struct {
	on          bool
	contentType string
	json        bool
}

func (c *createIfMissing) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.on, "create", false, "create the stream if it does not exist (always so with the local background server)")
	fs.StringVar(&c.contentType, "content-type", "", "media type of a stream created by this append (default application/json for -e values, else application/octet-stream)")
	fs.BoolVar(&c.json, "json", false, "a stream created by this append is a JSON stream (--content-type application/json)")
}

// create makes the missing stream s and returns its metadata. Another
// writer creating it at the same moment with the same type is fine.
func (c *createIfMissing) create(ctx context.Context, e *streamEnv, s *client.Stream, lits []literal) (client.Metadata, error) {
	ct := c.contentType
	switch {
	case c.json && ct != "" && !isJSON(ct):
		return client.Metadata{}, usageError{errors.New("--json contradicts --content-type " + ct)}
	case c.json:
		ct = "application/json"
	case ct == "" && len(lits) > 0 && allJSON(lits):
		ct = "application/json"
	case ct == "":
		ct = "application/octet-stream"
	}
	res, err := s.Create(ctx, client.CreateOptions{ContentType: ct})
	if err != nil {
		return client.Metadata{}, err
	}
	if res.Created {
		fmt.Fprintf(e.stderr, "durable-streams: created stream %s (%s)\n", s.Path(), res.ContentType)
	}
	return client.Metadata{ContentType: res.ContentType, NextOffset: res.NextOffset, Closed: res.Closed}, nil
}

// allJSON reports whether every literal is an -e JSON value.
func allJSON(lits []literal) bool {
	for _, l := range lits {
		if !l.json {
			return false
		}
	}
	return true
}
