package e2e

// Shared helpers of the cluster tests (cluster_*_test.go): nodes as
// separate hosts in network namespaces (internal/netnstest) on one network,
// with PostgreSQL (the shared catalog) and MinIO (the shared cold store) in
// the root namespace listening on its addresses there; a write load of
// plain and idempotent writers that records every acknowledgement; and the
// check of every stream against those acknowledgements.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamtier/durable-streams/internal/miniotest"
	"github.com/streamtier/durable-streams/internal/netnstest"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// clusterPort is the port every node listens on, on its own host's
// address: each namespace has ports of its own.
const clusterPort = 4437

// The pieces of issue 15 the cluster tests need, by the engineer who
// builds them (notes: cluster-design.md).
const (
	pieceOwnership = "C1" // leases with fencing, placement, no one-node lock, 503 on node loss
	pieceRouting   = "C2" // any node forwards a request to the stream's owner
	pieceDrain     = "C3" // drain and handoff, SIGTERM drains in cluster mode
)

// clusterLanded lists the pieces merged into main. A test needing one that
// is not listed is skipped, naming it; the coordinator flips an entry when
// the piece lands. DS_E2E_CLUSTER_PIECES=C1,C2,C3 runs the tests early.
var clusterLanded = map[string]bool{
	pieceOwnership: true,
	pieceRouting:   true,
	pieceDrain:     true,
}

// pieceNames says what each piece is, for skip messages.
var pieceNames = map[string]string{
	pieceOwnership: "ownership with fencing and the one-node lock removed (C1)",
	pieceRouting:   "forwarding to the owner (C2)",
	pieceDrain:     "drain and handoff on SIGTERM (C3)",
}

// needPieces skips t unless every piece has landed.
func needPieces(t *testing.T, pieces ...string) {
	t.Helper()
	forced := strings.Split(os.Getenv("DS_E2E_CLUSTER_PIECES"), ",")
	var missing []string
	for _, p := range pieces {
		if !clusterLanded[p] && !slices.Contains(forced, p) {
			missing = append(missing, pieceNames[p])
		}
	}
	if len(missing) > 0 {
		t.Skip("needs " + strings.Join(missing, ", ") + ": not in main yet")
	}
}

// clusterEnv is a network of hosts, PostgreSQL and MinIO reachable from
// them, and the nodes started so far (nil until started).
type clusterEnv struct {
	net    *netnstest.Net
	pg     *pgtest.Server
	pgAddr netip.Addr // the root address PostgreSQL listens on for the hosts; Block it to partition a node from the catalog
	dsn    string     // the cluster database through pgAddr
	mio    *miniotest.Server
	bin    string
	nodes  []*Server
	client *http.Client
}

// startClusterEnv makes n hosts, PostgreSQL on a root address of its own
// (so a node can be cut off from it alone) and MinIO on the root address,
// and builds the server; no node is started.
func startClusterEnv(t *testing.T, n int) *clusterEnv {
	t.Helper()
	bin := BuildServer(t)
	start := time.Now()
	defer func() { t.Logf("network, PostgreSQL and MinIO up in %v", time.Since(start).Round(time.Millisecond)) }()
	nw := netnstest.Start(t, n)
	pgAddr := nw.AddRootAddr(t)
	pg := pgtest.Start(t, pgtest.AlsoListen(netip.PrefixFrom(pgAddr, nw.Prefix.Bits())))
	mio := miniotest.Start(t, miniotest.AlsoListen(nw.Root))
	return &clusterEnv{
		net:    nw,
		pg:     pg,
		pgAddr: pgAddr,
		dsn:    pgtest.Via(pg.NewDatabase(t), pg.AlsoAddr),
		mio:    mio,
		bin:    bin,
		nodes:  make([]*Server, n),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}},
	}
}

// nodeID is node i's --node-id: n1, n2, ...
func nodeID(i int) string { return "n" + strconv.Itoa(i+1) }

// nodeAddr is where node i listens.
func (e *clusterEnv) nodeAddr(i int) string {
	return netip.AddrPortFrom(e.net.Hosts[i].Addr, clusterPort).String()
}

// nodeArgs are node i's cluster flags.
func (e *clusterEnv) nodeArgs(i int) []string {
	return []string{
		"--cluster-dsn", e.dsn,
		"--node-id", nodeID(i),
		"--advertise-url", "http://" + e.nodeAddr(i),
	}
}

