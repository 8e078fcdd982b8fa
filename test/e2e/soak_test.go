package e2e

// The soak test runs a mixed load against the real binary with aggressive
// rotation and a crash in the middle, and checks every read against a model
// of what each stream must hold.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakDuration is how long the load runs: 60 s (the suite must stay under
// 20 minutes on 2 cores), or DS_SOAK_DURATION.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("DS_SOAK_DURATION")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("DS_SOAK_DURATION=%q: want a positive duration such as 10m", v)
	}
	return d
}

// soakStream models one stream: the bytes acknowledged so far, in order,
// and the append whose outcome is not known yet. Its mutex is held across
// every write to the stream, so at most one append is in flight and the
// stream holds exactly acked, or acked followed by inflight.
type soakStream struct {
	name, url, ct string

	mu       sync.Mutex // held by writers for the whole request
	view     sync.Mutex // guards the fields below for readers
	acked    []byte
	inflight []byte
	tokens   []string // Stream-Next-Offset tokens of acknowledged appends
	closed   bool
	deleting bool // a DELETE was sent: reads may answer 404
	deleted  bool
	prodSeq  int64 // next Producer-Seq of the stream's producer
}

// snapshot returns what the stream may hold now: acked, then possibly a
// prefix of inflight.
func (s *soakStream) snapshot() (acked, inflight []byte) {
	s.view.Lock()
	defer s.view.Unlock()
	return s.acked, s.inflight
}

func (s *soakStream) setInflight(b []byte) {
	s.view.Lock()
	s.inflight = b
	s.view.Unlock()
}

func (s *soakStream) ack(b []byte, tok string) {
	s.view.Lock()
	defer s.view.Unlock()
	// A new slice each time: readers keep the old ones.
	s.acked = append(s.acked[:len(s.acked):len(s.acked)], b...)
	s.inflight = nil
	if tok != "" {
		s.tokens = append(s.tokens, tok)
	}
}

func (s *soakStream) randomToken(r *rand.Rand) string {
	s.view.Lock()
	defer s.view.Unlock()
	if len(s.tokens) == 0 || r.IntN(8) == 0 {
		return "-1"
	}
	return s.tokens[r.IntN(len(s.tokens))]
}

func (s *soakStream) lastToken() string {
	s.view.Lock()
	defer s.view.Unlock()
	if len(s.tokens) == 0 {
		return "-1"
	}
	return s.tokens[len(s.tokens)-1]
}

type soakCounts struct {
	ops, appends, dupRetries, reads, longPolls, forks, creates, closes, deletes, restarts, transient atomic.Int64
}

type soak struct {
	t      *testing.T
	srv    *Server
	c      *http.Client
	counts soakCounts

	mu      sync.Mutex
	streams []*soakStream
	next    int

	down   atomic.Bool // the server is being restarted
	failed atomic.Bool
}

func (k *soak) fatalf(format string, args ...any) {
	k.failed.Store(true)
	k.t.Errorf(format, args...)
}

// pos is the byte position of an offset token; "-1" is 0.
func (k *soak) pos(tok string) int64 {
	if tok == "-1" {
		return 0
	}
	p, ok := tryParseToken(tok)
	if !ok {
		k.fatalf("bad offset token %q", tok)
	}
	return p.pos
}

func (k *soak) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.streams)
}

