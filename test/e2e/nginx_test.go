package e2e

// The caching behaviour of the server behind a real nginx, configured from
// the reference edge in deploy/nginx: collapsing of concurrent catch-up
// reads, sealed chunks surviving an origin outage, private and
// authenticated responses never shared, a close never hidden for longer
// than the origin allows, and long-poll cursors that never loop on a cached
// answer. A counting proxy between nginx and the server tells exactly which
// requests reached the origin.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// edgeRead is one response seen by a client of the edge.
type edgeRead struct {
	uri          string // path and query, as the origin sees it
	status       int
	body         []byte
	next         string
	upToDate     bool
	closed       bool
	cursor       string
	cacheControl string
	cacheStatus  string // nginx's X-Cache-Status
	at           time.Time
}

// edgeGet GETs uri (path and query) from base with optional headers.
func edgeGet(ctx context.Context, c *http.Client, base, uri string, hdr map[string]string) (edgeRead, error) {
	resp, b, err := tryDo(ctx, c, http.MethodGet, base+uri, nil, hdr)
	if err != nil {
		return edgeRead{}, err
	}
	h := resp.Header
	return edgeRead{
		uri: uri, status: resp.StatusCode, body: b,
		next:         h.Get("Stream-Next-Offset"),
		upToDate:     h.Get("Stream-Up-To-Date") == "true",
		closed:       h.Get("Stream-Closed") == "true",
		cursor:       h.Get("Stream-Cursor"),
		cacheControl: h.Get("Cache-Control"),
		cacheStatus:  h.Get("X-Cache-Status"),
		at:           time.Now(),
	}, nil
}

func mustEdgeGet(t *testing.T, c *http.Client, base, uri string, hdr map[string]string) edgeRead {
	t.Helper()
	r, err := edgeGet(context.Background(), c, base, uri, hdr)
	if err != nil {
		t.Fatalf("GET %s: %v", uri, err)
	}
	return r
}

// closeStream closes the stream at url (directly at the origin).
func closeStream(t *testing.T, c *http.Client, url, ct string, hdr map[string]string) {
	t.Helper()
	h := map[string]string{"Content-Type": ct, "Stream-Closed": "true"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, b := coldDo(t, c, http.MethodPost, url, nil, h)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("closing %s: status %d: %s", url, resp.StatusCode, b)
	}
}

// edgeEnv is a server, the counting proxy in front of it and nginx in
// front of that.
type edgeEnv struct {
	srv    *Server
	origin *originCounter
	edge   *edge
	client *http.Client
}

func startEdgeEnv(t *testing.T, cfg edgeConfig, serverArgs ...string) *edgeEnv {
	t.Helper()
	findNginx(t) // skip before building anything
	srv := StartServer(t, BuildServer(t), WithArgs(serverArgs...))
	oc := startOriginCounter(t, srv.URL)
	return &edgeEnv{srv: srv, origin: oc, edge: startEdge(t, oc.Addr, cfg), client: loopbackClient(20 * time.Second)}
}