// nodeEnv is every node's environment: the cold store is the MinIO bucket
// through the bridge.
func (e *clusterEnv) nodeEnv() []string {
	env := minioEnv(e.mio)
	for i, kv := range env {
		if strings.HasPrefix(kv, "DS_S3_ENDPOINT=") {
			env[i] = "DS_S3_ENDPOINT=" + e.mio.AlsoEndpoint
		}
	}
	return env
}

// startNode starts node i in its host with the cluster flags, the S3 cold
// store and extra flags, and waits until it is healthy.
func (e *clusterEnv) startNode(t *testing.T, i int, extra ...string) *Server {
	t.Helper()
	srv := StartServer(t, e.bin,
		WithAddr(e.nodeAddr(i)),
		WithWrapper(e.net.Hosts[i].Prefix()...),
		WithArgs(append(e.nodeArgs(i), extra...)...),
		WithEnv(e.nodeEnv()...),
		WithReadyTimeout(60*time.Second))
	e.nodes[i] = srv
	return srv
}

// startNodes starts every node, one at a time (each applies or checks the
// migrations and registers).
func (e *clusterEnv) startNodes(t *testing.T, extra ...string) {
	t.Helper()
	start := time.Now()
	// No drain on SIGTERM unless a test asks for one (a later flag wins):
	// stopping nodes at the end of a test need not hand off its streams.
	extra = append([]string{"--drain-timeout", "0"}, extra...)
	for i := range e.nodes {
		e.startNode(t, i, extra...)
	}
	// Every node refreshes the live members once a heartbeat (1 s): two
	// of them let each see all the others before streams are placed.
	time.Sleep(2 * time.Second)
	t.Logf("%d nodes up in %v", len(e.nodes), time.Since(start).Round(time.Millisecond))
}

