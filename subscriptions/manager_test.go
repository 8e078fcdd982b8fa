package subscriptions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var bg = context.Background()

func TestPutValidation(t *testing.T) {
	e := newEnv(t, nil)
	noHooks := newEnv(t, func(o *Options) { o.Webhooks = false })
	strict := newEnv(t, func(o *Options) { o.AllowLoopback = false })
	full := newEnv(t, func(o *Options) { o.MaxSubscriptions = 1 })
	full.put("only", CreateRequest{Type: "pull-wake", Pattern: "a/*", WakeStream: "w"})
	hook := webhookReq("http://127.0.0.1:9/hook", "events/*")
	for _, tc := range []struct {
		name string
		m    *Manager
		id   string
		req  CreateRequest
		code string
	}{
		{"webhook", e.m, "ok-1", hook, ""},
		{"pull-wake", e.m, "ok-2", CreateRequest{Type: "pull-wake", Streams: []string{"a", "/b/"}, WakeStream: "wake"}, ""},
		{"bad type", e.m, "x", CreateRequest{Type: "push", Pattern: "a/*"}, CodeInvalidRequest},
		{"neither pattern nor streams", e.m, "x", CreateRequest{Type: "pull-wake", WakeStream: "w"}, CodeInvalidRequest},
		{"lease too short", e.m, "x", CreateRequest{Type: "pull-wake", Pattern: "a/*", WakeStream: "w", LeaseTTLMS: ptr(int64(999))}, CodeInvalidRequest},
		{"lease too long", e.m, "x", CreateRequest{Type: "pull-wake", Pattern: "a/*", WakeStream: "w", LeaseTTLMS: ptr(int64(600_001))}, CodeInvalidRequest},
		{"no wake stream", e.m, "x", CreateRequest{Type: "pull-wake", Pattern: "a/*"}, CodeInvalidRequest},
		{"reserved stream", e.m, "x", CreateRequest{Type: "pull-wake", Streams: []string{"__ds/x"}, WakeStream: "w"}, CodeInvalidRequest},
		{"dot segment", e.m, "x", CreateRequest{Type: "pull-wake", Streams: []string{"a/../b"}, WakeStream: "w"}, CodeInvalidRequest},
		{"no webhook url", e.m, "x", CreateRequest{Type: "webhook", Pattern: "a/*"}, CodeInvalidRequest},
		{"private target", e.m, "x", webhookReq("http://10.0.0.1/hook", "a/*"), CodeWebhookRejected},
		{"loopback without allow", strict.m, "x", hook, CodeWebhookRejected},
		{"webhooks off", noHooks.m, "x", hook, CodeInvalidRequest},
		{"id with slash", e.m, "a/b", hook, CodeInvalidRequest},
		{"empty id", e.m, "", hook, CodeInvalidRequest},
		{"limit reached", full.m, "second", hook, CodeInvalidRequest},
	} {
		_, _, err := tc.m.Put(bg, tc.id, &tc.req, "http://h/v1/stream")
		if got := codeOf(err); got != tc.code || (tc.code == "" && err != nil) {
			t.Errorf("%s: Put error %v, want code %q", tc.name, err, tc.code)
		}
	}
	// Re-confirmation compares the normalized configuration.
	again := CreateRequest{Type: "pull-wake", Streams: []string{"b", "a", "a"}, WakeStream: "/wake"}
	if _, created, err := e.m.Put(bg, "ok-2", &again, "http://h/v1/stream"); err != nil || created {
		t.Errorf("re-confirm: created=%v err=%v", created, err)
	}
	changed := CreateRequest{Type: "pull-wake", Streams: []string{"a"}, WakeStream: "wake"}
	if _, _, err := e.m.Put(bg, "ok-2", &changed, "http://h/v1/stream"); codeOf(err) != CodeAlreadyExists {
		t.Errorf("changed config: %v, want %s", err, CodeAlreadyExists)
	}
}

