package sequencer_test

import (
	"strings"
	"testing"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

func tokAt(p int64) *offset.Token { return &offset.Token{Position: p} }

// checkChunks verifies the read invariants of every chunk of path: chunks
// are contiguous, end tokens name their end position and grow as strings,
// and no chunk mixes messages of two segments.
func checkChunks(t *testing.T, e *env, path string, maxBytes int) string {
	t.Helper()
	var b strings.Builder
	prev := ""
	h := e.acquire(path)
	for _, c := range e.readAll(path, maxBytes) {
		if c.EndToken.Position != c.End {
			t.Fatalf("%s: chunk [%d,%d) end token %v", path, c.From, c.End, c.EndToken)
		}
		if want := h.Snapshot().TokenFor(t.Context(), c.End); c.EndToken != want {
			t.Fatalf("%s: chunk end token %v, TokenFor(%d) = %v", path, c.EndToken, c.End, want)
		}
		if s := c.EndToken.String(); s <= prev {
			t.Fatalf("%s: end token %s does not sort after %s", path, s, prev)
		} else {
			prev = s
		}
		pos := c.From
		for i, m := range c.Messages {
			if m.Pos != pos {
				t.Fatalf("%s: chunk from %d: message %d at %d, want %d", path, c.From, i, m.Pos, pos)
			}
			if m.Seg != c.Messages[0].Seg {
				t.Fatalf("%s (budget %d): chunk [%d,%d) mixes segments %d and %d", path, maxBytes, c.From, c.End, c.Messages[0].Seg, m.Seg)
			}
			pos = m.End()
			b.Write(m.Data)
		}
		if pos != c.End {
			t.Fatalf("%s: chunk messages end at %d, chunk end %d", path, pos, c.End)
		}
	}
	return b.String()
}

// cacheModes runs fork tests with the default in-memory tail cache (recent
// messages are read from memory) and with a one-byte cache (nearly every
// read goes to the hot log).
var cacheModes = []struct {
	name   string
	recent int
}{{"cache", 0}, {"hotlog", 1}}

func forkEnv(t *testing.T, recent int) *env {
	return newEnv(t, func(c *sequencer.Config) { c.RecentBytes = recent })
}

// TestForkBinary runs 30 parallel subtests, each well under a second.
func TestForkBinary(t *testing.T) {
	// Source: "hello" [0,5) "world" [5,10) "!!" [10,12).
	tests := []struct {
		name    string
		off     *offset.Token
		sub     int64
		want    string // inherited content; "" with kind set for errors
		kind    sequencer.Kind
		ownMsgs int // messages the fork holds itself (a materialized prefix)
	}{
		{name: "tail", want: "helloworld!!", kind: success},
		{name: "zero", off: tokAt(0), want: "", kind: success},
		{name: "message boundary", off: tokAt(5), want: "hello", kind: success},
		{name: "inside a message", off: tokAt(7), want: "hellowo", kind: success},
		{name: "explicit tail", off: tokAt(12), want: "helloworld!!", kind: success},
		{name: "beyond tail", off: tokAt(13), kind: sequencer.KindBadRequest},
		{name: "sub-offset inside message", off: tokAt(5), sub: 3, want: "hellowor", kind: success, ownMsgs: 1},
		{name: "sub-offset first byte", off: tokAt(0), sub: 1, want: "h", kind: success, ownMsgs: 1},
		{name: "sub-offset whole message", off: tokAt(5), sub: 5, want: "helloworld", kind: success},
		{name: "sub-offset overshoots", off: tokAt(5), sub: 6, kind: sequencer.KindBadRequest},
		{name: "sub-offset from mid-message", off: tokAt(7), sub: 2, want: "helloworl", kind: success, ownMsgs: 1},
		{name: "sub-offset from mid-message to its end", off: tokAt(7), sub: 3, want: "helloworld", kind: success},
		{name: "sub-offset from mid-message overshoots", off: tokAt(7), sub: 4, kind: sequencer.KindBadRequest},
		{name: "sub-offset at tail", off: tokAt(12), sub: 1, kind: sequencer.KindBadRequest},
		{name: "zero sub-offset at tail", off: tokAt(12), sub: 0, want: "helloworld!!", kind: success},
	}
	for _, mode := range cacheModes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := forkEnv(t, mode.recent)
				e.createStream("src", textT)
				for _, m := range []string{"hello", "world", "!!"} {
					e.appendMsgs("src", textT, m)
				}
				if tc.kind != success {
					wantKind(t, e.forkErr("f", "src", tc.off, tc.sub), tc.kind)
					if _, err := e.reg.Acquire(t.Context(), "f", false); sequencer.KindOf(err) != sequencer.KindNotFound {
						t.Fatalf("failed fork left a stream behind: %v", err)
					}
					return
				}
				res := e.fork("f", "src", tc.off, tc.sub)
				if !res.Created {
					t.Fatal("fork not created")
				}
				h := e.acquire("f")
				snap := h.Snapshot()
				if snap.Tail != int64(len(tc.want)) {
					t.Fatalf("fork tail %d, want %d", snap.Tail, len(tc.want))
				}
				if snap.ContentType != textT {
					t.Fatalf("fork content type %q, want the source's", snap.ContentType)
				}
				// A partial message is materialized as the fork's own first
				// message: the fork point is the offset, not the prefix's end.
				wantPos := int64(len(tc.want))
				if tc.ownMsgs == 1 {
					wantPos = tc.off.Position
				}
				if snap.Fork == nil || snap.Fork.Pos != wantPos {
					t.Fatalf("fork base %+v, want fork position %d", snap.Fork, wantPos)
				}
				for _, budget := range []int{1, 3, 1 << 20} {
					if got := checkChunks(t, e, "f", budget); got != tc.want {
						t.Fatalf("fork content (budget %d) %q, want %q", budget, got, tc.want)
					}
				}
				// Every inherited position has the same token in both streams.
				for p := int64(0); p <= snap.Tail; p++ {
					if a, b := e.tokenAt("f", p), e.tokenAt("src", p); a != b {
						t.Fatalf("token of %d: fork %v, source %v", p, a, b)
					}
				}
				// Isolation: later appends stay on their side.
				e.appendMsgs("src", textT, "??")
				e.appendMsgs("f", textT, "XY")
				if got := checkChunks(t, e, "f", 1<<20); got != tc.want+"XY" {
					t.Fatalf("fork after appends: %q, want %q", got, tc.want+"XY")
				}
				if got := e.content("src"); got != "helloworld!!??" {
					t.Fatalf("source after appends: %q", got)
				}
			})
		}
	}
}