// TestNginxCatchUpCollapsing has many clients catch up on a stream of
// several sealed segments at once through the edge: the origin must see
// each chunk's URL once. Then, with the origin stopped, the sealed chunks
// must still be served from the cache.
func TestNginxCatchUpCollapsing(t *testing.T) {
	// Bounded responses: sealed ones are the segment-aligned, immutable
	// chunks a CDN deployment wants (docs/caching.md).
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, "--cache-mode", "shared", "--seal-bytes", "4096", "--read-response-max", "1048576")
	const (
		path    = "edge/catchup"
		ct      = "application/octet-stream"
		clients = 50
	)
	createStream(t, env.client, env.srv.StreamURL(path), ct, nil)
	var want []byte
	for i := range 24 {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1000)
		appendTo(t, env.client, env.srv.StreamURL(path), ct, msg)
		want = append(want, msg...)
	}

	type result struct {
		reads []edgeRead
		err   error
	}
	results := make([]result, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}}
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			off := "-1"
			for range 100 {
				r, err := edgeGet(ctx, c, env.edge.URL, StreamPrefix+path+"?offset="+off, nil)
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("GET %s: status %d: %s", r.uri, r.status, r.body)
				}
				if err != nil {
					results[i].err = err
					return
				}
				results[i].reads = append(results[i].reads, r)
				if r.upToDate {
					return
				}
				off = r.next
			}
			results[i].err = fmt.Errorf("not up to date after 100 reads")
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	// Every client got the whole stream, and all saw the same chunks.
	chunks := map[string]edgeRead{} // uri → first response seen
	var order []string
	clientRequests := 0
	statuses := map[string]int{}
	for i, res := range results {
		if res.err != nil {
			t.Fatalf("client %d: %v", i, res.err)
		}
		var got []byte
		for _, r := range res.reads {
			got = append(got, r.body...)
			statuses[r.cacheStatus]++
			clientRequests++
			if first, ok := chunks[r.uri]; !ok {
				chunks[r.uri] = r
				order = append(order, r.uri)
			} else if !bytes.Equal(first.body, r.body) || first.next != r.next {
				t.Errorf("client %d: %s answered differently: %d bytes to %s, before %d bytes to %s",
					i, r.uri, len(r.body), r.next, len(first.body), first.next)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("client %d read %d bytes in %d requests, want the %d appended (first difference at %d)",
				i, len(got), len(res.reads), len(want), firstDiff(got, want))
		}
	}

	// The origin saw each chunk once: the edge collapsed the concurrent
	// misses and served the rest from its cache.
	sealed := 0
	for _, uri := range order {
		r := chunks[uri]
		if hasDirective(r.cacheControl, "immutable") {
			sealed++
		}
		if n := env.origin.count(uri); n != 1 {
			t.Errorf("origin saw GET %s %d times, want 1 (Cache-Control %q)", uri, n, r.cacheControl)
		}
	}
	if sealed < 3 {
		t.Fatalf("only %d of %d chunks are sealed (immutable); the test needs several sealed segments", sealed, len(order))
	}
	originRequests := env.origin.countPrefix(StreamPrefix + path)
	t.Logf("%d clients, %d chunks (%d sealed): %d client requests, %d reached the origin, in %v; cache statuses %v",
		clients, len(order), sealed, clientRequests, originRequests, elapsed.Round(time.Millisecond), statuses)
	Summary(fmt.Sprintf("NGINX origin_requests=%d client_requests=%d chunks=%d clients=%d elapsed=%v",
		originRequests, clientRequests, len(order), clients, elapsed.Round(time.Millisecond)))

	// With the origin gone, sealed chunks are still served, from the cache.
	env.srv.Stop()
	for _, uri := range order {
		first := chunks[uri]
		if !hasDirective(first.cacheControl, "immutable") {
			continue
		}
		r := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
		if r.status != http.StatusOK || r.cacheStatus != "HIT" || !bytes.Equal(r.body, first.body) || r.next != first.next {
			t.Errorf("origin stopped: GET %s = %d %s, %d bytes to %s; want 200 HIT, %d bytes to %s",
				uri, r.status, r.cacheStatus, len(r.body), r.next, len(first.body), first.next)
		}
	}
	// And a URL never cached shows the outage instead of inventing data.
	r := mustEdgeGet(t, env.client, env.edge.URL, StreamPrefix+path+"?offset=now", nil)
	if r.status < 500 {
		t.Errorf("origin stopped: GET ?offset=now = %d, want a 5xx from the edge", r.status)
	}
}