func TestWebhookDoneAutoAcks(t *testing.T) {
	e := newEnv(t, nil)
	r := newReceiver(t, func(int) (int, string) { return http.StatusOK, `{"done":true}` })
	v := e.put("s1", webhookReq(r.URL+"/hook", "events/*"))
	if v.Webhook == nil || v.Webhook.Signing.JWKSURL != "http://streams.test/v1/stream/__ds/jwks.json" || v.Webhook.Signing.Kid != e.m.JWKS().Keys[0].Kid {
		t.Fatalf("view webhook = %+v", v.Webhook)
	}
	tail := e.streams.append(e.m, "events/a", 8)
	d := r.wait(t, 1)
	if err := VerifySignature(d.signature, d.body, e.m.JWKS(), time.Now(), 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	n := d.n
	if n.SubscriptionID != "s1" || n.Generation != 1 || n.CallbackURL != "http://streams.test/v1/stream/__ds/subscriptions/s1/callback" ||
		len(n.Streams) != 1 || n.Streams[0].TailOffset != tail || !n.Streams[0].HasPending || n.Streams[0].AckedOffset != "-1" {
		t.Fatalf("notification = %+v", n)
	}
	eventually(t, "auto-ack", func() bool { return ackedOf(e.get("s1"), "events/a") == tail })
	// New data after the ack is a new wake, with a new generation.
	e.streams.append(e.m, "events/a", 4)
	d2 := r.wait(t, 2)
	if d2.n.Generation != 2 || d2.n.WakeID == n.WakeID {
		t.Fatalf("second wake = %+v", d2.n)
	}
}

func TestWebhookCallbackFencing(t *testing.T) {
	e := newEnv(t, nil)
	r := newReceiver(t, nil)
	e.put("s1", webhookReq(r.URL, "events/*"))
	tail := e.streams.append(e.m, "events/a", 8)
	n := r.wait(t, 1).n
	gen := n.Generation
	ack := func(off string, done bool) *AckRequest {
		return &AckRequest{WakeID: n.WakeID, Generation: &gen, Acks: []Ack{{Stream: "events/a", Offset: off}}, Done: done}
	}
	for _, tc := range []struct {
		name  string
		token string
		req   *AckRequest
		code  string
	}{
		{"beyond tail", n.CallbackToken, ack(tok(9), false), CodeInvalidOffset},
		{"unknown stream", n.CallbackToken, &AckRequest{WakeID: n.WakeID, Generation: &gen, Acks: []Ack{{Stream: "x", Offset: tail}}}, CodeInvalidOffset},
		{"wrong wake", n.CallbackToken, &AckRequest{WakeID: "w_other", Generation: &gen}, CodeFenced},
		{"no generation", n.CallbackToken, &AckRequest{WakeID: n.WakeID}, CodeFenced},
		{"bad token", "nope", ack(tail, false), CodeTokenInvalid},
		{"heartbeat", n.CallbackToken, ack(tok(4), false), ""},
		{"regress", n.CallbackToken, ack(tok(2), false), CodeInvalidOffset},
		{"done", n.CallbackToken, ack(tail, true), ""},
		{"stale after done", n.CallbackToken, ack(tail, true), CodeFenced},
	} {
		res, err := e.m.Callback(bg, "s1", tc.token, tc.req)
		if got := codeOf(err); got != tc.code || (tc.code == "" && (err != nil || !res.OK || res.NextWake)) {
			t.Errorf("%s: Callback = %+v, %v; want code %q", tc.name, res, err, tc.code)
		}
	}
	if got := ackedOf(e.get("s1"), "events/a"); got != tail {
		t.Errorf("acked = %s, want %s", got, tail)
	}
	if _, err := e.m.Ack(bg, "s1", n.CallbackToken, ack(tail, true)); codeOf(err) != CodeInvalidRequest {
		t.Errorf("pull-wake ack on a webhook subscription: %v", err)
	}
}

func TestWebhookRetryBackoff(t *testing.T) {
	e := newEnv(t, nil)
	r := newReceiver(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, `{"done":true}`
	})
	e.put("s1", webhookReq(r.URL, "events/*"))
	tail := e.streams.append(e.m, "events/a", 8)
	r.wait(t, 1)
	eventually(t, "status failed", func() bool { return e.get("s1").Status == "failed" || r.count() >= 3 })
	d3 := r.wait(t, 3)
	d1 := r.wait(t, 1)
	if d3.n.WakeID != d1.n.WakeID || d3.n.Generation != d1.n.Generation {
		t.Errorf("retries changed the wake: %+v then %+v", d1.n, d3.n)
	}
	eventually(t, "ack after retries", func() bool {
		v := e.get("s1")
		return ackedOf(v, "events/a") == tail && v.Status == "active"
	})
}