// TestForkJSON runs 28 parallel subtests, each well under a second.
func TestForkJSON(t *testing.T) {
	// Records (one per append): "1,2,3" at [0,5); {"a":4} at [5,12);
	// "5,6" at [12,15).
	tests := []struct {
		name string
		off  *offset.Token
		sub  int64
		want []string
		kind sequencer.Kind
	}{
		{name: "tail", want: []string{"1", "2", "3", `{"a":4}`, "5", "6"}, kind: success},
		{name: "zero", off: tokAt(0), want: nil, kind: success},
		{name: "append boundary", off: tokAt(5), want: []string{"1", "2", "3"}, kind: success},
		{name: "inside a record", off: tokAt(2), kind: sequencer.KindBadRequest},
		{name: "inside a message", off: tokAt(7), kind: sequencer.KindBadRequest},
		{name: "sub 2 of first append", off: tokAt(0), sub: 2, want: []string{"1", "2"}, kind: success},
		{name: "sub 3 of first append", off: tokAt(0), sub: 3, want: []string{"1", "2", "3"}, kind: success},
		{name: "sub exceeds the append", off: tokAt(0), sub: 4, kind: sequencer.KindBadRequest},
		{name: "sub inside a record", off: tokAt(2), sub: 1, kind: sequencer.KindBadRequest},
		{name: "sub of single-message append", off: tokAt(5), sub: 1, want: []string{"1", "2", "3", `{"a":4}`}, kind: success},
		{name: "sub of last append", off: tokAt(12), sub: 1, want: []string{"1", "2", "3", `{"a":4}`, "5"}, kind: success},
		{name: "sub at tail", off: tokAt(15), sub: 1, kind: sequencer.KindBadRequest},
		{name: "sub inside a message", off: tokAt(7), sub: 1, kind: sequencer.KindBadRequest},
	}
	for _, mode := range cacheModes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := forkEnv(t, mode.recent)
				e.createStream("src", jsonT)
				e.appendMsgs("src", jsonT, "1", "2", "3")
				e.appendMsgs("src", jsonT, `{"a":4}`)
				e.appendMsgs("src", jsonT, "5", "6")
				if tc.kind != success {
					wantKind(t, e.forkErr("f", "src", tc.off, tc.sub), tc.kind)
					return
				}
				e.fork("f", "src", tc.off, tc.sub)
				for _, budget := range []int{1, 1 << 20} {
					if got := e.messages("f", budget); !equalStrings(got, tc.want) {
						t.Fatalf("fork messages (budget %d) %q, want %q", budget, got, tc.want)
					}
				}
				e.appendMsgs("f", jsonT, "7", `{"b":8}`)
				want := append(append([]string(nil), tc.want...), "7", `{"b":8}`)
				if got := e.messages("f", 1); !equalStrings(got, want) {
					t.Fatalf("fork messages after append %q, want %q", got, want)
				}
				// Reads from every record boundary return whole records; inside
				// one of the fork's own records they are refused. (Inside an
				// inherited one: TestJSONForkReadInsideInheritedMessage.)
				h := e.acquire("f")
				snap := h.Snapshot()
				var seen []string
				for pos := int64(0); pos < snap.Tail; {
					c, err := e.reg.ReadChunk(t.Context(), snap, pos, 1)
					if err != nil {
						t.Fatalf("read at boundary %d: %v", pos, err)
					}
					rec := c.Messages[0]
					if pos >= snap.Fork.Pos && len(rec.Data) > 1 {
						_, err := e.reg.ReadChunk(t.Context(), snap, pos+1, 1)
						wantKind(t, err, sequencer.KindBadRequest)
					}
					for _, m := range protocol.SplitJSONRecord(rec.Data) {
						seen = append(seen, string(m))
					}
					pos = rec.End()
				}
				if !equalStrings(seen, want) {
					t.Fatalf("read record by record: %q, want %q", seen, want)
				}
			})
		}
	}
}

