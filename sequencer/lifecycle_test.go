package sequencer_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
)

func dur(d time.Duration) *time.Duration { return &d }

func TestCreateIdempotencyAndConflicts(t *testing.T) {
	exp := time.UnixMilli(1_900_000_000_123).UTC()
	expOther := exp.Add(time.Second)
	base := func(t *testing.T) *sequencer.CreateRequest {
		return &sequencer.CreateRequest{Path: "s", ContentType: ctPtr(t, textT), TTL: dur(time.Hour)}
	}
	tests := []struct {
		name    string
		first   func(t *testing.T) *sequencer.CreateRequest
		again   func(t *testing.T) *sequencer.CreateRequest
		created bool
		kind    sequencer.Kind // success or the error kind of the second create
	}{
		{"identical", base, base, false, success},
		{"same media, other parameters", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.ContentType = ctPtr(t, "TEXT/plain; charset=utf-8")
			return r
		}, false, success},
		{"different content type", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.ContentType = ctPtr(t, jsonT)
			return r
		}, false, sequencer.KindConflict},
		{"default content type against text", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.ContentType = nil
			return r
		}, false, sequencer.KindConflict},
		{"different TTL", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.TTL = dur(2 * time.Hour)
			return r
		}, false, sequencer.KindConflict},
		{"TTL omitted", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.TTL = nil
			return r
		}, false, sequencer.KindConflict},
		{"expires-at instead of TTL", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.TTL, r.ExpiresAt = nil, &exp
			return r
		}, false, sequencer.KindConflict},
		{"same expires-at in another zone", func(t *testing.T) *sequencer.CreateRequest {
			return &sequencer.CreateRequest{Path: "s", ExpiresAt: &exp}
		}, func(t *testing.T) *sequencer.CreateRequest {
			in := exp.In(time.FixedZone("x", 2*3600))
			return &sequencer.CreateRequest{Path: "s", ExpiresAt: &in}
		}, false, success},
		{"different expires-at", func(t *testing.T) *sequencer.CreateRequest {
			return &sequencer.CreateRequest{Path: "s", ExpiresAt: &exp}
		}, func(t *testing.T) *sequencer.CreateRequest {
			return &sequencer.CreateRequest{Path: "s", ExpiresAt: &expOther}
		}, false, sequencer.KindConflict},
		{"closed against open", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Closed = true
			return r
		}, false, sequencer.KindConflict},
		{"closed twice", func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Closed = true
			return r
		}, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Closed = true
			return r
		}, false, success},
		{"open against closed", func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Closed = true
			return r
		}, base, false, sequencer.KindConflict},
		{"fork request on a plain stream", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Fork = &sequencer.ForkRequest{Source: "src"}
			return r
		}, false, sequencer.KindConflict},
		{"initial data is ignored when identical", base, func(t *testing.T) *sequencer.CreateRequest {
			r := base(t)
			r.Initial = byteMsgs("ignored")
			return r
		}, false, success},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.create(&sequencer.CreateRequest{Path: "src", ContentType: ctPtr(t, textT), TTL: dur(time.Hour)})
			first := e.create(tc.first(t))
			if !first.Created {
				t.Fatal("first create reported Created=false")
			}
			res, err := e.reg.Create(t.Context(), tc.again(t))
			if tc.kind != success {
				wantKind(t, err, tc.kind)
				return
			}
			if err != nil {
				t.Fatalf("second create: %v", err)
			}
			defer res.Handle.Release()
			if res.Created != tc.created {
				t.Fatalf("Created = %v, want %v", res.Created, tc.created)
			}
			if res.Handle.ID() != first.Handle.ID() {
				t.Fatalf("second create returned stream %d, want %d", res.Handle.ID(), first.Handle.ID())
			}
			if got := e.content("s"); got != "" {
				t.Fatalf("content after idempotent create = %q, want empty", got)
			}
		})
	}
}

