package sequencer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// env is a registry over a data directory, closed by t.Cleanup.
type env struct {
	t     *testing.T
	dir   string
	cat   *catalog.Catalog
	reg   *sequencer.Registry
	close func()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv opens a catalog and registry on a new temp dir; mod adjusts the
// registry config.
func newEnv(t *testing.T, mod func(*sequencer.Config)) *env {
	t.Helper()
	return openEnv(t, t.TempDir(), mod)
}

// openEnv opens a catalog and registry on dir.
func openEnv(t *testing.T, dir string, mod func(*sequencer.Config)) *env {
	t.Helper()
	cat, err := catalog.Open(context.Background(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatalf("catalog.Open: %v", err)
	}
	cfg := sequencer.Config{DataDir: dir, Catalog: cat, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	reg, err := sequencer.NewRegistry(cfg)
	if err != nil {
		cat.Close()
		t.Fatalf("NewRegistry: %v", err)
	}
	e := &env{t: t, dir: dir, cat: cat, reg: reg}
	var once sync.Once
	e.close = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := reg.Close(ctx); err != nil {
				t.Errorf("Registry.Close: %v", err)
			}
			if err := cat.Close(); err != nil {
				t.Errorf("catalog.Close: %v", err)
			}
		})
	}
	t.Cleanup(e.close)
	return e
}

func mustCT(t *testing.T, s string) protocol.ContentType {
	t.Helper()
	ct, err := protocol.ParseContentType(s)
	if err != nil {
		t.Fatalf("ParseContentType(%q): %v", s, err)
	}
	return ct
}

func ctPtr(t *testing.T, s string) *protocol.ContentType {
	ct := mustCT(t, s)
	return &ct
}

const (
	octet = "application/octet-stream"
	jsonT = "application/json"
	textT = "text/plain"
)

// create creates a stream and releases the handle it returns.
func (e *env) create(req *sequencer.CreateRequest) *sequencer.CreateResult {
	e.t.Helper()
	res, err := e.reg.Create(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("Create(%q): %v", req.Path, err)
	}
	res.Handle.Release()
	return res
}

// createStream creates a plain stream of content type ct.
func (e *env) createStream(path, ct string) {
	e.t.Helper()
	e.create(&sequencer.CreateRequest{Path: path, ContentType: ctPtr(e.t, ct)})
}

// fork creates dst as a fork of src at off (nil: tail) with sub-offset sub.
func (e *env) fork(dst, src string, off *offset.Token, sub int64) *sequencer.CreateResult {
	e.t.Helper()
	return e.create(&sequencer.CreateRequest{Path: dst, Fork: &sequencer.ForkRequest{Source: src, Offset: off, SubOffset: sub}})
}

func (e *env) forkErr(dst, src string, off *offset.Token, sub int64) error {
	e.t.Helper()
	res, err := e.reg.Create(e.t.Context(), &sequencer.CreateRequest{Path: dst, Fork: &sequencer.ForkRequest{Source: src, Offset: off, SubOffset: sub}})
	if err == nil {
		res.Handle.Release()
	}
	return err
}

// acquire returns a pinned handle released by t.Cleanup.
func (e *env) acquire(path string) *sequencer.Handle {
	e.t.Helper()
	h, err := e.reg.Acquire(e.t.Context(), path, true)
	if err != nil {
		e.t.Fatalf("Acquire(%q): %v", path, err)
	}
	e.t.Cleanup(h.Release)
	return h
}

// appendMsgs appends msgs as one request to path.
func (e *env) appendMsgs(path, ct string, msgs ...string) sequencer.AppendResult {
	e.t.Helper()
	res, err := e.tryAppend(path, &sequencer.AppendRequest{ContentType: mustCT(e.t, ct), Messages: byteMsgs(msgs...)})
	if err != nil {
		e.t.Fatalf("Append(%q, %q): %v", path, msgs, err)
	}
	return res
}