func TestBackoff(t *testing.T) {
	base, maxd := time.Second, 60*time.Second
	for _, tc := range []struct {
		n      int
		center time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second},
		{7, 60 * time.Second}, {40, 60 * time.Second}, {1000, 60 * time.Second},
	} {
		lo, hi := backoff(tc.n, base, maxd, 0), backoff(tc.n, base, maxd, 0.999999)
		if lo != tc.center*8/10 || hi < tc.center*119/100 || hi > tc.center*12/10 {
			t.Errorf("backoff(%d) spans [%v, %v], want %v ±20%%", tc.n, lo, hi, tc.center)
		}
	}
}

func TestLeaseExpiryWakesAgain(t *testing.T) {
	e := newEnv(t, nil)
	r := newReceiver(t, nil) // accepts, never calls back
	req := webhookReq(r.URL, "events/*")
	req.LeaseTTLMS = ptr(int64(MinLeaseTTLMS))
	e.put("s1", req)
	e.streams.append(e.m, "events/a", 8)
	first := r.wait(t, 1).n
	second := r.wait(t, 2).n
	if second.Generation != first.Generation+1 || second.WakeID == first.WakeID {
		t.Errorf("after lease expiry: %+v, then %+v", first, second)
	}
	if _, err := e.m.Callback(bg, "s1", first.CallbackToken, &AckRequest{WakeID: first.WakeID, Generation: &first.Generation}); codeOf(err) != CodeFenced {
		t.Errorf("callback of the expired wake: %v, want FENCED", err)
	}
}

func TestPullWake(t *testing.T) {
	e := newEnv(t, nil)
	e.streams.append(nil, "wake/pool", 0)
	e.put("p1", CreateRequest{Type: "pull-wake", Pattern: "events/*", WakeStream: "wake/pool"})
	tail := e.streams.append(e.m, "events/a", 8)
	eventually(t, "wake event", func() bool { return len(e.streams.messages("wake/pool")) == 1 })
	c, err := e.m.Claim(bg, "p1", "worker-1")
	if err != nil || c.Generation != 1 || len(c.Streams) != 1 || c.Streams[0].TailOffset != tail {
		t.Fatalf("claim = %+v, %v", c, err)
	}
	if _, err := e.m.Claim(bg, "p1", "worker-2"); codeOf(err) != CodeAlreadyClaimed || err.(*Error).CurrentHolder != "worker-1" {
		t.Fatalf("second claim: %v", err)
	}
	req := func(done bool, acks ...Ack) *AckRequest {
		return &AckRequest{WakeID: c.WakeID, Generation: &c.Generation, Acks: acks, Done: done}
	}
	if res, err := e.m.Ack(bg, "p1", c.Token, req(false)); err != nil || !res.OK {
		t.Fatalf("heartbeat: %+v %v", res, err)
	}
	if res, err := e.m.Ack(bg, "p1", c.Token, req(true, Ack{Stream: "events/a", Offset: tail})); err != nil || res.NextWake {
		t.Fatalf("ack done: %+v %v", res, err)
	}
	if _, err := e.m.Claim(bg, "p1", "worker-1"); codeOf(err) != CodeNoPendingWork {
		t.Fatalf("claim without work: %v", err)
	}
	e.streams.append(e.m, "events/a", 4)
	eventually(t, "second wake event", func() bool { return len(e.streams.messages("wake/pool")) == 2 })
	c2, err := e.m.Claim(bg, "p1", "worker-2")
	if err != nil || c2.Generation != 2 {
		t.Fatalf("claim 2 = %+v, %v", c2, err)
	}
	if err := e.m.Release(bg, "p1", c.Token, &AckRequest{WakeID: c.WakeID, Generation: &c.Generation}); codeOf(err) != CodeFenced {
		t.Fatalf("release with a stale token: %v", err)
	}
	if err := e.m.Release(bg, "p1", c2.Token, &AckRequest{WakeID: c2.WakeID, Generation: &c2.Generation}); err != nil {
		t.Fatalf("release: %v", err)
	}
	// Work is still pending, so a new wake is written for a later claim.
	eventually(t, "wake after release", func() bool { return len(e.streams.messages("wake/pool")) == 3 })
}