func TestForkChainWithSubOffsets(t *testing.T) {
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := forkEnv(t, mode.recent)
			e.createStream("a", octet)
			e.appendMsgs("a", octet, "hello")
			e.appendMsgs("a", octet, "world")
			e.fork("b", "a", tokAt(5), 3) // "hello" + "wor"
			e.appendMsgs("b", octet, "XYZ")
			e.fork("c", "b", tokAt(8), 2) // "hellowor" + "XY"
			e.appendMsgs("c", octet, "!")
			e.fork("d", "c", tokAt(2), 1) // "he" + "l"
			e.fork("e", "c", tokAt(6), 1) // "hellow" + "o" (b's materialized prefix)
			e.appendMsgs("a", octet, "late")
			e.appendMsgs("b", octet, "late")

			want := map[string]string{
				"a": "helloworldlate",
				"b": "helloworXYZlate",
				"c": "helloworXY!",
				"d": "hel",
				"e": "hellowo",
			}
			for path, w := range want {
				for _, budget := range []int{1, 2, 1 << 20} {
					if got := checkChunks(t, e, path, budget); got != w {
						t.Fatalf("%s (budget %d) = %q, want %q", path, budget, got, w)
					}
				}
			}
			// Shared positions have the same token along the chain.
			for p := int64(0); p <= 8; p++ {
				ta, tb, tc := e.tokenAt("a", p), e.tokenAt("b", p), e.tokenAt("c", p)
				if ta != tb || tb != tc {
					t.Fatalf("token of %d: a %v b %v c %v", p, ta, tb, tc)
				}
			}
			// Reads from inside the inherited part of a deep fork.
			h := e.acquire("c")
			c, err := e.reg.ReadChunk(t.Context(), h.Snapshot(), 3, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			for _, m := range c.Messages {
				got.Write(m.Data)
			}
			if !strings.HasPrefix("helloworXY!"[3:], got.String()) || got.Len() == 0 {
				t.Fatalf("read from 3 of c: %q", got.String())
			}
		})
	}
}