func (k *soak) live(r *rand.Rand) *soakStream {
	k.mu.Lock()
	defer k.mu.Unlock()
	var live []*soakStream
	for _, s := range k.streams {
		s.view.Lock()
		deleted := s.deleted
		s.view.Unlock()
		if !deleted {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[r.IntN(len(live))]
}

func (k *soak) add(s *soakStream) {
	k.mu.Lock()
	k.streams = append(k.streams, s)
	k.mu.Unlock()
}

func (k *soak) newName() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.next++
	return fmt.Sprintf("soak/s%03d", k.next)
}

// do sends one request; during a restart, or when the connection fails, it
// waits for the server and reports the error so the caller can settle what
// happened.
func (k *soak) do(method, url string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, b, err := tryDo(ctx, k.c, method, url, body, hdr)
	if err != nil {
		k.counts.transient.Add(1)
		k.awaitUp()
	}
	return resp, b, err
}

// must is do for requests that are settled by retrying: it retries until
// the server answers.
func (k *soak) must(method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	for range 20 {
		resp, b, err := k.do(method, url, body, hdr)
		if err == nil {
			return resp, b
		}
	}
	k.fatalf("%s %s: no answer after 20 attempts", method, url)
	return nil, nil
}

func (k *soak) awaitUp() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !k.down.Load() {
			resp, _, err := tryDo(context.Background(), k.c, http.MethodGet, k.srv.URL+"/healthz", nil, nil)
			if err == nil && resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.fatalf("server did not come back within 60s")
}

// create makes a new stream, a fork of a random stream at one of its
// acknowledged offsets in one case out of three.
func (k *soak) create(r *rand.Rand) {
	name := k.newName()
	s := &soakStream{name: name, url: k.srv.StreamURL(name), ct: "application/octet-stream"}
	hdr := map[string]string{"Content-Type": s.ct}
	src := k.live(r)
	if src != nil && r.IntN(3) == 0 {
		src.mu.Lock()
		defer src.mu.Unlock()
		if !src.deleted {
			tok := src.randomToken(r)
			hdr["Stream-Forked-From"] = "/v1/stream/" + src.name
			if tok != "-1" {
				hdr["Stream-Fork-Offset"] = tok
			}
			s.ct = src.ct
			hdr["Content-Type"] = s.ct
			pos := int64(len(src.acked))
			if tok != "-1" {
				pos = k.pos(tok)
			}
			acked, _ := src.snapshot()
			s.acked = bytes.Clone(acked[:pos])
			for _, st := range src.tokens {
				if k.pos(st) <= pos {
					s.tokens = append(s.tokens, st)
				}
			}
		}
	}
	for attempt := 0; ; attempt++ {
		resp, b, err := k.do(http.MethodPut, s.url, nil, hdr)
		if err != nil && attempt < 20 {
			continue // a PUT with the same settings is idempotent
		}
		if err != nil {
			k.fatalf("PUT %s: %v", s.url, err)
			return
		}
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			k.fatalf("PUT %s (%v): %d %s", s.url, hdr, resp.StatusCode, b)
			return
		}
		break
	}
	if _, ok := hdr["Stream-Forked-From"]; ok {
		k.counts.forks.Add(1)
		// A fork of a closed stream at its tail may be closed too: ask.
		resp, _ := k.must(http.MethodHead, s.url, nil, nil)
		if resp != nil {
			s.closed = resp.Header.Get("Stream-Closed") == "true"
		}
	} else {
		k.counts.creates.Add(1)
	}
	k.add(s)
}

// appendOnce appends one message to s, plain or through the stream's
// producer, sometimes retrying an acknowledged producer append to check
// that the server treats it as a duplicate.
func (k *soak) appendOnce(r *rand.Rand, s *soakStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || s.closed {
		return
	}
	n := 1 + r.IntN(400)
	msg := []byte(fmt.Sprintf("<%s#%d:%s>", s.name, len(s.acked), strings.Repeat(string(rune('a'+r.IntN(26))), n)))
	hdr := map[string]string{"Content-Type": s.ct}
	producer := r.IntN(2) == 0
	if producer {
		hdr["Producer-Id"] = "p"
		hdr["Producer-Epoch"] = "0"
		hdr["Producer-Seq"] = fmt.Sprint(s.prodSeq)
	}
	s.setInflight(msg)
	for attempt := 0; ; attempt++ {
		resp, b, err := k.do(http.MethodPost, s.url, msg, hdr)
		if err != nil && attempt >= 20 {
			k.fatalf("POST %s: %v", s.url, err)
			return
		}
		if err != nil {
			if producer {
				continue // retrying the same seq is what producers are for
			}
			k.settlePlain(s, msg)
			return
		}
		switch {
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
			if producer && resp.StatusCode == http.StatusNoContent && attempt == 0 {
				k.fatalf("POST %s seq %d: first attempt answered as a duplicate", s.url, s.prodSeq)
			}
		default:
			k.fatalf("POST %s: %d %s", s.url, resp.StatusCode, b)
			s.setInflight(nil)
			return
		}
		s.ack(msg, resp.Header.Get("Stream-Next-Offset"))
		k.counts.appends.Add(1)
		break
	}
	if producer {
		if r.IntN(10) == 0 {
			resp, b := k.must(http.MethodPost, s.url, msg, hdr)
			if resp != nil && resp.StatusCode != http.StatusNoContent {
				k.fatalf("retry of acknowledged seq %d on %s: %d %s, want 204", s.prodSeq, s.url, resp.StatusCode, b)
			}
			k.counts.dupRetries.Add(1)
		}
		s.prodSeq++
	}
}

// settlePlain finds out whether a plain append whose answer was lost (the
// server was killed) was committed, from the stream's tail.
func (k *soak) settlePlain(s *soakStream, msg []byte) {
	resp, _ := k.must(http.MethodHead, s.url, nil, nil)
	if resp == nil {
		return
	}
	tok := resp.Header.Get("Stream-Next-Offset")
	tail := k.pos(tok)
	switch tail {
	case int64(len(s.acked)):
		s.setInflight(nil)
	case int64(len(s.acked) + len(msg)):
		s.ack(msg, tok)
		k.counts.appends.Add(1)
	default:
		k.fatalf("%s: tail %d after a lost append, want %d or %d", s.url, tail, len(s.acked), len(s.acked)+len(msg))
	}
}