func (e *env) tryAppend(path string, req *sequencer.AppendRequest) (sequencer.AppendResult, error) {
	e.t.Helper()
	h, err := e.reg.Acquire(e.t.Context(), path, true)
	if err != nil {
		return sequencer.AppendResult{}, err
	}
	defer h.Release()
	return h.Append(e.t.Context(), req)
}

func byteMsgs(msgs ...string) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = []byte(m)
	}
	return out
}

// readAll reads the whole stream at path chunk by chunk (maxBytes each)
// and returns the chunks.
func (e *env) readAll(path string, maxBytes int) []sequencer.Chunk {
	e.t.Helper()
	h := e.acquire(path)
	snap := h.Snapshot()
	var chunks []sequencer.Chunk
	for pos := int64(0); pos < snap.Tail; {
		c, err := e.reg.ReadChunk(e.t.Context(), snap, pos, maxBytes)
		if err != nil {
			e.t.Fatalf("ReadChunk(%q, %d): %v", path, pos, err)
		}
		if c.End <= pos {
			e.t.Fatalf("ReadChunk(%q, %d) made no progress (end %d)", path, pos, c.End)
		}
		if c.From != pos {
			e.t.Fatalf("ReadChunk(%q, %d).From = %d", path, pos, c.From)
		}
		chunks = append(chunks, c)
		pos = c.End
	}
	return chunks
}

// content returns the bytes of path's stream, read in chunks of maxBytes.
func (e *env) content(path string) string {
	e.t.Helper()
	var b bytes.Buffer
	for _, c := range e.readAll(path, 1<<20) {
		for _, m := range c.Messages {
			b.Write(m.Data)
		}
	}
	return b.String()
}

// messages returns the messages of path's stream as strings.
// messages reads path's stream and returns its messages: the data of each
// record, or for JSON streams the messages of each record.
func (e *env) messages(path string, maxBytes int) []string {
	e.t.Helper()
	ct, _ := protocol.ParseContentType(e.acquire(path).Snapshot().ContentType)
	var out []string
	for _, c := range e.readAll(path, maxBytes) {
		for _, m := range c.Messages {
			if !ct.IsJSON() {
				out = append(out, string(m.Data))
				continue
			}
			for _, part := range protocol.SplitJSONRecord(m.Data) {
				out = append(out, string(part))
			}
		}
	}
	return out
}

func (e *env) tail(path string) int64 {
	e.t.Helper()
	return e.acquire(path).Snapshot().Tail
}

// tokenAt returns the token of position p in path's stream.
func (e *env) tokenAt(path string, p int64) offset.Token {
	e.t.Helper()
	h := e.acquire(path)
	return h.Snapshot().TokenFor(e.t.Context(), p)
}

func kindOf(err error) sequencer.Kind { return sequencer.KindOf(err) }

var kindNames = map[sequencer.Kind]string{
	sequencer.KindInternal: "Internal", sequencer.KindNotFound: "NotFound", sequencer.KindGone: "Gone",
	sequencer.KindBadRequest: "BadRequest", sequencer.KindConflict: "Conflict", sequencer.KindClosed: "Closed",
	sequencer.KindStaleEpoch: "StaleEpoch", sequencer.KindSeqGap: "SeqGap", sequencer.KindUnavailable: "Unavailable",
}

func kindName(k sequencer.Kind) string { return kindNames[k] }

// wantKind fails unless err is a *sequencer.Error of kind k.
func wantKind(t *testing.T, err error, k sequencer.Kind) *sequencer.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kindName(k))
	}
	var se *sequencer.Error
	if !errors.As(err, &se) {
		t.Fatalf("got %T %v, want *sequencer.Error of kind %s", err, err, kindName(k))
	}
	if se.Kind != k {
		t.Fatalf("got kind %s (%v), want %s", kindName(se.Kind), err, kindName(k))
	}
	return se
}

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = hotlog.Message{}
