package sequencer_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

// success marks a step that must be accepted.
const success = sequencer.Kind(-1)

type prodStep struct {
	prod      *protocol.Producer // nil: no producer headers
	body      string             // "" with close: a close-only request
	close     bool
	streamSeq string
	ct        string // request content type; "" means the stream's

	kind     sequencer.Kind // success or the expected error kind
	outcome  sequencer.Outcome
	epoch    int64 // echoed epoch (success) or current epoch (KindStaleEpoch)
	seq      int64 // echoed seq (success)
	expected int64 // KindSeqGap
	received int64 // KindSeqGap
	closed   bool  // result's Closed (success)
}

func pr(id string, epoch, seq int64) *protocol.Producer {
	return &protocol.Producer{ID: id, Epoch: epoch, Seq: seq}
}

func ok(p *protocol.Producer, body string) prodStep {
	s := prodStep{prod: p, body: body, kind: success, outcome: sequencer.Appended}
	if p != nil {
		s.epoch, s.seq = p.Epoch, p.Seq
	}
	return s
}

func dup(p *protocol.Producer, body string, epoch, highest int64) prodStep {
	return prodStep{prod: p, body: body, kind: success, outcome: sequencer.Duplicate, epoch: epoch, seq: highest}
}

func fail(p *protocol.Producer, body string, k sequencer.Kind) prodStep {
	return prodStep{prod: p, body: body, kind: k}
}

func gap(p *protocol.Producer, body string, expected int64) prodStep {
	return prodStep{prod: p, body: body, kind: sequencer.KindSeqGap, expected: expected, received: p.Seq}
}

func stale(p *protocol.Producer, body string, current int64) prodStep {
	return prodStep{prod: p, body: body, kind: sequencer.KindStaleEpoch, epoch: current}
}

func (s prodStep) closing() prodStep         { s.close = true; s.closed = s.kind == success; return s }
func (s prodStep) withSeq(v string) prodStep { s.streamSeq = v; return s }
func (s prodStep) withCT(ct string) prodStep { s.ct = ct; return s }
func (s prodStep) stillOpen() prodStep       { s.closed = false; return s }