func TestForkMisc(t *testing.T) {
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := forkEnv(t, mode.recent)
			e.create(&sequencer.CreateRequest{Path: "src", ContentType: ctPtr(t, "text/plain; charset=utf-8"), Initial: byteMsgs("abc"), Closed: true})

			// A fork of a closed stream is open.
			res := e.fork("f", "src", nil, 0)
			if snap := res.Handle.Snapshot(); snap.Closed || snap.ContentType != "text/plain; charset=utf-8" {
				t.Fatalf("fork of closed source: closed %v type %q", snap.Closed, snap.ContentType)
			}
			e.appendMsgs("f", textT, "d")
			if got := e.content("f"); got != "abcd" {
				t.Fatalf("fork content %q", got)
			}

			// Content type must match the source's media type.
			_, err := e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "g", ContentType: ctPtr(t, jsonT), Fork: &sequencer.ForkRequest{Source: "src"}})
			wantKind(t, err, sequencer.KindConflict)
			r2, err := e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "g", ContentType: ctPtr(t, "TEXT/PLAIN"), Fork: &sequencer.ForkRequest{Source: "src"}})
			if err != nil {
				t.Fatalf("fork with same media type: %v", err)
			}
			r2.Handle.Release()

			// Re-creating a fork is idempotent only with the same fork point.
			e.fork("h", "src", tokAt(1), 1)
			again := e.fork("h", "src", tokAt(1), 1)
			if again.Created {
				t.Fatal("identical fork re-create reported Created")
			}
			wantKind(t, e.forkErr("h", "src", tokAt(2), 0), sequencer.KindConflict)
			wantKind(t, e.forkErr("h", "src", tokAt(1), 0), sequencer.KindConflict)
			wantKind(t, e.forkErr("h", "f", tokAt(1), 1), sequencer.KindConflict)
			_, err = e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "h"})
			wantKind(t, err, sequencer.KindConflict)
			if got := e.content("h"); got != "ab" {
				t.Fatalf("h = %q", got)
			}
		})
	}
}

// ---- rotation: sealed segments stay in the hot log (no cold store) ----

func rotationEnv(t *testing.T, recent int) *env {
	return newEnv(t, func(c *sequencer.Config) {
		c.Rotation = sequencer.RotationPolicy{Enabled: true, SealMessages: 2}
		c.RecentBytes = recent
	})
}

// rotationSource appends seven messages of lengths 1..7 to a new stream:
// segments [0,3) [3,10) [10,21) sealed, [21,28) open.
func rotationSource(t *testing.T, e *env, path string) []offset.Token {
	e.createStream(path, octet)
	var toks []offset.Token
	for i := range 7 {
		res := e.appendMsgs(path, octet, strings.Repeat(string(rune('a'+i)), i+1))
		toks = append(toks, res.Tail)
	}
	return toks
}

const rotationContent = "abbcccddddeeeeeffffffggggggg"

func TestRotationTokensAndReads(t *testing.T) {
	e := rotationEnv(t, 4) // only the newest messages are served from memory
	e.createStream("s", octet)
	wantTails := []string{
		"0000000000000000_0000000000000001",
		"0000000000000000_0000000000000003",
		"0000000000000001_0000000000000006",
		"0000000000000001_0000000000000010",
		"0000000000000002_0000000000000015",
		"0000000000000002_0000000000000021",
		"0000000000000003_0000000000000028",
	}
	seen := map[int64]string{} // position -> token text, first time seen
	for i := range 7 {
		res := e.appendMsgs("s", octet, strings.Repeat(string(rune('a'+i)), i+1))
		if got := res.Tail.String(); got != wantTails[i] {
			t.Fatalf("append %d: tail %s, want %s", i, got, wantTails[i])
		}
		h := e.acquire("s")
		snap := h.Snapshot()
		for p := int64(0); p <= snap.Tail; p++ {
			tok := snap.TokenFor(t.Context(), p).String()
			if old, ok := seen[p]; ok && old != tok {
				t.Fatalf("after append %d: token of %d changed from %s to %s", i, p, old, tok)
			}
			seen[p] = tok
		}
	}
	snap := e.acquire("s").Snapshot()
	wantSegs := []hotlog.Segment{{Seg: 0, Start: 0, End: 3, Messages: 2}, {Seg: 1, Start: 3, End: 10, Messages: 2}, {Seg: 2, Start: 10, End: 21, Messages: 2}}
	if len(snap.Segments) != len(wantSegs) {
		t.Fatalf("segments %+v", snap.Segments)
	}
	for i, w := range wantSegs {
		g := snap.Segments[i]
		if g.Seg != w.Seg || g.Start != w.Start || g.End != w.End || g.Messages != w.Messages || g.State != segment.Sealed {
			t.Fatalf("segment %d = %+v, want %+v (sealed)", i, g, w)
		}
	}
	if snap.OpenSeg != 3 || snap.OpenSegStart != 21 {
		t.Fatalf("open segment %d at %d", snap.OpenSeg, snap.OpenSegStart)
	}

	// Whole-stream reads: one chunk per segment, sealed ones flagged.
	chunks := e.readAll("s", 1<<20)
	wantChunks := []struct {
		from, end int64
		seg       int64
		sealed    bool
		endTok    string
	}{{0, 3, 0, true, wantTails[1]}, {3, 10, 1, true, wantTails[3]}, {10, 21, 2, true, wantTails[5]}, {21, 28, 3, false, wantTails[6]}}
	if len(chunks) != len(wantChunks) {
		t.Fatalf("%d chunks, want %d", len(chunks), len(wantChunks))
	}
	for i, w := range wantChunks {
		c := chunks[i]
		if c.From != w.from || c.End != w.end || c.Sealed != w.sealed || c.EndToken.String() != w.endTok {
			t.Fatalf("chunk %d = [%d,%d) sealed %v end %v; want [%d,%d) sealed %v end %s", i, c.From, c.End, c.Sealed, c.EndToken, w.from, w.end, w.sealed, w.endTok)
		}
		for _, m := range c.Messages {
			if m.Seg != w.seg {
				t.Fatalf("chunk %d holds a message of segment %d, want %d", i, m.Seg, w.seg)
			}
		}
	}
	for _, budget := range []int{1, 4, 5, 1 << 20} {
		if got := checkChunks(t, e, "s", budget); got != rotationContent {
			t.Fatalf("content (budget %d) %q", budget, got)
		}
	}
	// Reading from a segment's end token starts in the next segment; from
	// inside a message the first message is clipped.
	c, err := e.reg.ReadChunk(t.Context(), snap, 3, 1<<20)
	if err != nil || c.Messages[0].Seg != 1 || c.End != 10 {
		t.Fatalf("read from 3: %+v, %v", c, err)
	}
	c, err = e.reg.ReadChunk(t.Context(), snap, 4, 1<<20)
	if err != nil || string(c.Messages[0].Data) != "cc" || c.End != 10 {
		t.Fatalf("read from 4: %+v, %v", c, err)
	}
}