// TestPlainCreateOnForkConflicts: a create without fork headers asks for a
// root stream, so on the path of an existing fork it is a conflict, just as
// a fork request on a plain stream is.
func TestPlainCreateOnForkConflicts(t *testing.T) {
	e := newEnv(t, nil)
	e.createStream("src", textT)
	e.fork("f", "src", nil, 0)
	res, err := e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "f", ContentType: ctPtr(t, textT)})
	if err == nil {
		res.Handle.Release()
		t.Fatalf("plain create on a fork accepted (Created=%v)", res.Created)
	}
	wantKind(t, err, sequencer.KindConflict)
}

func TestCreateWithInitialData(t *testing.T) {
	e := newEnv(t, nil)
	res := e.create(&sequencer.CreateRequest{Path: "j", ContentType: ctPtr(t, jsonT), Initial: byteMsgs(`{"a":1}`, `2`)})
	if !res.Created {
		t.Fatal("not created")
	}
	if got, want := e.messages("j", 1<<20), []string{`{"a":1}`, `2`}; !equalStrings(got, want) {
		t.Fatalf("messages %q, want %q", got, want)
	}
	if got := e.tail("j"); got != 9 { // one record: {"a":1},2
		t.Fatalf("tail %d, want 9", got)
	}
	// A stream created closed refuses appends but holds its initial data.
	e.create(&sequencer.CreateRequest{Path: "c", Closed: true, Initial: byteMsgs("done")})
	_, err := e.tryAppend("c", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x")})
	if se := wantKind(t, err, sequencer.KindClosed); se.Tail != "0000000000000000_0000000000000004" {
		t.Fatalf("closed tail %q", se.Tail)
	}
	if got := e.content("c"); got != "done" {
		t.Fatalf("content %q", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fileGone(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s: %v", path, err)
	}
	return errors.Is(err, fs.ErrNotExist)
}

func TestDeleteAndRecreate(t *testing.T) {
	e := newEnv(t, nil)
	e.createStream("s", octet)
	e.appendMsgs("s", octet, "old data")
	h, err := e.reg.Acquire(t.Context(), "s", true)
	if err != nil {
		t.Fatal(err)
	}
	oldID := h.ID()
	h.Release()
	if err := e.reg.Delete(t.Context(), "s"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = e.reg.Acquire(t.Context(), "s", true)
	wantKind(t, err, sequencer.KindNotFound)
	wantKind(t, e.reg.Delete(t.Context(), "s"), sequencer.KindNotFound)
	if !fileGone(t, e.reg.StreamPath(oldID)) {
		t.Fatalf("hot log %s still exists after a hard delete", e.reg.StreamPath(oldID))
	}
	if _, err := e.cat.Get(t.Context(), "s"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("catalog row after delete: %v", err)
	}

	res := e.create(&sequencer.CreateRequest{Path: "s", ContentType: ctPtr(t, jsonT)})
	if !res.Created {
		t.Fatal("recreate reported Created=false")
	}
	if res.Handle.ID() == oldID {
		t.Fatalf("recreated stream reuses id %d", oldID)
	}
	h2 := e.acquire("s")
	if snap := h2.Snapshot(); snap.Tail != 0 || snap.Closed || snap.ContentType != jsonT {
		t.Fatalf("recreated stream: tail %d closed %v type %q", snap.Tail, snap.Closed, snap.ContentType)
	}
	if got := e.content("s"); got != "" {
		t.Fatalf("recreated stream has content %q", got)
	}
}

func TestDeleteMissing(t *testing.T) {
	e := newEnv(t, nil)
	wantKind(t, e.reg.Delete(t.Context(), "nope"), sequencer.KindNotFound)
	_, err := e.reg.Acquire(t.Context(), "nope", false)
	wantKind(t, err, sequencer.KindNotFound)
	_, err = e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "f", Fork: &sequencer.ForkRequest{Source: "nope"}})
	wantKind(t, err, sequencer.KindNotFound)
}

// TestAppendAfterConcurrentDelete: a request that acquired the stream just
// before it was deleted must learn promptly that the stream is gone.
func TestAppendAfterConcurrentDelete(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 20 {
		path := fmt.Sprintf("s%d", i)
		e.createStream(path, octet)
		h, err := e.reg.Acquire(t.Context(), path, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.reg.Delete(t.Context(), path); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := h.Append(t.Context(), &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x")})
			done <- err
		}()
		select {
		case err := <-done:
			wantKind(t, err, sequencer.KindNotFound)
		case <-time.After(2 * time.Second):
			t.Fatalf("attempt %d: Append on a deleted stream's handle still blocked after 2s", i)
		}
		h.Release()
	}
}

func TestSoftDeleteWithFork(t *testing.T) {
	e := newEnv(t, nil)
	e.createStream("a", textT)
	e.appendMsgs("a", textT, "hello")
	e.fork("b", "a", nil, 0)
	aID := e.acquire("a").ID()
	if err := sequencer.FlushHotLog(e.acquire("a")); err != nil {
		t.Fatal(err) // its file is written now
	}

	if err := e.reg.Delete(t.Context(), "a"); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	for _, renew := range []bool{true, false} {
		_, err := e.reg.Acquire(t.Context(), "a", renew)
		wantKind(t, err, sequencer.KindGone)
	}
	wantKind(t, e.reg.Delete(t.Context(), "a"), sequencer.KindGone)
	_, err := e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "a", ContentType: ctPtr(t, textT)})
	wantKind(t, err, sequencer.KindConflict)
	wantKind(t, e.forkErr("c", "a", nil, 0), sequencer.KindConflict)
	if fileGone(t, e.reg.StreamPath(aID)) {
		t.Fatal("soft-deleted stream's hot log was removed while a fork references it")
	}

	// The fork still reads the inherited data and takes appends.
	e.appendMsgs("b", textT, " world")
	if got := e.content("b"); got != "hello world" {
		t.Fatalf("fork content %q", got)
	}

	// Deleting the last fork removes the soft-deleted source for real.
	if err := e.reg.Delete(t.Context(), "b"); err != nil {
		t.Fatalf("Delete(b): %v", err)
	}
	_, err = e.reg.Acquire(t.Context(), "a", false)
	wantKind(t, err, sequencer.KindNotFound)
	if !fileGone(t, e.reg.StreamPath(aID)) {
		t.Fatal("source hot log survives the cascade")
	}
	res := e.create(&sequencer.CreateRequest{Path: "a", ContentType: ctPtr(t, textT)})
	if !res.Created || e.content("a") != "" {
		t.Fatalf("recreate after cascade: created %v content %q", res.Created, e.content("a"))
	}
}

func TestDeleteCascadeChain(t *testing.T) {
	// a <- b <- c, each with its own data; deleting in various orders.
	type state int
	const (
		live    state = iota
		gone          // soft-deleted: 410
		missing       // hard-deleted: 404
	)
	names := []string{"a", "b", "c"}
	tests := []struct {
		name  string
		order []string
		after [][3]state // states of a, b, c after each delete
	}{
		{"root first", []string{"a", "b", "c"}, [][3]state{
			{gone, live, live}, {gone, gone, live}, {missing, missing, missing}}},
		{"leaf first", []string{"c", "b", "a"}, [][3]state{
			{live, live, missing}, {live, missing, missing}, {missing, missing, missing}}},
		{"middle first", []string{"b", "c", "a"}, [][3]state{
			{live, gone, live}, {live, missing, missing}, {missing, missing, missing}}},
		{"middle, root, leaf", []string{"b", "a", "c"}, [][3]state{
			{live, gone, live}, {gone, gone, live}, {missing, missing, missing}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.createStream("a", octet)
			e.appendMsgs("a", octet, "A")
			e.fork("b", "a", nil, 0)
			e.appendMsgs("b", octet, "B")
			e.fork("c", "b", nil, 0)
			e.appendMsgs("c", octet, "C")
			ids := map[string]int64{}
			for _, n := range names {
				ids[n] = e.acquire(n).ID()
			}
			for i, victim := range tc.order {
				if err := e.reg.Delete(t.Context(), victim); err != nil {
					t.Fatalf("Delete(%s): %v", victim, err)
				}
				for j, n := range names {
					want := tc.after[i][j]
					_, err := e.reg.Acquire(t.Context(), n, false)
					switch want {
					case live:
						if err != nil {
							t.Fatalf("after deleting %v: Acquire(%s): %v", tc.order[:i+1], n, err)
						}
					case gone:
						wantKind(t, err, sequencer.KindGone)
					case missing:
						wantKind(t, err, sequencer.KindNotFound)
						if !fileGone(t, e.reg.StreamPath(ids[n])) {
							t.Fatalf("after deleting %v: hot log of %s still exists", tc.order[:i+1], n)
						}
					}
				}
				// Live descendants still read the whole chain.
				wantContent := map[string]string{"a": "A", "b": "AB", "c": "ABC"}
				for j, n := range names {
					if tc.after[i][j] == live {
						if got := e.content(n); got != wantContent[n] {
							t.Fatalf("after deleting %v: %s reads %q, want %q", tc.order[:i+1], n, got, wantContent[n])
						}
					}
				}
			}
			if pend, err := e.cat.PendingGC(t.Context(), 0); err != nil || len(pend) != 0 {
				t.Fatalf("pending gc after all deletes: %v, %v", pend, err)
			}
		})
	}
}

// ttlEnv is a registry whose clock the test controls.
func ttlEnv(t *testing.T) (*env, *clock) {
	clk := newClock()
	return newEnv(t, func(c *sequencer.Config) { c.Now = clk.Now }), clk
}

func TestSlidingTTL(t *testing.T) {
	type step struct {
		advance time.Duration
		renew   bool
		alive   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"expires without access", []step{
			{9 * time.Second, false, true}, {time.Second, false, false}}},
		{"head does not extend", []step{
			{8 * time.Second, false, true}, {3 * time.Second, false, false}}},
		{"reads extend", []step{
			{8 * time.Second, true, true}, {3 * time.Second, true, true}, {9 * time.Second, false, true},
			{time.Second, false, false}}},
		{"many short renewals", []step{
			{6 * time.Second, true, true}, {6 * time.Second, true, true}, {6 * time.Second, true, true},
			{6 * time.Second, true, true}, {10 * time.Second, false, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, clk := ttlEnv(t)
			e.create(&sequencer.CreateRequest{Path: "s", TTL: dur(10 * time.Second)})
			for i, st := range tc.steps {
				clk.Advance(st.advance)
				h, err := e.reg.Acquire(t.Context(), "s", st.renew)
				if st.alive {
					if err != nil {
						t.Fatalf("step %d: Acquire: %v", i, err)
					}
					h.Release()
					continue
				}
				wantKind(t, err, sequencer.KindNotFound)
			}
		})
	}
}

func TestAppendsExtendTTL(t *testing.T) {
	e, clk := ttlEnv(t)
	e.create(&sequencer.CreateRequest{Path: "s", TTL: dur(10 * time.Second)})
	for range 4 {
		clk.Advance(7 * time.Second)
		e.appendMsgs("s", octet, "x") // acquires with renew
	}
	clk.Advance(9 * time.Second)
	if got := e.content("s"); got != "xxxx" {
		t.Fatalf("content %q", got)
	}
}

// TestAccessRecordedOnlyWithTTL: an access moves a stream's last access
// time in the catalog only if the stream has a TTL, the one thing the
// time serves.
func TestAccessRecordedOnlyWithTTL(t *testing.T) {
	e, clk := ttlEnv(t)
	created := clk.Now()
	e.create(&sequencer.CreateRequest{Path: "ttl", TTL: dur(time.Hour)})
	e.create(&sequencer.CreateRequest{Path: "plain"})
	clk.Advance(time.Minute)
	for _, p := range []string{"ttl", "plain"} {
		h, err := e.reg.Acquire(t.Context(), p, true)
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
	}
	e.close() // flushes access times
	cat, err := catalog.Open(t.Context(), filepath.Join(e.dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for p, want := range map[string]time.Time{"ttl": clk.Now(), "plain": created} {
		row, err := cat.Get(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if !row.LastAccess.Equal(want) {
			t.Errorf("%s: last access %v, want %v", p, row.LastAccess, want)
		}
	}
}

func TestExpiresAt(t *testing.T) {
	e, clk := ttlEnv(t)
	at := clk.Now().Add(5 * time.Second)
	e.create(&sequencer.CreateRequest{Path: "s", ExpiresAt: &at})
	clk.Advance(4 * time.Second)
	h, err := e.reg.Acquire(t.Context(), "s", true) // renewing does not move an absolute expiry
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	clk.Advance(time.Second)
	_, err = e.reg.Acquire(t.Context(), "s", true)
	wantKind(t, err, sequencer.KindNotFound)

	// The path is free again.
	res := e.create(&sequencer.CreateRequest{Path: "s"})
	if !res.Created {
		t.Fatal("create on an expired path did not create")
	}
}

func TestSweeperRemovesExpiredStreams(t *testing.T) {
	e, clk := ttlEnv(t)
	res := e.create(&sequencer.CreateRequest{Path: "s", TTL: dur(time.Second), Initial: byteMsgs("x")})
	id := res.Handle.ID()
	e.create(&sequencer.CreateRequest{Path: "keep", Initial: byteMsgs("y")})
	clk.Advance(2 * time.Second)
	// No request touches the stream: the background sweeper (every 200ms)
	// must delete it.
	eventually(t, 3*time.Second, "sweeper to delete the expired stream", func() bool {
		_, err := e.cat.Get(t.Context(), "s")
		return errors.Is(err, catalog.ErrNotFound)
	})
	eventually(t, time.Second, "hot log removal", func() bool { return fileGone(t, e.reg.StreamPath(id)) })
	if got := e.content("keep"); got != "y" {
		t.Fatalf("unexpiring stream content %q", got)
	}
}

func TestExpiryWithForksIsSoft(t *testing.T) {
	e, clk := ttlEnv(t)
	e.create(&sequencer.CreateRequest{Path: "a", TTL: dur(10 * time.Second), Initial: byteMsgs("data")})
	inherit := e.fork("inherits", "a", nil, 0)
	if inherit.Handle.Info.TTL != 10*time.Second {
		t.Fatalf("fork TTL %v, want the source's 10s", inherit.Handle.Info.TTL)
	}
	e.create(&sequencer.CreateRequest{Path: "forever", TTL: dur(0), Fork: &sequencer.ForkRequest{Source: "a"}})
	clk.Advance(11 * time.Second)
	_, err := e.reg.Acquire(t.Context(), "a", false)
	wantKind(t, err, sequencer.KindGone)
	_, err = e.reg.Acquire(t.Context(), "inherits", false)
	wantKind(t, err, sequencer.KindNotFound)
	if got := e.content("forever"); got != "data" {
		t.Fatalf("fork of an expired source reads %q", got)
	}
	_, err = e.reg.Create(t.Context(), &sequencer.CreateRequest{Path: "a"})
	wantKind(t, err, sequencer.KindConflict)
}

func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	e1 := openEnv(t, dir, nil)
	e1.createStream("s", octet)
	for i, m := range []string{"a", "b"} {
		if _, err := e1.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs(m),
			Producer: pr("p", 2, int64(i)), StreamSeq: "0" + m}); err != nil {
			t.Fatal(err)
		}
	}
	e1.create(&sequencer.CreateRequest{Path: "j", ContentType: ctPtr(t, jsonT), Initial: byteMsgs(`1`, `{"x":[2]}`)})
	e1.fork("f", "s", nil, 0)
	e1.appendMsgs("f", octet, "c")
	e1.create(&sequencer.CreateRequest{Path: "closed", Closed: true, Initial: byteMsgs("end")})
	e1.createStream("soft", octet)
	e1.appendMsgs("soft", octet, "S")
	e1.fork("softfork", "soft", nil, 0)
	if err := e1.reg.Delete(t.Context(), "soft"); err != nil {
		t.Fatal(err)
	}
	ids := map[int64]bool{}
	for _, p := range []string{"s", "j", "f", "closed", "softfork"} {
		ids[e1.acquire(p).ID()] = true
	}
	sTail := e1.tokenAt("s", 2).String()
	e1.close()

	e2 := openEnv(t, dir, nil)
	if got := e2.content("s"); got != "ab" {
		t.Fatalf("s after restart: %q", got)
	}
	if got := e2.tokenAt("s", 2).String(); got != sTail {
		t.Fatalf("tail token changed across restart: %s -> %s", sTail, got)
	}
	res, err := e2.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("b"), Producer: pr("p", 2, 1)})
	if err != nil || res.Outcome != sequencer.Duplicate || res.Seq != 1 || res.Epoch != 2 {
		t.Fatalf("producer retry after restart: %+v, %v; want duplicate of 2/1", res, err)
	}
	_, err = e2.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x"), Producer: pr("p", 1, 0)})
	wantKind(t, err, sequencer.KindStaleEpoch)
	_, err = e2.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x"), StreamSeq: "0b"})
	wantKind(t, err, sequencer.KindConflict)
	if _, err := e2.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("c"),
		Producer: pr("p", 2, 2), StreamSeq: "0c"}); err != nil {
		t.Fatalf("next producer append after restart: %v", err)
	}
	if got := e2.messages("j", 1<<20); !equalStrings(got, []string{`1`, `{"x":[2]}`}) {
		t.Fatalf("json messages after restart: %q", got)
	}
	if got := e2.content("f"); got != "abc" {
		t.Fatalf("fork after restart: %q", got)
	}
	_, err = e2.tryAppend("closed", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("x")})
	wantKind(t, err, sequencer.KindClosed)
	_, err = e2.reg.Acquire(t.Context(), "soft", false)
	wantKind(t, err, sequencer.KindGone)
	if got := e2.content("softfork"); got != "S" {
		t.Fatalf("fork of soft-deleted stream after restart: %q", got)
	}
	n := e2.create(&sequencer.CreateRequest{Path: "new"})
	if ids[n.Handle.ID()] {
		t.Fatalf("new stream after restart reuses id %d", n.Handle.ID())
	}
}