func TestProducerStateMachine(t *testing.T) {
	tests := []struct {
		name    string
		steps   []prodStep
		content string
		closed  bool
	}{
		{
			name:    "first request seq 0 is accepted",
			steps:   []prodStep{ok(pr("p", 0, 0), "a")},
			content: "a",
		},
		{
			name:    "any epoch may start at seq 0",
			steps:   []prodStep{ok(pr("p", 7, 0), "a")},
			content: "a",
		},
		{
			name: "duplicate reports the highest accepted seq",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a"),
				ok(pr("p", 0, 1), "b"),
				dup(pr("p", 0, 0), "a", 0, 1),
				dup(pr("p", 0, 1), "b", 0, 1),
				ok(pr("p", 0, 2), "c"),
			},
			content: "abc",
		},
		{
			name: "sequence gap reports expected and received",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a"),
				gap(pr("p", 0, 2), "c", 1),
				gap(pr("p", 0, 9), "z", 1),
				ok(pr("p", 0, 1), "b"),
				gap(pr("p", 0, 3), "d", 2),
			},
			content: "ab",
		},
		{
			name: "stale epoch reports the current epoch",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a"),
				ok(pr("p", 1, 0), "b"),
				stale(pr("p", 0, 1), "x", 1),
				stale(pr("p", 0, 0), "a", 1), // even an old-epoch duplicate is fenced
				ok(pr("p", 1, 1), "c"),
			},
			content: "abc",
		},
		{
			name: "epoch bump with seq 0 resets the sequence",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a"),
				ok(pr("p", 0, 1), "b"),
				ok(pr("p", 3, 0), "c"),
				dup(pr("p", 3, 0), "c", 3, 0),
				ok(pr("p", 3, 1), "d"),
			},
			content: "abcd",
		},
		{
			name: "epoch bump with seq > 0 is a bad request",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a"),
				fail(pr("p", 1, 1), "x", sequencer.KindBadRequest),
				fail(pr("p", 2, 5), "x", sequencer.KindBadRequest),
				ok(pr("p", 0, 1), "b"), // the old epoch is still current
				ok(pr("p", 1, 0), "c"),
			},
			content: "abc",
		},
		{
			name: "unknown producer must start at seq 0",
			steps: []prodStep{
				gap(pr("p", 0, 3), "x", 0),
				gap(pr("p", 5, 1), "x", 0), // whatever the epoch
				ok(pr("p", 5, 0), "a"),
			},
			content: "a",
		},
		{
			name: "producers are independent",
			steps: []prodStep{
				ok(pr("a", 0, 0), "a0"),
				ok(pr("b", 0, 0), "b0"),
				ok(pr("a", 0, 1), "a1"),
				ok(pr("b", 1, 0), "b1"),
				dup(pr("a", 0, 1), "a1", 0, 1),
				stale(pr("b", 0, 1), "x", 1),
				gap(pr("c", 0, 1), "x", 0),
				gap(pr("a", 0, 3), "x", 2),
				ok(pr("c", 0, 0), "c0"),
				ok(nil, "n"),
			},
			content: "a0b0a1b1c0n",
		},
		{
			name: "producer ids are case sensitive and may hold any text",
			steps: []prodStep{
				ok(pr("P", 0, 0), "1"),
				ok(pr("p", 0, 0), "2"),
				ok(pr("ünï cödé/id with spaces", 0, 0), "3"),
				dup(pr("P", 0, 0), "1", 0, 0),
			},
			content: "123",
		},
		{
			name: "close-only with producer, then its retry is a duplicate",
			steps: []prodStep{
				ok(pr("p", 0, 0), "x"),
				ok(pr("p", 0, 1), "").closing(),
				dup(pr("p", 0, 1), "", 0, 1).closing(),
			},
			content: "x",
			closed:  true,
		},
		{
			name: "append-and-close, then its retry is a duplicate",
			steps: []prodStep{
				ok(pr("p", 0, 0), "x").closing(),
				dup(pr("p", 0, 0), "x", 0, 0).closing(),
			},
			content: "x",
			closed:  true,
		},
		{
			name: "appends with another tuple to a closed stream are refused",
			steps: []prodStep{
				ok(pr("p", 0, 0), "x").closing(),
				fail(pr("q", 0, 0), "y", sequencer.KindClosed),
				fail(pr("p", 0, 1), "y", sequencer.KindClosed),
				fail(pr("p", 1, 0), "y", sequencer.KindClosed),
				fail(pr("p", 0, 5), "y", sequencer.KindClosed), // closed wins over a gap
				fail(nil, "y", sequencer.KindClosed),
				fail(pr("q", 0, 0), "y", sequencer.KindClosed).closing(),
			},
			content: "x",
			closed:  true,
		},
		{
			name: "stale epoch is reported on a closed stream",
			steps: []prodStep{
				ok(pr("p", 1, 0), "x").closing(),
				stale(pr("p", 0, 0), "y", 1),
			},
			content: "x",
			closed:  true,
		},
		{
			name: "plain close of a closed stream is idempotent",
			steps: []prodStep{
				ok(nil, "x").closing(),
				ok(nil, "").closing(),
				ok(nil, "").closing(),
			},
			content: "x",
			closed:  true,
		},
		{
			name: "close-only duplicate on an open stream does not close it",
			steps: []prodStep{
				ok(pr("p", 0, 0), "x"),
				dup(pr("p", 0, 0), "", 0, 0).closing().stillOpen(),
				ok(nil, "y"),
			},
			content: "xy",
		},
		{
			name: "a rejected request does not advance the producer",
			steps: []prodStep{
				fail(pr("p", 0, 0), "x", sequencer.KindConflict).withCT(textT),
				ok(pr("p", 0, 0), "a"),
				fail(pr("p", 0, 1), "x", sequencer.KindConflict).withCT(jsonT),
				ok(pr("p", 0, 1), "b"),
			},
			content: "ab",
		},
		{
			name: "Stream-Seq compares bytewise: 2 then 10 is refused",
			steps: []prodStep{
				ok(nil, "a").withSeq("2"),
				fail(nil, "b", sequencer.KindConflict).withSeq("10"),
				fail(nil, "c", sequencer.KindConflict).withSeq("2"),
				ok(nil, "d").withSeq("3"),
			},
			content: "ad",
		},
		{
			name: "Stream-Seq compares bytewise: 09 then 10 is accepted",
			steps: []prodStep{
				ok(nil, "a").withSeq("09"),
				ok(nil, "b").withSeq("10"),
				fail(nil, "c", sequencer.KindConflict).withSeq("1"),
				ok(nil, "d").withSeq("9"),
				ok(nil, "e").withSeq("9a"),
			},
			content: "abde",
		},
		{
			name: "requests without Stream-Seq are not checked against it",
			steps: []prodStep{
				ok(nil, "a").withSeq("5"),
				ok(nil, "b"),
				fail(nil, "c", sequencer.KindConflict).withSeq("5"),
				ok(nil, "d").withSeq("6"),
			},
			content: "abd",
		},
		{
			name: "producer duplicate wins over Stream-Seq",
			steps: []prodStep{
				ok(pr("p", 0, 0), "a").withSeq("1"),
				dup(pr("p", 0, 0), "a", 0, 0).withSeq("1"),
				fail(pr("p", 0, 1), "b", sequencer.KindConflict).withSeq("1"),
				ok(pr("p", 0, 1), "b").withSeq("2"), // the refused request did not advance p
			},
			content: "ab",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.createStream("s", octet)
			var tail int64
			for i, st := range tc.steps {
				ct := st.ct
				if ct == "" {
					ct = octet
				}
				req := &sequencer.AppendRequest{ContentType: mustCT(t, ct), Close: st.close, Producer: st.prod, StreamSeq: st.streamSeq}
				if st.body != "" {
					req.Messages = byteMsgs(st.body)
				}
				res, err := e.tryAppend("s", req)
				desc := fmt.Sprintf("step %d (%+v body=%q close=%v seq=%q)", i, st.prod, st.body, st.close, st.streamSeq)
				if st.kind != success {
					if err == nil {
						t.Fatalf("%s: accepted (%+v), want %s", desc, res, kindName(st.kind))
					}
					se := wantKind(t, err, st.kind)
					switch st.kind {
					case sequencer.KindStaleEpoch:
						if se.Epoch != st.epoch {
							t.Fatalf("%s: stale epoch reports epoch %d, want %d", desc, se.Epoch, st.epoch)
						}
					case sequencer.KindSeqGap:
						if se.ExpectedSeq != st.expected || se.ReceivedSeq != st.received {
							t.Fatalf("%s: gap expected/received = %d/%d, want %d/%d", desc, se.ExpectedSeq, se.ReceivedSeq, st.expected, st.received)
						}
					case sequencer.KindClosed:
						if want := e.tokenAt("s", tail).String(); se.Tail != want {
							t.Fatalf("%s: closed error tail %q, want %q", desc, se.Tail, want)
						}
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				if res.Outcome != st.outcome {
					t.Fatalf("%s: outcome %v, want %v", desc, res.Outcome, st.outcome)
				}
				if res.Outcome == sequencer.Appended {
					tail += int64(len(st.body))
				}
				if res.Tail.Position != tail {
					t.Fatalf("%s: tail %v, want position %d", desc, res.Tail, tail)
				}
				if res.Closed != st.closed {
					t.Fatalf("%s: closed %v, want %v", desc, res.Closed, st.closed)
				}
				if st.prod != nil && (res.Epoch != st.epoch || res.Seq != st.seq) {
					t.Fatalf("%s: echoed epoch/seq %d/%d, want %d/%d", desc, res.Epoch, res.Seq, st.epoch, st.seq)
				}
			}
			if got := e.content("s"); got != tc.content {
				t.Fatalf("content %q, want %q", got, tc.content)
			}
			if got := e.acquire("s").Snapshot().Closed; got != tc.closed {
				t.Fatalf("stream closed = %v, want %v", got, tc.closed)
			}
		})
	}
}