type rotFork struct {
	name  string
	off   int64
	sub   int64
	base  hotlog.ForkBase // expected ParentID-less fork base
	inher string          // inherited content
}

var rotForks = []rotFork{
	{"at zero", 0, 0, hotlog.ForkBase{Pos: 0, Seg: 0, SegStart: 0, Shared: true}, ""},
	{"end of first sealed segment", 3, 0, hotlog.ForkBase{Pos: 3, Seg: 0, SegStart: 0, Shared: false}, "abb"},
	{"message boundary inside a sealed segment", 6, 0, hotlog.ForkBase{Pos: 6, Seg: 1, SegStart: 3, Shared: true}, "abbccc"},
	{"mid-message inside a sealed segment", 8, 0, hotlog.ForkBase{Pos: 8, Seg: 1, SegStart: 3, Shared: true}, "abbcccdd"},
	{"sub-offset inside a sealed segment", 6, 2, hotlog.ForkBase{Pos: 6, Seg: 1, SegStart: 3, Shared: true}, "abbcccdd"},
	{"end of last sealed segment", 21, 0, hotlog.ForkBase{Pos: 21, Seg: 2, SegStart: 10, Shared: false}, rotationContent[:21]},
	{"inside the open segment", 24, 0, hotlog.ForkBase{Pos: 24, Seg: 3, SegStart: 21, Shared: true}, rotationContent[:24]},
	{"tail", 28, 0, hotlog.ForkBase{Pos: 28, Seg: 3, SegStart: 21, Shared: true}, rotationContent},
}