func TestExplicitStreams(t *testing.T) {
	e := newEnv(t, nil)
	e.streams.append(nil, "m/x", 5)
	e.streams.append(nil, "w", 0)
	e.put("s", CreateRequest{Type: "pull-wake", Pattern: "m/*", Streams: []string{"m/x", "n/a"}, WakeStream: "w"})
	linkTypes := func() map[string]string {
		out := map[string]string{}
		for _, l := range e.get("s").Streams {
			out[l.Path] = l.LinkType
		}
		return out
	}
	for _, step := range []struct {
		name string
		do   func() error
		want map[string]string
	}{
		{"created", func() error { return nil }, map[string]string{"m/x": "explicit", "n/a": "explicit"}},
		{"add", func() error { return e.m.AddStreams(bg, "s", []string{"n/b", "n/a"}) },
			map[string]string{"m/x": "explicit", "n/a": "explicit", "n/b": "explicit"}},
		{"remove explicit of a glob link", func() error { return e.m.RemoveStream(bg, "s", "m/x") },
			map[string]string{"m/x": "glob", "n/a": "explicit", "n/b": "explicit"}},
		{"remove", func() error { return e.m.RemoveStream(bg, "s", "n/b") }, map[string]string{"m/x": "glob", "n/a": "explicit"}},
		{"remove absent", func() error { return e.m.RemoveStream(bg, "s", "zz") }, map[string]string{"m/x": "glob", "n/a": "explicit"}},
		{"stream deleted", func() error { e.m.Deleted("n/a"); return nil }, map[string]string{"m/x": "glob"}},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := linkTypes()
		if len(got) != len(step.want) {
			t.Fatalf("%s: links %v, want %v", step.name, got, step.want)
		}
		for p, lt := range step.want {
			if got[p] != lt {
				t.Fatalf("%s: links %v, want %v", step.name, got, step.want)
			}
		}
	}
	// The existing stream was linked at its tail: nothing is pending.
	if got := ackedOf(e.get("s"), "m/x"); got != tok(5) {
		t.Errorf("m/x acked = %s, want %s", got, tok(5))
	}
	if err := e.m.AddStreams(bg, "missing", []string{"a"}); codeOf(err) != CodeNotFound {
		t.Errorf("add to a missing subscription: %v", err)
	}
}