// TestNginxPrivateMode: with --cache-mode private nothing a client reads
// through the edge is stored, so every client's read reaches the origin.
// With the edge secret, the edge may select shared mode per request, and
// then the same reads are shared.
func TestNginxPrivateMode(t *testing.T) {
	findNginx(t)
	const (
		path   = "edge/private"
		ct     = "text/plain"
		secret = "edge-secret-for-tests-0123456789"
	)
	args := []string{"--cache-mode", "private", "--edge-secret", secret}
	// The edge has the secret but asks for no mode: the server's
	// private mode stands.
	env := startEdgeEnv(t, edgeConfig{secret: secret, cache: "aggressive"}, args...)
	createStream(t, env.client, env.srv.StreamURL(path), ct, nil)
	appendTo(t, env.client, env.srv.StreamURL(path), ct, []byte("private data"))

	for _, uri := range []string{StreamPrefix + path + "?offset=-1", StreamPrefix + path + "?offset=-1&live=long-poll"} {
		for client := 1; client <= 3; client++ {
			r := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
			if r.status != http.StatusOK || string(r.body) != "private data" {
				t.Fatalf("client %d: GET %s = %d %q", client, uri, r.status, r.body)
			}
			if !hasDirective(r.cacheControl, "private") || !hasDirective(r.cacheControl, "no-store") {
				t.Errorf("client %d: GET %s: Cache-Control %q, want private, no-store in private mode", client, uri, r.cacheControl)
			}
			if r.cacheStatus == "HIT" || env.origin.count(uri) != client {
				t.Errorf("client %d: GET %s was served by the edge (X-Cache-Status %q, origin saw it %d times)",
					client, uri, r.cacheStatus, env.origin.count(uri))
			}
		}
	}

	// A second edge, trusted and asking for shared mode, may share them.
	shared := startEdge(t, env.origin.Addr, edgeConfig{secret: secret, mode: "shared", cache: "aggressive"})
	uri := StreamPrefix + path + "?offset=-1"
	before := env.origin.count(uri)
	first := mustEdgeGet(t, env.client, shared.URL, uri, nil)
	second := mustEdgeGet(t, env.client, shared.URL, uri, nil)
	if first.status != http.StatusOK || !hasDirective(first.cacheControl, "public") {
		t.Fatalf("through an edge asking for shared mode: %d, Cache-Control %q; want 200 public", first.status, first.cacheControl)
	}
	if second.cacheStatus != "HIT" || env.origin.count(uri) != before+1 {
		t.Errorf("shared mode via X-Cache-Mode: second read X-Cache-Status %q, origin reads %d; want HIT and 1",
			second.cacheStatus, env.origin.count(uri)-before)
	}
	// A client cannot pick the mode itself: the edge overwrites the header.
	direct := mustEdgeGet(t, env.client, env.edge.URL, uri, map[string]string{"X-Cache-Mode": "shared", "X-Edge-Secret": "guess"})
	if !hasDirective(direct.cacheControl, "private") {
		t.Errorf("client-sent X-Cache-Mode reached the origin: Cache-Control %q", direct.cacheControl)
	}
}

// TestNginxAuth: with authentication on, a client's authorised response is
// never served to another client, and a client without a valid token gets
// 401 from the origin, never a stored 200; a JWT is a second credential,
// and a publicly readable prefix is shared by anonymous readers only.
func TestNginxAuth(t *testing.T) {
	findNginx(t)
	const (
		adminToken = "admin-token-for-edge-tests"
		jwtSecret  = "jwt-secret-for-edge-tests-0123456789abcdef"
		path       = "edge/auth"
		pubPath    = "edge-pub/auth"
		ct         = "text/plain"
	)
	secretFile := filepath.Join(t.TempDir(), "hs256")
	if err := os.WriteFile(secretFile, []byte(jwtSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--cache-mode", "shared", "--admin-token", adminToken,
		"--auth-hs256-secret-file", secretFile, "--auth-public-read", "edge-pub/"}
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, args...)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	for _, p := range []string{path, pubPath} {
		url := env.srv.StreamURL(p)
		createStream(t, env.client, url, ct, admin)
		resp, b := coldDo(t, env.client, http.MethodPost, url, []byte("secret data"),
			map[string]string{"Content-Type": ct, "Authorization": admin["Authorization"]})
		if resp.StatusCode/100 != 2 {
			t.Fatalf("append to %s: %d %s", p, resp.StatusCode, b)
		}
	}
	// Clients with their own credentials each get their own answer from
	// the origin; those without valid ones get 401, never a stored 200.
	readers := map[string]map[string]string{
		"admin token":     admin,
		"read-scoped JWT": {"Authorization": "Bearer " + hs256Token(t, jwtSecret, "edge-reader", "read")},
	}
	denied := map[string]map[string]string{"no token": nil, "invalid token": {"Authorization": "Bearer not-a-valid-token"}}
	uri := StreamPrefix + path + "?offset=-1"
	want := 0
	for round := 1; round <= 2; round++ {
		for name, h := range readers {
			r := mustEdgeGet(t, env.client, env.edge.URL, uri, h)
			want++
			if r.status != http.StatusOK || string(r.body) != "secret data" {
				t.Fatalf("round %d, %s: %d %q", round, name, r.status, r.body)
			}
			if hasDirective(r.cacheControl, "public") {
				t.Errorf("round %d, %s: authenticated read of a private stream is public: %q", round, name, r.cacheControl)
			}
			if r.cacheStatus == "HIT" {
				t.Errorf("round %d, %s: authenticated read served from the edge cache", round, name)
			}
		}
		for name, h := range denied {
			r := mustEdgeGet(t, env.client, env.edge.URL, uri, h)
			want++
			if r.status != http.StatusUnauthorized {
				t.Errorf("round %d, %s: read through the edge = %d %q (X-Cache-Status %q), want 401",
					round, name, r.status, r.body, r.cacheStatus)
			}
		}
	}
	if n := env.origin.count(uri); n != want {
		t.Errorf("origin saw %d reads of %s, want all %d", n, uri, want)
	}
	t.Logf("private stream: %d reads through the edge with %d credentials and 2 invalid ones, all %d answered by the origin",
		want, len(readers), env.origin.count(uri))

	// A publicly readable stream is shared: anonymous reads are stored and
	// served from the cache; a read with credentials still goes to the
	// origin (never answered from the shared cache) and gets the same data.
	pub := StreamPrefix + pubPath + "?offset=-1"
	a1 := mustEdgeGet(t, env.client, env.edge.URL, pub, nil)
	a2 := mustEdgeGet(t, env.client, env.edge.URL, pub, nil)
	if a1.status != http.StatusOK || !hasDirective(a1.cacheControl, "public") || a2.cacheStatus != "HIT" {
		t.Errorf("public stream, anonymous: %d %q then X-Cache-Status %q; want 200 public, then HIT", a1.status, a1.cacheControl, a2.cacheStatus)
	}
	for name, h := range readers {
		before := env.origin.count(pub)
		r := mustEdgeGet(t, env.client, env.edge.URL, pub, h)
		if r.status != http.StatusOK || string(r.body) != "secret data" || r.cacheStatus == "HIT" || env.origin.count(pub) != before+1 {
			t.Errorf("public stream, %s: %d %q X-Cache-Status %q; want 200 from the origin", name, r.status, r.body, r.cacheStatus)
		}
	}
}