// check verifies that body, read from position pos, is what the stream may
// hold: before the read the stream held at least ackedBefore, and after it
// the model says what can be there.
func (k *soak) check(s *soakStream, what string, pos int64, body []byte, upToDate bool, ackedBefore int) {
	acked, inflight := s.snapshot()
	may := append(acked[:len(acked):len(acked)], inflight...)
	end := pos + int64(len(body))
	switch {
	case end > int64(len(may)):
		k.fatalf("%s %s from %d: %d bytes reach %d, past the %d acknowledged and in flight", what, s.url, pos, len(body), end, len(may))
	case !bytes.Equal(body, may[pos:end]):
		k.fatalf("%s %s from %d: bytes differ from the acknowledged ones at %d", what, s.url, pos, pos+int64(firstDiff(body, may[pos:end])))
	case upToDate && end < int64(ackedBefore):
		k.fatalf("%s %s from %d: up to date at %d, but %d bytes were acknowledged before the read", what, s.url, pos, end, ackedBefore)
	}
}

func (k *soak) catchUp(r *rand.Rand, s *soakStream) {
	tok := s.randomToken(r)
	pos := k.pos(tok)
	before, _ := s.snapshot()
	resp, b, err := k.do(http.MethodGet, s.url+"?offset="+tok, nil, nil)
	if err != nil {
		return
	}
	k.counts.reads.Add(1)
	switch resp.StatusCode {
	case http.StatusOK:
		k.check(s, "read", pos, b, resp.Header.Get("Stream-Up-To-Date") == "true", len(before))
	case http.StatusNotFound, http.StatusGone:
		if !s.isDeleted() {
			k.fatalf("GET %s: %d for a stream that was not deleted", s.url, resp.StatusCode)
		}
	default:
		k.fatalf("GET %s?offset=%s: %d %s", s.url, tok, resp.StatusCode, b)
	}
}

func (k *soak) longPoll(s *soakStream) {
	tok := s.lastToken()
	pos := k.pos(tok)
	before, _ := s.snapshot()
	resp, b, err := k.do(http.MethodGet, s.url+"?live=long-poll&offset="+tok, nil, nil)
	if err != nil {
		return
	}
	k.counts.longPolls.Add(1)
	switch resp.StatusCode {
	case http.StatusOK:
		k.check(s, "long-poll", pos, b, false, len(before))
	case http.StatusNoContent:
		if end := resp.Header.Get("Stream-Next-Offset"); end != "" && k.pos(end) < pos {
			k.fatalf("long-poll %s from %d: 204 with offset %s before it", s.url, pos, end)
		}
	case http.StatusNotFound, http.StatusGone:
		if !s.isDeleted() {
			k.fatalf("long-poll %s: %d for a stream that was not deleted", s.url, resp.StatusCode)
		}
	default:
		k.fatalf("long-poll %s: %d %s", s.url, resp.StatusCode, b)
	}
}

// isDeleted reports whether reads of s may answer 404 or 410.
func (s *soakStream) isDeleted() bool {
	s.view.Lock()
	defer s.view.Unlock()
	return s.deleting
}

func (k *soak) closeStream(s *soakStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || s.closed {
		return
	}
	hdr := map[string]string{"Stream-Closed": "true"}
	resp, b := k.must(http.MethodPost, s.url, nil, hdr) // closing twice is fine
	if resp == nil {
		return
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		k.fatalf("close %s: %d %s", s.url, resp.StatusCode, b)
		return
	}
	s.closed = true
	k.counts.closes.Add(1)
}

func (k *soak) deleteStream(s *soakStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return
	}
	s.view.Lock()
	s.deleting = true
	s.view.Unlock()
	resp, b := k.must(http.MethodDelete, s.url, nil, nil)
	if resp == nil {
		return
	}
	// 404: an earlier attempt, cut off by the restart, did delete it.
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		k.fatalf("DELETE %s: %d %s", s.url, resp.StatusCode, b)
		return
	}
	s.view.Lock()
	s.deleted = true
	s.view.Unlock()
	k.counts.deletes.Add(1)
}