func TestDeleteFencesInFlight(t *testing.T) {
	e := newEnv(t, nil)
	e.streams.append(nil, "w", 0)
	e.put("p", CreateRequest{Type: "pull-wake", Streams: []string{"a"}, WakeStream: "w"})
	tail := e.streams.append(e.m, "a", 3)
	eventually(t, "wake event", func() bool { return len(e.streams.messages("w")) == 1 })
	c, err := e.m.Claim(bg, "p", "w1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(bg, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Ack(bg, "p", c.Token, &AckRequest{WakeID: c.WakeID, Generation: &c.Generation, Acks: []Ack{{Stream: "a", Offset: tail}}, Done: true}); codeOf(err) != CodeNotFound {
		t.Errorf("ack after delete: %v", err)
	}
	// The same id starts afresh; the old token is fenced.
	e.put("p", CreateRequest{Type: "pull-wake", Streams: []string{"a"}, WakeStream: "w"})
	if got := ackedOf(e.get("p"), "a"); got != tail {
		t.Errorf("recreated link at %s, want the tail %s", got, tail)
	}
	if _, err := e.m.Ack(bg, "p", c.Token, &AckRequest{WakeID: c.WakeID, Generation: &c.Generation}); codeOf(err) != CodeFenced {
		t.Errorf("old token on the recreated subscription: %v", err)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	e := newEnv(t, nil)
	kid := e.m.JWKS().Keys[0].Kid
	e.streams.append(nil, "w", 0)
	e.put("p", CreateRequest{Type: "pull-wake", Pattern: "events/*", WakeStream: "w", Description: ptr("d")})
	tail := e.streams.append(e.m, "events/a", 8)
	eventually(t, "wake event", func() bool { return len(e.streams.messages("w")) == 1 })
	c, err := e.m.Claim(bg, "p", "w1")
	if err != nil {
		t.Fatal(err)
	}
	before := e.get("p")
	e.restart()

	if got := e.m.JWKS().Keys[0].Kid; got != kid {
		t.Errorf("signing key changed across restart: %s, then %s", kid, got)
	}
	after := e.get("p")
	if after.CreatedAt != before.CreatedAt || len(after.Streams) != 1 || after.Streams[0] != before.Streams[0] || *after.Description != "d" {
		t.Errorf("view changed across restart:\n%+v\n%+v", before, after)
	}
	if _, err := e.m.Claim(bg, "p", "w2"); codeOf(err) != CodeAlreadyClaimed {
		t.Errorf("lease lost across restart: %v", err)
	}
	// The token issued before the restart still works.
	if _, err := e.m.Ack(bg, "p", c.Token, &AckRequest{WakeID: c.WakeID, Generation: &c.Generation,
		Acks: []Ack{{Stream: "events/a", Offset: tail}}, Done: true}); err != nil {
		t.Fatalf("ack after restart: %v", err)
	}
	e.restart()
	if got := ackedOf(e.get("p"), "events/a"); got != tail {
		t.Errorf("cursor after restart = %s, want %s", got, tail)
	}
}

func TestRetryScheduleSurvivesRestart(t *testing.T) {
	var ok atomic.Bool
	r := newReceiver(t, func(int) (int, string) {
		if !ok.Load() {
			return http.StatusInternalServerError, ""
		}
		return http.StatusOK, `{"done":true}`
	})
	e := newEnv(t, func(o *Options) { o.RetryBase, o.RetryMax = 300*time.Millisecond, 300*time.Millisecond })
	e.put("s", webhookReq(r.URL, "events/*"))
	tail := e.streams.append(e.m, "events/a", 8)
	first := r.wait(t, 1).n
	eventually(t, "failed status", func() bool { return e.get("s").Status == "failed" })
	e.restart()
	ok.Store(true)
	d := r.wait(t, 2).n
	if d.WakeID != first.WakeID || d.Generation != first.Generation {
		t.Errorf("retry after restart delivered another wake: %+v, then %+v", first, d)
	}
	eventually(t, "ack", func() bool { return ackedOf(e.get("s"), "events/a") == tail })
}

// TestAppendedCoalesces checks that a burst of notifications, arriving
// faster than the dispatcher handles them, links every stream and wakes
// the subscription once.
func TestAppendedCoalesces(t *testing.T) {
	e := newEnv(t, nil)
	e.streams.append(nil, "w", 0)
	e.put("p", CreateRequest{Type: "pull-wake", Pattern: "**", WakeStream: "w"})
	for i := 0; i < 10000; i++ {
		e.streams.append(e.m, "s/"+string(rune('a'+i%26)), 1)
	}
	eventually(t, "26 links", func() bool { return len(e.get("p").Streams) == 26 })
	eventually(t, "a wake", func() bool { return len(e.streams.messages("w")) >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(e.streams.messages("w")); n != 1 {
		t.Errorf("%d wake events for one unclaimed wake, want 1", n)
	}
}

// TestRestartDiscoversPatternStreams: a matching stream whose first
// append was not dispatched before a restart is linked from its beginning
// afterwards, and the subscription is woken for it.
func TestRestartDiscoversPatternStreams(t *testing.T) {
	e := newEnv(t, nil)
	e.streams.append(nil, "w", 0)
	e.put("p", CreateRequest{Type: "pull-wake", Pattern: "events/*", WakeStream: "w"})
	e.streams.append(nil, "events/late", 5) // not notified
	e.restart()
	eventually(t, "wake for the discovered stream", func() bool { return len(e.streams.messages("w")) == 1 })
	if got := ackedOf(e.get("p"), "events/late"); got != "-1" {
		t.Errorf("discovered stream linked at %q, want -1", got)
	}
}

// TestDeadTargetBackoffIsShared: subscriptions to the same dead receiver
// back off together, so it gets about one attempt per backoff period, not
// one per subscription.
func TestDeadTargetBackoffIsShared(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RetryBase, o.RetryMax = 100*time.Millisecond, 100*time.Millisecond })
	r := newReceiver(t, func(int) (int, string) { return http.StatusServiceUnavailable, "" })
	const subs = 5
	for i := 0; i < subs; i++ {
		e.put(fmt.Sprintf("s%d", i), webhookReq(r.URL, "events/*"))
	}
	e.streams.append(e.m, "events/a", 8)
	r.wait(t, subs) // the first wave, in flight together
	time.Sleep(time.Second)
	// Independent backoff would make about subs*10 more attempts in a
	// second; the shared one about 10.
	if n := r.count() - subs; n > 5*subs {
		t.Errorf("%d attempts in a second after the first wave, want about 10", n)
	}
	if st := e.m.Stats(); st.Failing != subs || st.Failures == 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestClaimRightAfterAppend: a claim or ack made as soon as an append is
// acknowledged sees it, though the dispatcher may not have run yet (a
// stream's first append links it; known tails move at once).
func TestClaimRightAfterAppend(t *testing.T) {
	for i := 0; i < 20; i++ {
		e := newEnv(t, nil)
		e.streams.append(nil, "w", 0)
		e.put("p", CreateRequest{Type: "pull-wake", Pattern: "events/*", WakeStream: "w"})
		tail := e.streams.append(e.m, "events/a", 8)
		c, err := e.m.Claim(bg, "p", "w1")
		if err != nil || len(c.Streams) != 1 || c.Streams[0].TailOffset != tail {
			t.Fatalf("claim right after the first append: %+v, %v", c, err)
		}
		tail2 := e.streams.append(e.m, "events/a", 4)
		if _, err := e.m.Ack(bg, "p", c.Token, &AckRequest{WakeID: c.WakeID, Generation: &c.Generation,
			Acks: []Ack{{Stream: "events/a", Offset: tail2}}}); err != nil {
			t.Fatalf("ack of data appended just now: %v", err)
		}
	}
}

func TestPublicURL(t *testing.T) {
	opt := Options{Path: t.TempDir() + "/s.db", Streams: newFakeStreams(), PublicURL: "streams.example/v1/stream"}
	if m, err := Open(bg, opt); err == nil {
		m.Close()
		t.Fatal("Open accepted a public URL without scheme")
	}
	e := newEnv(t, func(o *Options) { o.PublicURL = "https://streams.example/ds/v1/stream/" })
	r := newReceiver(t, nil)
	v := e.put("s", webhookReq(r.URL, "events/*"))
	if v.Webhook.Signing.JWKSURL != "https://streams.example/ds/v1/stream/__ds/jwks.json" {
		t.Errorf("jwks_url = %s", v.Webhook.Signing.JWKSURL)
	}
	e.streams.append(e.m, "events/a", 1)
	if got := r.wait(t, 1).n.CallbackURL; got != "https://streams.example/ds/v1/stream/__ds/subscriptions/s/callback" {
		t.Errorf("callback_url = %s", got)
	}
}

// TestWakeEndedDuringDelivery: a receiver that calls back (done) before
// answering, with new data appended meanwhile, gets the next wake too,
// although it was issued while the first delivery was still running.
func TestWakeEndedDuringDelivery(t *testing.T) {
	e := newEnv(t, nil)
	var mu sync.Mutex
	var gens []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n Notification
		_ = json.NewDecoder(req.Body).Decode(&n)
		mu.Lock()
		gens = append(gens, n.Generation)
		first := len(gens) == 1
		mu.Unlock()
		if first {
			e.streams.append(e.m, "events/a", 4)
			e.m.drain()
			tail := n.Streams[0].TailOffset
			if _, err := e.m.Callback(bg, "s", n.CallbackToken, &AckRequest{WakeID: n.WakeID, Generation: &n.Generation,
				Acks: []Ack{{Stream: "events/a", Offset: tail}}, Done: true}); err != nil {
				t.Errorf("callback: %v", err)
			}
		}
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	e.put("s", webhookReq(srv.URL, "events/*"))
	e.streams.append(e.m, "events/a", 8)
	eventually(t, "the second wake", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(gens) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if gens[0] != 1 || gens[1] != 2 {
		t.Errorf("generations delivered: %v, want [1 2]", gens)
	}
}