// hs256Token mints a JWT for the server's --auth-hs256-secret.
func hs256Token(t *testing.T, secret, subject, scope string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   subject,
		"scope": scope,
		"iat":   time.Now().Unix(),
		"exp":   time.Now().Add(time.Hour).Unix(),
	})
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNginxClosedStreamEOF: a close is never hidden from readers for longer
// than the Cache-Control of the cached response allows. Live readers see it
// at once (long-poll is not served from the cache), and so do catch-up
// readers at the tail, whose empty answer the origin marks no-cache.
func TestNginxClosedStreamEOF(t *testing.T) {
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, "--cache-mode", "shared")
	const (
		path = "edge/closed"
		ct   = "text/plain"
	)
	url := env.srv.StreamURL(path)
	createStream(t, env.client, url, ct, nil)
	mid := appendTo(t, env.client, url, ct, []byte("first "))
	tail := appendTo(t, env.client, url, ct, []byte("last"))

	// A read that ends at the tail (data), and the empty read at the tail,
	// each read twice so that whatever the edge may store, it does.
	dataURI := StreamPrefix + path + "?offset=" + mid
	tailURI := StreamPrefix + path + "?offset=" + tail
	var before = map[string]edgeRead{}
	for _, uri := range []string{dataURI, tailURI} {
		mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
		r := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
		if r.status != http.StatusOK || !r.upToDate || r.closed {
			t.Fatalf("GET %s before the close: %d up-to-date=%v closed=%v", uri, r.status, r.upToDate, r.closed)
		}
		t.Logf("before the close: %s: Cache-Control %q, X-Cache-Status %s", uri, r.cacheControl, r.cacheStatus)
		if (hasDirective(r.cacheControl, "no-cache") || hasDirective(r.cacheControl, "no-store")) && r.cacheStatus == "HIT" {
			t.Errorf("GET %s: the edge served a %q response from its cache", uri, r.cacheControl)
		}
		before[uri] = r
	}

	closeStream(t, env.client, url, ct, nil)
	closedAt := time.Now()

	// Live: at once.
	lp := mustEdgeGet(t, env.client, env.edge.URL, tailURI+"&live=long-poll", nil)
	if !lp.closed || lp.status/100 != 2 {
		t.Errorf("long-poll at the tail after the close: %d closed=%v (X-Cache-Status %q), want Stream-Closed",
			lp.status, lp.closed, lp.cacheStatus)
	}
	// Catch-up at the tail, and from the start: at once.
	for _, uri := range []string{tailURI, StreamPrefix + path + "?offset=-1"} {
		r := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
		if !r.closed {
			t.Errorf("GET %s after the close: no Stream-Closed (Cache-Control before %q, X-Cache-Status %q)",
				uri, before[uri].cacheControl, r.cacheStatus)
		}
	}
	// The read that ended at the tail with data may still be answered from
	// the cache, but only while its max-age lasts: wait for that when it is
	// short, else check that the answer without the close is a stored copy
	// within its max-age.
	const patience = 10 * time.Second
	b := before[dataURI]
	age := time.Duration(max(maxAge(b.cacheControl), 0)) * time.Second
	if hasDirective(b.cacheControl, "no-cache") || hasDirective(b.cacheControl, "no-store") {
		age = 0
	}
	for {
		r := mustEdgeGet(t, env.client, env.edge.URL, dataURI, nil)
		if r.closed {
			t.Logf("a read ending at the tail showed the close %v after it (its max-age: %v)",
				time.Since(closedAt).Round(time.Millisecond), age)
			return
		}
		if r.cacheStatus != "HIT" && r.cacheStatus != "STALE" && r.cacheStatus != "UPDATING" {
			t.Fatalf("GET %s after the close: from the origin (X-Cache-Status %q) but without Stream-Closed", dataURI, r.cacheStatus)
		}
		if stored := time.Since(b.at); stored > age+time.Second {
			t.Fatalf("GET %s: the edge hid the close with a copy stored %v ago, past its max-age (Cache-Control %q)",
				dataURI, stored.Round(time.Millisecond), b.cacheControl)
		}
		if age > patience {
			t.Logf("a read ending at the tail of the open stream (Cache-Control %q) may hide the close from readers that re-read it for up to %v; live readers and readers at the tail saw it at once",
				b.cacheControl, age)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNginxLongPollCursor: long-polls through the edge never loop on a
// stored answer. An empty long-poll (204) is not stored: the same URL again
// reaches the origin, and each answer's cursor moves past the client's.
// After appends, following the returned offset and cursor makes progress,
// one new URL per step.
func TestNginxLongPollCursor(t *testing.T) {
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, "--cache-mode", "shared")
	const (
		path = "edge/longpoll"
		ct   = "text/plain"
	)
	url := env.srv.StreamURL(path)
	createStream(t, env.client, url, ct, nil)
	off := appendTo(t, env.client, url, ct, []byte("m0;"))

	cursorOf := func(r edgeRead) int64 {
		n, err := strconv.ParseInt(r.cursor, 10, 64)
		if err != nil {
			t.Fatalf("GET %s: Stream-Cursor %q: %v", r.uri, r.cursor, err)
		}
		return n
	}
	// Two empty long-polls at the tail: both reach the origin (nothing
	// stored), the second with the first's cursor, and the cursor advances.
	uri := StreamPrefix + path + "?offset=" + off + "&live=long-poll"
	first := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
	if first.status != http.StatusNoContent {
		t.Fatalf("long-poll at the tail: %d, want 204 after the server's timeout", first.status)
	}
	again := mustEdgeGet(t, env.client, env.edge.URL, uri, nil)
	if again.status != http.StatusNoContent || again.cacheStatus == "HIT" || env.origin.count(uri) != 2 {
		t.Errorf("the same long-poll again: %d X-Cache-Status %q, origin saw it %d times; want 204 from the origin (2)",
			again.status, again.cacheStatus, env.origin.count(uri))
	}
	cur := cursorOf(first)
	next := mustEdgeGet(t, env.client, env.edge.URL, uri+"&cursor="+first.cursor, nil)
	if next.status != http.StatusNoContent || cursorOf(next) <= cur {
		t.Errorf("long-poll with cursor %s: %d with cursor %q; want 204 and a greater cursor", first.cursor, next.status, next.cursor)
	}
	cur = cursorOf(next)

	// Follow the stream as a live reader: each step's long-poll waits at
	// the edge until an append arrives, and the next step uses the
	// returned offset and cursor.
	seen := map[string]bool{}
	var got []string
	for i := 1; i <= 4; i++ {
		uri := fmt.Sprintf("%s%s?cursor=%d&live=long-poll&offset=%s", StreamPrefix, path, cur, off)
		if seen[uri] {
			t.Fatalf("step %d: long-poll URL %s repeats", i, uri)
		}
		seen[uri] = true
		msg := fmt.Sprintf("m%d;", i)
		done := make(chan edgeRead, 1)
		go func() {
			r, err := edgeGet(context.Background(), env.client, env.edge.URL, uri, nil)
			if err != nil {
				r.status = -1
				r.body = []byte(err.Error())
			}
			done <- r
		}()
		time.Sleep(300 * time.Millisecond) // the long-poll is waiting at the origin
		appendTo(t, env.client, url, ct, []byte(msg))
		r := <-done
		if r.status != http.StatusOK || string(r.body) != msg {
			t.Fatalf("step %d: GET %s = %d %q, want 200 %q", i, uri, r.status, r.body, msg)
		}
		if r.next <= off || cursorOf(r) <= cur {
			t.Fatalf("step %d: no progress: offset %s → %s, cursor %d → %s", i, off, r.next, cur, r.cursor)
		}
		got = append(got, string(r.body))
		off, cur = r.next, cursorOf(r)
		// The data answer is cacheable (keyed by offset and cursor): a
		// second reader of the same URL gets the same bytes.
		if r2 := mustEdgeGet(t, env.client, env.edge.URL, uri, nil); string(r2.body) != msg {
			t.Errorf("step %d: second reader of %s got %d %q", i, uri, r2.status, r2.body)
		}
	}
	// Waiters at the same offset and cursor share one origin request when
	// the data comes while they wait.
	const herd = 20
	herdURI := fmt.Sprintf("%s%s?cursor=%d&live=long-poll&offset=%s", StreamPrefix, path, cur, off)
	results := make(chan edgeRead, herd)
	for range herd {
		go func() {
			r, err := edgeGet(context.Background(), env.client, env.edge.URL, herdURI, nil)
			if err != nil {
				r.status, r.body = -1, []byte(err.Error())
			}
			results <- r
		}()
	}
	time.Sleep(500 * time.Millisecond)
	appendTo(t, env.client, url, ct, []byte("herd;"))
	herdStatus := map[string]int{}
	for range herd {
		r := <-results
		if r.status != http.StatusOK || string(r.body) != "herd;" {
			t.Fatalf("long-poll herd: %d %q", r.status, r.body)
		}
		herdStatus[r.cacheStatus]++
	}
	if n := env.origin.count(herdURI); n != 1 {
		t.Errorf("%d concurrent long-polls of one URL: the origin saw %d, want 1 (X-Cache-Status %v)", herd, n, herdStatus)
	}
	t.Logf("%d concurrent long-polls, data after 500 ms: origin requests %d, X-Cache-Status %v", herd, env.origin.count(herdURI), herdStatus)

	origin := 0
	for k := range seen {
		origin += env.origin.count(k)
	}
	t.Logf("followed %d appends through the edge (%s); the origin saw %d of the %d step URLs' requests",
		len(got), strings.Join(got, ""), origin, 2*len(seen))
}

// TestNginxSSE: SSE passes through the edge unbuffered and uncached:
// concurrent subscribers of one URL each reach the origin at once (no
// queueing behind a cache lock), and an append arrives as an event while
// the connection stays open.
func TestNginxSSE(t *testing.T) {
	env := startEdgeEnv(t, edgeConfig{cache: "aggressive"}, "--cache-mode", "shared")
	const (
		path = "edge/sse"
		ct   = "text/plain"
	)
	url := env.srv.StreamURL(path)
	createStream(t, env.client, url, ct, nil)
	off := appendTo(t, env.client, url, ct, []byte("before"))
	uri := StreamPrefix + path + "?live=sse&offset=" + off

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type sub struct{ lines chan string }
	subscribe := func() sub {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.edge.URL+uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err != nil {
			t.Fatalf("SSE through the edge: %v", err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("SSE through the edge: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cs := resp.Header.Get("X-Cache-Status"); cs != "" {
			t.Errorf("SSE went through the cache: X-Cache-Status %q", cs)
		}
		s := sub{lines: make(chan string, 64)}
		go func() {
			defer close(s.lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				s.lines <- sc.Text()
			}
		}()
		return s
	}
	// waitFor reads lines until one equals want, within d.
	waitFor := func(s sub, want string, d time.Duration) {
		t.Helper()
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-s.lines:
				if !ok {
					t.Fatalf("SSE ended before %q", want)
				}
				if l == want {
					return
				}
			case <-timer.C:
				t.Fatalf("SSE: no %q within %v", want, d)
			}
		}
	}
	subs := []sub{subscribe(), subscribe()}
	for _, s := range subs {
		waitFor(s, "event: control", 3*time.Second)
	}
	if n := env.origin.count(uri); n != 2 {
		t.Errorf("origin saw %d SSE requests for 2 subscribers", n)
	}
	appended := time.Now()
	appendTo(t, env.client, url, ct, []byte("live"))
	for i, s := range subs {
		waitFor(s, "data:live", 3*time.Second)
		t.Logf("subscriber %d: event %v after the append", i, time.Since(appended).Round(time.Millisecond))
	}
}