// TestRotationForks runs 16 parallel subtests, each well under a second.
func TestRotationForks(t *testing.T) {
	for _, mode := range cacheModes {
		for _, tc := range rotForks {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := rotationEnv(t, mode.recent)
				rotationSource(t, e, "s")
				res := e.fork("f", "s", tokAt(tc.off), tc.sub)
				srcID := e.acquire("s").ID()
				snap := res.Handle.Snapshot()
				want := tc.base
				want.ParentID = srcID
				if snap.Fork == nil || *snap.Fork != want {
					t.Fatalf("fork base %+v, want %+v", snap.Fork, want)
				}
				for _, budget := range []int{1, 3, 1 << 20} {
					if got := checkChunks(t, e, "f", budget); got != tc.inher {
						t.Fatalf("fork content (budget %d) %q, want %q", budget, got, tc.inher)
					}
				}
				// The source keeps sealing; the fork appends and seals on its own.
				before := map[int64]string{}
				for p := int64(0); p <= int64(len(tc.inher)); p++ {
					before[p] = e.tokenAt("f", p).String()
				}
				e.appendMsgs("s", octet, "SS")
				own := []string{"P", "QQ", "RRR", "SSSS", "T"}
				for _, m := range own {
					e.appendMsgs("f", octet, m)
				}
				full := tc.inher + strings.Join(own, "")
				for _, budget := range []int{1, 3, 6, 1 << 20} {
					if got := checkChunks(t, e, "f", budget); got != full {
						t.Fatalf("fork content after appends (budget %d) %q, want %q", budget, got, full)
					}
				}
				if got := checkChunks(t, e, "s", 1<<20); got != rotationContent+"SS" {
					t.Fatalf("source after appends: %q", got)
				}
				for p, tok := range before {
					if now := e.tokenAt("f", p).String(); now != tok {
						t.Fatalf("token of %d in the fork changed after seals: %s -> %s", p, tok, now)
					}
				}
				fsnap := e.acquire("f").Snapshot()
				if len(fsnap.Segments) == 0 {
					t.Fatal("fork never sealed a segment")
				}
				// A second-level fork inside the first fork's boundary segment.
				mid := int64(len(tc.inher)) + 1 // inside the fork's own "QQ"
				e.fork("g", "f", tokAt(mid), 0)
				if got := checkChunks(t, e, "g", 1<<20); got != full[:mid] {
					t.Fatalf("fork of fork: %q, want %q", got, full[:mid])
				}
				if got := checkChunks(t, e, "g", 1); got != full[:mid] {
					t.Fatalf("fork of fork (budget 1): %q, want %q", got, full[:mid])
				}
			})
		}
	}
}

// TestRotationForkTokensMatchSource checks invariant 3 of docs/offsets.md
// for forks: every inherited position has the same token in the source
// and the fork.
func TestRotationForkTokensMatchSource(t *testing.T) {
	for _, tc := range rotForks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := rotationEnv(t, 0)
			rotationSource(t, e, "s")
			e.fork("f", "s", tokAt(tc.off), tc.sub)
			for p := int64(1); p <= tc.off; p++ {
				if a, b := e.tokenAt("f", p), e.tokenAt("s", p); a != b {
					t.Fatalf("token of inherited position %d: fork %v, source %v", p, a, b)
				}
			}
		})
	}
}

// TestForkTokenOfZero checks invariant 5 of docs/offsets.md: position 0 is
// 0000000000000000_0000000000000000 in every stream, forks included.
func TestForkTokenOfZero(t *testing.T) {
	for _, tc := range rotForks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := rotationEnv(t, 0)
			rotationSource(t, e, "s")
			e.fork("f", "s", tokAt(tc.off), tc.sub)
			if got := e.tokenAt("f", 0); got != offset.Zero {
				t.Fatalf("token of 0 in the fork: %v, want %v", got, offset.Zero)
			}
		})
	}
}

// TestForkReadLeavesSourceIntact: reading a fork must not change what the
// source returns. (Regression: readBoundary appended the fork's messages to
// a slice aliasing the parent's tail cache.)
func TestForkReadLeavesSourceIntact(t *testing.T) {
	tests := []struct {
		name  string
		off   *offset.Token
		later string // appended to the source after the fork
	}{
		{"fork at a message boundary", tokAt(5), ""},
		{"fork at the tail, source appends later", nil, "??"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil) // default 256 KiB tail cache
			e.createStream("src", textT)
			for _, m := range []string{"hello", "world", "!!"} {
				e.appendMsgs("src", textT, m)
			}
			e.fork("f", "src", tc.off, 0)
			if tc.later != "" {
				e.appendMsgs("src", textT, tc.later)
			}
			e.appendMsgs("f", textT, "XY")
			_ = e.content("f") // the read that corrupts the source's cache
			want := "helloworld!!" + tc.later
			if got := e.content("src"); got != want {
				t.Fatalf("source reads %q after a fork read, want %q", got, want)
			}
		})
	}
}

// TestJSONForkReadInsideInheritedMessage: like reads of the source, reads
// of a JSON fork from inside a message must be refused rather than return
// a fragment of JSON.
func TestJSONForkReadInsideInheritedMessage(t *testing.T) {
	e := newEnv(t, nil)
	e.createStream("src", jsonT)
	e.appendMsgs("src", jsonT, `{"a":4}`)
	e.fork("f", "src", nil, 0)
	for _, path := range []string{"src", "f"} {
		h := e.acquire(path)
		c, err := e.reg.ReadChunk(t.Context(), h.Snapshot(), 1, 1<<20)
		if err == nil {
			t.Fatalf("%s: read from inside a JSON message returned %q", path, c.Messages[0].Data)
		}
		wantKind(t, err, sequencer.KindBadRequest)
	}
}