// TestCloseOnlyByAnotherTupleOnClosedStream pins the closed-stream rule for
// close-only requests that carry producer headers: only a retry of the
// request that closed the stream is idempotent; any other tuple is told
// the stream is closed (the stored ClosedBy key exists for this check).
func TestCloseOnlyByAnotherTupleOnClosedStream(t *testing.T) {
	tests := []struct {
		name string
		p    *protocol.Producer
	}{
		{"other producer", pr("q", 0, 0)},
		{"next seq of the closer", pr("p", 0, 2)},
		{"new epoch of the closer", pr("p", 1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.createStream("s", octet)
			if _, err := e.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet),
				Messages: byteMsgs("x"), Producer: pr("p", 0, 0)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.tryAppend("s", &sequencer.AppendRequest{Close: true, Producer: pr("p", 0, 1)}); err != nil {
				t.Fatal(err)
			}
			res, err := e.tryAppend("s", &sequencer.AppendRequest{Close: true, Producer: tc.p})
			if err == nil {
				t.Fatalf("close-only by %+v on a stream closed by p/0/1 accepted: %+v", tc.p, res)
			}
			wantKind(t, err, sequencer.KindClosed)
		})
	}
}

func TestGroupCommitConcurrentAppends(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		producer bool
	}{
		{"default batch", 0, false},
		{"small batches", 7, false},
		{"one producer per writer", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *sequencer.Config) { c.MaxBatch = tc.maxBatch; c.RecentBytes = 512 })
			e.createStream("s", octet)
			h := e.acquire("s")
			const n = 200
			msgs := make([]string, n)
			total := int64(0)
			for i := range msgs {
				msgs[i] = fmt.Sprintf("<%03d:%s>", i, strings.Repeat("x", i%13))
				total += int64(len(msgs[i]))
			}
			results := make([]sequencer.AppendResult, n)
			errs := make([]error, n)
			var start, wg sync.WaitGroup
			start.Add(1)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start.Wait()
					req := &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs(msgs[i])}
					if tc.producer {
						req.Producer = pr(fmt.Sprintf("w%d", i), 0, 0)
					}
					results[i], errs[i] = h.Append(t.Context(), req)
				}()
			}
			start.Done()
			wg.Wait()
			seen := map[string]int{}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if results[i].Outcome != sequencer.Appended {
					t.Fatalf("append %d: outcome %v", i, results[i].Outcome)
				}
				tok := results[i].Tail.String()
				if j, dup := seen[tok]; dup {
					t.Fatalf("appends %d and %d both report tail %s", j, i, tok)
				}
				seen[tok] = i
			}
			if got := h.Snapshot().Tail; got != total {
				t.Fatalf("tail %d, want %d", got, total)
			}
			// Read back in small chunks: every message exactly once, in a
			// contiguous position order, each ending where its append said.
			endOf := map[string]int64{}
			var pos int64
			for _, c := range e.readAll("s", 64) {
				for _, m := range c.Messages {
					if m.Pos != pos {
						t.Fatalf("message at %d, want %d (gap or overlap)", m.Pos, pos)
					}
					pos = m.End()
					if _, dup := endOf[string(m.Data)]; dup {
						t.Fatalf("message %q read twice", m.Data)
					}
					endOf[string(m.Data)] = m.End()
				}
			}
			if pos != total || len(endOf) != n {
				t.Fatalf("read %d bytes in %d messages, want %d in %d", pos, len(endOf), total, n)
			}
			for i, m := range msgs {
				end, ok := endOf[m]
				if !ok {
					t.Fatalf("message %d (%q) not read back", i, m)
				}
				if results[i].Tail.Position != end {
					t.Fatalf("append %d reported tail %d but its message ends at %d", i, results[i].Tail.Position, end)
				}
			}
			if tc.producer {
				// Every writer's state was committed: a retry is a duplicate.
				for _, i := range []int{0, 99, 199} {
					res, err := h.Append(t.Context(), &sequencer.AppendRequest{ContentType: mustCT(t, octet),
						Messages: byteMsgs(msgs[i]), Producer: pr(fmt.Sprintf("w%d", i), 0, 0)})
					if err != nil || res.Outcome != sequencer.Duplicate {
						t.Fatalf("retry of writer %d: %+v, %v; want duplicate", i, res, err)
					}
				}
			}
			tails := make([]int64, 0, n)
			for _, r := range results {
				tails = append(tails, r.Tail.Position)
			}
			slices.Sort(tails)
			if tails[n-1] != total {
				t.Fatalf("largest reported tail %d, want %d", tails[n-1], total)
			}
		})
	}
}