// verifyAll reads every stream whole and compares it with the model.
func (k *soak) verifyAll() {
	k.mu.Lock()
	streams := append([]*soakStream(nil), k.streams...)
	k.mu.Unlock()
	for _, s := range streams {
		if s.deleted {
			resp, _ := k.must(http.MethodGet, s.url+"?offset=-1", nil, nil)
			if resp != nil && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
				k.fatalf("deleted %s: GET answered %d", s.url, resp.StatusCode)
			}
			continue
		}
		var got []byte
		off := "-1"
		closed := false
		for range 10000 {
			resp, b := k.must(http.MethodGet, s.url+"?offset="+off, nil, nil)
			if resp == nil {
				return
			}
			if resp.StatusCode != http.StatusOK {
				k.fatalf("verify %s at %s: %d %s", s.url, off, resp.StatusCode, b)
				return
			}
			got = append(got, b...)
			off = resp.Header.Get("Stream-Next-Offset")
			if resp.Header.Get("Stream-Up-To-Date") == "true" {
				closed = resp.Header.Get("Stream-Closed") == "true"
				break
			}
		}
		if !bytes.Equal(got, s.acked) {
			k.fatalf("verify %s: %d bytes, want the %d acknowledged (first difference at %d)", s.url, len(got), len(s.acked), firstDiff(got, s.acked))
		}
		if closed != s.closed {
			k.fatalf("verify %s: closed %v, want %v", s.url, closed, s.closed)
		}
	}
}

// TestSoak runs appends (plain and idempotent, with retries), catch-up
// reads from random offsets, long-polls, forks, closes and deletes against
// one server with aggressive rotation to its local cold store for
// DS_SOAK_DURATION (90 s), kills it with SIGKILL halfway and restarts it,
// and checks every read and finally every stream against the model.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	dur := soakDuration(t)
	srv := StartServer(t, BuildServer(t), WithLongPollTimeout(time.Second),
		WithArgs("--seal-bytes", "8192", "--seal-age", "1s", "--cache-bytes", "262144"))
	k := &soak{t: t, srv: srv, c: loopbackClient(30 * time.Second)}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, duration %v", seed, dur)
	for range 6 {
		k.create(rand.New(rand.NewPCG(seed, 0)))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(id uint64, step func(r *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, id))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if k.failed.Load() {
					return
				}
				step(r)
				k.counts.ops.Add(1)
			}
		}()
	}
	for i := range 4 {
		worker(uint64(10+i), func(r *rand.Rand) {
			if s := k.live(r); s != nil {
				k.appendOnce(r, s)
			}
		})
	}
	for i := range 2 {
		worker(uint64(20+i), func(r *rand.Rand) {
			time.Sleep(time.Duration(r.IntN(10)) * time.Millisecond)
			if s := k.live(r); s != nil {
				k.catchUp(r, s)
			}
		})
	}
	for i := range 2 {
		worker(uint64(30+i), func(r *rand.Rand) {
			if s := k.live(r); s != nil {
				k.longPoll(s)
			}
		})
	}
	worker(40, func(r *rand.Rand) {
		time.Sleep(time.Duration(100+r.IntN(200)) * time.Millisecond)
		switch x := r.IntN(10); {
		case x < 5:
			k.create(r)
		case x < 7:
			if s := k.live(r); s != nil {
				k.closeStream(s)
			}
		default:
			if s := k.live(r); s != nil && k.count() > 8 {
				k.deleteStream(s)
			}
		}
	})

	time.Sleep(dur / 2)
	if !k.failed.Load() {
		k.down.Store(true)
		srv.Kill()
		srv.Restart(t)
		k.down.Store(false)
		k.counts.restarts.Add(1)
	}
	select {
	case <-time.After(dur - dur/2):
	case <-func() chan struct{} {
		c := make(chan struct{})
		go func() {
			for !k.failed.Load() {
				time.Sleep(100 * time.Millisecond)
			}
			close(c)
		}()
		return c
	}():
	}
	close(stop)
	wg.Wait()
	if !k.failed.Load() {
		k.verifyAll()
	}
	segs := 0
	filepath.WalkDir(filepath.Join(srv.DataDir, "cold"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".seg") {
			segs++
		}
		return nil
	})
	c := &k.counts
	line := fmt.Sprintf("SOAK ops=%d appends=%d dup_retries=%d reads=%d long_polls=%d creates=%d forks=%d closes=%d deletes=%d restarts=%d transient_errors=%d streams=%d cold_segments=%d duration=%v",
		c.ops.Load(), c.appends.Load(), c.dupRetries.Load(), c.reads.Load(), c.longPolls.Load(), c.creates.Load(), c.forks.Load(),
		c.closes.Load(), c.deletes.Load(), c.restarts.Load(), c.transient.Load(), len(k.streams), segs, dur)
	t.Log(line)
	Summary(line)
	if c.restarts.Load() != 1 || c.forks.Load() == 0 || c.appends.Load() == 0 || segs == 0 {
		t.Errorf("the soak did not exercise everything: %s", line)
	}
}