// db connects to the cluster database from the test (on loopback).
func (e *clusterEnv) db(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.Via(e.dsn, e.pg.Addr))
	if err != nil {
		t.Fatalf("connecting to the cluster database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// owners returns the holder of every stream's lease (node id by stream
// path, as the catalog stores it), read straight from the catalog's
// tables.
func (e *clusterEnv) owners(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(t.Context(),
		`SELECT s.path, l.node FROM streams s JOIN stream_leases l ON l.stream_id = s.id
		 WHERE s.deleted_at IS NULL AND l.node <> ''`)
	if err != nil {
		t.Fatalf("reading leases: %v", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var path, node string
		if err := rows.Scan(&path, &node); err != nil {
			t.Fatal(err)
		}
		out[path] = node
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ownerOf returns the lease holder of the stream named name (the catalog
// may store the path with or without a leading slash), "" if none.
func ownerOf(owners map[string]string, name string) string {
	if o, ok := owners[name]; ok {
		return o
	}
	return owners["/"+name]
}

// ---------------------------------------------------------------------------
// Write load

// clusterAck is one acknowledged append.
type clusterAck struct {
	line string // the appended line, without its newline
	next string // Stream-Next-Offset of the answer; "" for an idempotent duplicate
}

// loadStream is one stream of the load and what its writer knows of it.
type loadStream struct {
	name       string
	idempotent bool

	// Owned by the stream's writer.
	seq     int    // of the pending or next append
	pending string // the line being appended, "" between appends

	mu        sync.Mutex
	acks      []clusterAck
	uncertain map[string]bool // sent, outcome unknown (plain appends only)
	trail     []string        // the latest requests and their outcomes, for a failure's report
}

// trailMax bounds a stream's trail.
const trailMax = 40

// note records one request of s and its outcome in its trail.
func (s *loadStream) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.trail) == trailMax {
		s.trail = s.trail[1:]
	}
	s.trail = append(s.trail, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// clusterLoad is writers appending to streams through random nodes. Each
// stream has one writer, so its acknowledgements are in stream order. Half
// the writers are plain (a retry after an unknown outcome would risk a
// duplicate, so such a line is recorded as uncertain and the writer moves
// on) and half idempotent producers (every failure is retried with the same
// sequence number: the server must deduplicate, across handoffs too).
type clusterLoad struct {
	e       *clusterEnv
	streams []*loadStream
	// crashes is set by tests that kill a node: then a forwarding node's
	// 502 or 504 (the owner died with the request in flight) is an
	// unknown outcome, not a wrong answer.
	crashes bool

	acked     atomic.Int64
	retryable atomic.Int64 // 503 answers with Retry-After
	refused   atomic.Int64 // connections refused (a node down)
	unknown   atomic.Int64 // outcomes unknown (connection cut mid-request)

	mu  sync.Mutex
	bad []string // answers that are neither success nor retryable

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newClusterLoad creates n streams (text/plain) through random nodes.
func newClusterLoad(t *testing.T, e *clusterEnv, n int) *clusterLoad {
	t.Helper()
	l := &clusterLoad{e: e}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for i := range n {
		s := &loadStream{name: fmt.Sprintf("load-%s/s%03d", tag, i), idempotent: i%2 == 1, uncertain: map[string]bool{}}
		l.streams = append(l.streams, s)
		l.create(t, s)
	}
	return l
}

// create PUTs s through some node, retrying retryable answers.
func (l *clusterLoad) create(t *testing.T, s *loadStream) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body, err := tryDo(t.Context(), l.e.client, http.MethodPut, l.e.randomNode().StreamURL(s.name), nil,
			map[string]string{"Content-Type": "text/plain"})
		switch {
		case err == nil && (resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK):
			return
		case err == nil && resp.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("PUT %s: status %d: %s", s.name, resp.StatusCode, body)
		case time.Now().After(deadline):
			t.Fatalf("PUT %s: still failing after 60s: %v %s", s.name, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// randomNode returns a node at random (running or not).
func (e *clusterEnv) randomNode() *Server {
	for {
		if s := e.nodes[rand.IntN(len(e.nodes))]; s != nil {
			return s
		}
	}
}

// start runs writers goroutines until stop.
func (l *clusterLoad) start(writers int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for w := range writers {
		var mine []*loadStream
		for i := w; i < len(l.streams); i += writers {
			mine = append(mine, l.streams[i])
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.write(ctx, mine)
		}()
	}
}

// stop ends the writers and waits for them.
func (l *clusterLoad) stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
}

// write appends to its streams in turn until ctx ends.
func (l *clusterLoad) write(ctx context.Context, streams []*loadStream) {
	idle := 0 // streams visited in a row without an acknowledgement
	for i := 0; ctx.Err() == nil; i = (i + 1) % len(streams) {
		if l.attempt(ctx, streams[i]) {
			idle = 0
			continue
		}
		// One stream being unavailable (its node down) must not hold up
		// the others: move on, and pause only when none makes progress.
		if idle++; idle >= len(streams) {
			idle = 0
			select {
			case <-ctx.Done():
			case <-time.After(50*time.Millisecond + rand.N(100*time.Millisecond)):
			}
		}
	}
	for _, s := range streams {
		if s.pending != "" {
			s.setUncertain(s.pending)
		}
	}
}

// attempt makes one request for s's pending append (a new line if none is
// pending) through a random node, and reports whether it was
// acknowledged. A refusal (503 with Retry-After, a refused connection)
// leaves it pending, to be sent again; so does an unknown outcome of an
// idempotent append (the server deduplicates it), whereas a plain append
// of unknown outcome is recorded as uncertain and not sent again (that
// could store it twice).
func (l *clusterLoad) attempt(ctx context.Context, s *loadStream) bool {
	if s.pending == "" {
		s.pending = fmt.Sprintf("%s#%d", s.name, s.seq)
	}
	line := s.pending
	hdr := map[string]string{"Content-Type": "text/plain"}
	if s.idempotent {
		hdr["Producer-Id"] = "p-" + s.name
		hdr["Producer-Epoch"] = "0"
		hdr["Producer-Seq"] = strconv.Itoa(s.seq)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	via := l.e.randomNode()
	resp, body, err := tryDo(rctx, l.e.client, http.MethodPost, via.StreamURL(s.name), []byte(line+"\n"), hdr)
	cancel()
	if err != nil {
		s.note("%s via %s: %v", line, via.Addr, err)
	} else {
		s.note("%s via %s: %d %s", line, via.Addr, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// settle ends the pending append: acknowledged, or uncertain.
	settle := func(ack *clusterAck) {
		s.mu.Lock()
		if ack != nil {
			s.acks = append(s.acks, *ack)
		} else {
			s.uncertain[line] = true
		}
		s.mu.Unlock()
		s.pending = ""
		s.seq++
	}
	switch {
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		l.refused.Add(1) // nothing was sent
	case err != nil:
		l.unknown.Add(1)
		if !s.idempotent {
			settle(nil)
		}
	case resp.StatusCode/100 == 2:
		next := resp.Header.Get("Stream-Next-Offset")
		if resp.StatusCode == http.StatusNoContent && s.idempotent {
			next = "" // a duplicate of an append whose answer was lost
		}
		settle(&clusterAck{line: line, next: next})
		l.acked.Add(1)
		return true
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		l.retryable.Add(1)
	case l.crashes && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout):
		l.unknown.Add(1)
		if !s.idempotent {
			settle(nil)
		}
	default:
		l.addBad(fmt.Sprintf("POST %s (%s): %d %s: %s", s.name, line, resp.StatusCode, resp.Header.Get("Retry-After"), body))
		if !s.idempotent {
			settle(nil)
		}
	}
	return false
}

func (s *loadStream) setUncertain(line string) {
	s.mu.Lock()
	s.uncertain[line] = true
	s.mu.Unlock()
}

func (l *clusterLoad) addBad(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 1000 {
		l.bad = append(l.bad, msg)
	}
}

// summary is one line of counts for the log.
func (l *clusterLoad) summary() string {
	return fmt.Sprintf("acknowledged=%d retryable-503=%d refused=%d unknown=%d other=%d",
		l.acked.Load(), l.retryable.Load(), l.refused.Load(), l.unknown.Load(), len(l.badAnswers()))
}

func (l *clusterLoad) badAnswers() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.bad)
}

// ackedOf returns how many appends of the streams for which keep is true
// were acknowledged so far.
func (l *clusterLoad) ackedOf(keep func(*loadStream) bool) int {
	n := 0
	for _, s := range l.streams {
		if keep(s) {
			s.mu.Lock()
			n += len(s.acks)
			s.mu.Unlock()
		}
	}
	return n
}

// checkOnlyRetryable fails the test if a client saw an answer other than
// success or 503 with Retry-After.
func (l *clusterLoad) checkOnlyRetryable(t *testing.T) {
	t.Helper()
	if bad := l.badAnswers(); len(bad) > 0 {
		t.Errorf("%d answers were neither success nor 503 with Retry-After; first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}

// finish stops the writers, logs the counts under label, and checks the
// answers and every stream of the load and extra ones.
func (l *clusterLoad) finish(t *testing.T, label string, extra ...*loadStream) {
	t.Helper()
	l.stop()
	t.Logf("%s: %s", label, l.summary())
	l.checkOnlyRetryable(t)
	l.e.verify(t, append(slices.Clone(l.streams), extra...))
}

// verify reads every stream in full through a random node and checks it
// against its writer's acknowledgements: every acknowledged line exactly
// once and in order, nothing but acknowledged or uncertain lines (one
// history), and each acknowledged offset still where it was (a read from
// it returns exactly what followed the line).
func (e *clusterEnv) verify(t *testing.T, streams []*loadStream) {
	t.Helper()
	for _, s := range streams {
		content := e.readStream(t, s.name, "-1")
		s.mu.Lock()
		acks, uncertain := slices.Clone(s.acks), s.uncertain
		s.mu.Unlock()
		if err := historyError(content, acks, uncertain); err != nil {
			s.mu.Lock()
			trail := strings.Join(s.trail, "\n  ")
			s.mu.Unlock()
			t.Errorf("%s: %v\nits latest requests:\n  %s", s.name, err, trail)
			continue
		}
		// Offsets: the first, the last and a few between.
		picks := []int{0, len(acks) - 1, len(acks) / 3, 2 * len(acks) / 3}
		for _, i := range picks {
			if i < 0 || i >= len(acks) || acks[i].next == "" {
				continue
			}
			end := strings.Index(content, acks[i].line+"\n") + len(acks[i].line) + 1
			got := e.readStream(t, s.name, acks[i].next)
			// An uncertain append may still land after the whole read (a
			// forwarded request outliving its cancelled client), so the
			// stream is read whole again after the read from the offset:
			// that read must return the bytes after the line, up to some
			// point at or past the first whole read's end.
			again := e.readStream(t, s.name, "-1")
			if again != content {
				if err := historyError(again, acks, uncertain); err != nil {
					t.Errorf("%s, read again: %v", s.name, err)
				}
			}
			if !strings.HasPrefix(again, content) || !strings.HasPrefix(again[end:], got) || len(got) < len(content)-end {
				t.Errorf("%s: a read from the offset acknowledged for %q (%s) returned %q, want %q, what followed it in a whole read; the whole stream read again: %q",
					s.name, acks[i].line, acks[i].next, clip(got), clip(content[end:]), clip(again))
			}
		}
	}
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 300 {
		return s[:150] + " ... " + s[len(s)-150:]
	}
	return s
}

// historyError checks content (newline-terminated lines) against the
// acknowledged lines, in order, and the uncertain ones: nil when it is the
// one history they describe.
func historyError(content string, acks []clusterAck, uncertain map[string]bool) error {
	if content != "" && !strings.HasSuffix(content, "\n") {
		return errors.New("content does not end with a whole line")
	}
	var lines []string
	if content != "" {
		lines = strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	}
	seen := map[string]bool{}
	next := 0 // the next acknowledged line expected
	for _, line := range lines {
		if seen[line] {
			return fmt.Errorf("%q stored twice", line)
		}
		seen[line] = true
		switch {
		case next < len(acks) && line == acks[next].line:
			next++
		case uncertain[line]:
		default:
			want := "nothing more"
			if next < len(acks) {
				want = strconv.Quote(acks[next].line)
			}
			return fmt.Errorf("found %q where %s was acknowledged (a second history, a lost append or a reordering)", line, want)
		}
	}
	if next < len(acks) {
		return fmt.Errorf("%d acknowledged appends missing, from %q on", len(acks)-next, acks[next].line)
	}
	return nil
}

// readStream reads the stream from offset to its tail through random
// nodes, retrying retryable answers for up to a minute.
func (e *clusterEnv) readStream(t *testing.T, name, offset string) string {
	t.Helper()
	var out strings.Builder
	deadline := time.Now().Add(time.Minute)
	for {
		resp, body, err := tryDo(t.Context(), e.client, http.MethodGet, e.randomNode().StreamURL(name)+"?offset="+offset, nil, nil)
		switch {
		case err == nil && resp.StatusCode == http.StatusOK:
			out.Write(body)
			offset = resp.Header.Get("Stream-Next-Offset")
			if resp.Header.Get("Stream-Up-To-Date") == "true" {
				return out.String()
			}
			continue
		case err == nil && resp.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("GET %s at %s: status %d: %s", name, offset, resp.StatusCode, body)
		case time.Now().After(deadline):
			t.Fatalf("GET %s at %s: still failing after a minute: %v %s", name, offset, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAcks waits until at least n more appends of the streams for which
// keep is true are acknowledged, or fails after timeout.
func (l *clusterLoad) waitAcks(t *testing.T, n int, keep func(*loadStream) bool, timeout time.Duration, what string) {
	t.Helper()
	start := l.ackedOf(keep)
	eventually(t, timeout, 50*time.Millisecond, what, func() string {
		if got := l.ackedOf(keep) - start; got < n {
			return fmt.Sprintf("%d of %d more acknowledged; %s", got, n, l.summary())
		}
		return ""
	})
}

// all keeps every stream.
func all(*loadStream) bool { return true }

// TestClusterHistoryCheck checks the check the cluster tests rely on.
func TestClusterHistoryCheck(t *testing.T) {
	acks := []clusterAck{{line: "a"}, {line: "b"}, {line: "c"}}
	uncertain := map[string]bool{"u": true, "v": true}
	for _, tc := range []struct {
		content string
		ok      bool
	}{
		{"a\nb\nc\n", true},
		{"a\nu\nb\nc\nv\n", true},
		{"a\nb\n", false},          // lost
		{"a\nc\nb\n", false},       // reordered
		{"a\nb\nb\nc\n", false},    // duplicated
		{"a\nb\nc\nx\n", false},    // a line nobody wrote
		{"a\nx\nb\nc\n", false},    // a second history in the middle
		{"a\nu\nu\nb\nc\n", false}, // an uncertain line twice
		{"a\nb\nc", false},         // a torn line
		{"", false},
	} {
		if err := historyError(tc.content, acks, uncertain); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.content, err, tc.ok)
		}
	}
	if err := historyError("", nil, nil); err != nil {
		t.Errorf("empty stream without acknowledgements: %v", err)
	}
}