func TestIdleEviction(t *testing.T) {
	if raceEnabled {
	}
	e := newEnv(t, func(c *sequencer.Config) { c.IdleTimeout = 50 * time.Millisecond })
	e.createStream("s", octet)
	if _, err := e.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("a"), Producer: pr("p", 0, 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "idle actor eviction", func() bool { return e.reg.OpenCount() == 0 })
	res, err := e.tryAppend("s", &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("a"), Producer: pr("p", 0, 0)})
	if err != nil || res.Outcome != sequencer.Duplicate {
		t.Fatalf("retry after eviction: %+v, %v", res, err)
	}
	// A pinned stream is never evicted.
	h := e.acquire("s")
	time.Sleep(150 * time.Millisecond)
	if e.reg.OpenCount() != 1 {
		t.Fatalf("pinned stream evicted (open count %d)", e.reg.OpenCount())
	}
	if _, err := h.Append(t.Context(), &sequencer.AppendRequest{ContentType: mustCT(t, octet), Messages: byteMsgs("b")}); err != nil {
		t.Fatalf("append on pinned handle: %v", err)
	}
}

var _ = protocol.Producer{}

// TestOpenEvictRace opens streams while the janitor scans for idle ones.
// It can only fail under the race detector (go test -race).
func TestOpenEvictRace(t *testing.T) {
	if !raceEnabled {
		t.Skip("needs -race")
	}
	e := newEnv(t, func(c *sequencer.Config) { c.IdleTimeout = time.Millisecond })
	const n = 8
	for i := range n {
		e.createStream(fmt.Sprintf("s%d", i), octet)
	}
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				// Reopens the stream whenever the janitor has closed it.
				h, err := e.reg.Acquire(t.Context(), fmt.Sprintf("s%d", i), false)
				if err != nil {
					t.Error(err)
					return
				}
				h.Release()
			}
		}()
	}
	wg.Wait()
}
