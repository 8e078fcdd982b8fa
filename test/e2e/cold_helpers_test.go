package e2e

// Shared helpers of the cold-tier end-to-end tests (cold_*_test.go): a
// MinIO-backed server, a view of its bucket, an HTTP client for loopback,
// offset tokens, and a model of what was appended to a stream against
// which reads are checked byte for byte.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/internal/miniotest"
)

// coldPrefix is the server's default DS_S3_PREFIX.
const coldPrefix = "segments"

// coldEnv is a MinIO server, a durable-streams server using it as its cold
// store, and a view of the bucket below the server's key prefix.
type coldEnv struct {
	mio    *miniotest.Server
	srv    *Server
	bucket bucketView
	client *http.Client
}

// startCold starts MinIO and the server. Without extra arguments the server
// runs with aggressiveRotation; extra arguments replace it.
func startCold(t *testing.T, extra ...string) *coldEnv {
	t.Helper()
	mio := miniotest.Start(t)
	args := aggressiveRotation
	if len(extra) > 0 {
		args = extra
	}
	srv := StartServer(t, BuildServer(t), WithArgs(args...), WithEnv(minioEnv(mio)...))
	return &coldEnv{mio: mio, srv: srv, bucket: bucketView{mio: mio, prefix: coldPrefix + "/"}, client: loopbackClient(30 * time.Second)}
}

// bucketView is the server's bucket below its key prefix, so keys read
// "<stream id>/<segment>.seg". It goes through minio-go (miniotest), not
// the server's own S3 backend: what the tests assert about the bucket is
// checked by a second S3 implementation.
type bucketView struct {
	mio    *miniotest.Server
	prefix string
}

// list returns every object below the prefix, keys without it.
func (b bucketView) list(ctx context.Context) ([]miniotest.Object, error) {
	objs, err := b.mio.Objects(ctx, b.mio.Bucket, b.prefix)
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, b.prefix)
	}
	return objs, err
}

// read returns the whole object key (below the prefix).
func (b bucketView) read(ctx context.Context, key string) ([]byte, error) {
	return b.mio.ReadObject(ctx, b.mio.Bucket, b.prefix+key)
}

func loopbackClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}
}

// ---------------------------------------------------------------------------
// Bucket listings

// objKey is a parsed object key.
type objKey struct{ stream, seg int64 }

func parseObjKey(key string) (objKey, bool) {
	id, rest, ok := strings.Cut(key, "/")
	if !ok || !strings.HasSuffix(rest, ".seg") || strings.Contains(rest, "/") {
		return objKey{}, false
	}
	sid, err1 := strconv.ParseInt(id, 10, 64)
	seg, err2 := strconv.ParseInt(strings.TrimSuffix(rest, ".seg"), 10, 64)
	if err1 != nil || err2 != nil || len(strings.TrimSuffix(rest, ".seg")) != 16 {
		return objKey{}, false
	}
	return objKey{sid, seg}, true
}

// listing is the bucket's segment objects, grouped by stream id.
type listing struct {
	keys   []string
	byID   map[int64][]int64 // sorted segment numbers
	others []string          // keys that are not "<id>/<16 digits>.seg"
}

func (l listing) count() int { return len(l.keys) }

// listBucket lists every object below the prefix.
func listBucket(ctx context.Context, b bucketView) (listing, error) {
	l := listing{byID: map[int64][]int64{}}
	objs, err := b.list(ctx)
	if err != nil {
		return l, err
	}
	for _, obj := range objs {
		l.keys = append(l.keys, obj.Key)
		k, ok := parseObjKey(obj.Key)
		if !ok {
			l.others = append(l.others, obj.Key)
			continue
		}
		l.byID[k.stream] = append(l.byID[k.stream], k.seg)
	}
	for _, segs := range l.byID {
		slices.Sort(segs)
	}
	return l, nil
}

func mustList(t *testing.T, b bucketView) listing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := listBucket(ctx, b)
	if err != nil {
		t.Fatalf("list bucket: %v", err)
	}
	if len(l.others) > 0 {
		t.Errorf("bucket holds unexpected keys: %q", l.others)
	}
	return l
}

// hasAll reports whether segs is exactly 0..last.
func hasAll(segs []int64, last int64) bool { return hasRange(segs, 0, last) }

// hasRange reports whether segs is exactly first..last.
func hasRange(segs []int64, first, last int64) bool {
	if int64(len(segs)) != last-first+1 {
		return false
	}
	for i, s := range segs {
		if s != first+int64(i) {
			return false
		}
	}
	return true
}

// awaitUploads waits until the bucket holds exactly segments 0..want[id]
// of every stream id in want, failing the test after timeout.
func (e *coldEnv) awaitUploads(t *testing.T, want map[int64]int64, timeout time.Duration) listing {
	t.Helper()
	ranges := map[int64][2]int64{}
	for id, last := range want {
		ranges[id] = [2]int64{0, last}
	}
	return e.awaitUploadRanges(t, ranges, timeout)
}

// awaitUploadRanges is awaitUploads for streams whose objects are
// segments want[id][0]..want[id][1] (a fork's own segments).
func (e *coldEnv) awaitUploadRanges(t *testing.T, want map[int64][2]int64, timeout time.Duration) listing {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	lastCount, lastProgress := -1, start
	for {
		l := mustList(t, e.bucket)
		var missing []string
		for id, r := range want {
			if !hasRange(l.byID[id], r[0], r[1]) {
				missing = append(missing, fmt.Sprintf("stream %d: have %d objects (%s), want segments %d..%d",
					id, len(l.byID[id]), segRange(l.byID[id]), r[0], r[1]))
			}
		}
		sort.Strings(missing)
		if len(missing) == 0 {
			return l
		}
		if l.count() != lastCount {
			lastCount, lastProgress = l.count(), time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the bucket still lacks segments (last new object %v ago; see TestColdEverySealUploaded):\n  %s",
				timeout, time.Since(lastProgress).Round(time.Millisecond), strings.Join(missing, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// segRange summarizes a sorted list of segment numbers, naming the gaps.
func segRange(segs []int64) string {
	if len(segs) == 0 {
		return "none"
	}
	s := fmt.Sprintf("%d..%d", segs[0], segs[len(segs)-1])
	var gaps []string
	for i := 1; i < len(segs); i++ {
		for g := segs[i-1] + 1; g < segs[i] && len(gaps) < 20; g++ {
			gaps = append(gaps, strconv.FormatInt(g, 10))
		}
	}
	if len(gaps) > 0 {
		s += " without " + strings.Join(gaps, ",")
	}
	return s
}

// ---------------------------------------------------------------------------
// Offsets

// token is a parsed offset token.
type token struct{ seg, pos int64 }

func (k token) String() string { return fmt.Sprintf("%016d_%016d", k.seg, k.pos) }

func parseToken(t testing.TB, s string) token {
	t.Helper()
	k, ok := tryParseToken(s)
	if !ok {
		t.Fatalf("malformed offset token %q", s)
	}
	return k
}

// tryParseToken is parseToken for goroutines other than the test's.
func tryParseToken(s string) (token, bool) {
	if len(s) != 33 || s[16] != '_' {
		return token{}, false
	}
	seg, err1 := strconv.ParseUint(s[:16], 10, 63)
	pos, err2 := strconv.ParseUint(s[17:], 10, 63)
	return token{int64(seg), int64(pos)}, err1 == nil && err2 == nil
}

// ---------------------------------------------------------------------------
// HTTP

func coldDo(t testing.TB, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := tryDo(context.Background(), c, method, url, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, b
}

func tryDo(ctx context.Context, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// createStream PUTs a stream and expects 201.
func createStream(t testing.TB, c *http.Client, url, ct string, hdr map[string]string) {
	t.Helper()
	h := map[string]string{"Content-Type": ct}
	for k, v := range hdr {
		h[k] = v
	}
	resp, b := coldDo(t, c, http.MethodPut, url, nil, h)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: status %d: %s", url, resp.StatusCode, b)
	}
}

// appendTo POSTs body and returns the Stream-Next-Offset of the append.
func appendTo(t testing.TB, c *http.Client, url, ct string, body []byte) string {
	t.Helper()
	resp, b := coldDo(t, c, http.MethodPost, url, body, map[string]string{"Content-Type": ct})
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: status %d: %s", url, resp.StatusCode, b)
	}
	next := resp.Header.Get("Stream-Next-Offset")
	if next == "" {
		t.Fatalf("POST %s: no Stream-Next-Offset", url)
	}
	return next
}

// chunk is one catch-up read response.
type chunk struct {
	status       int
	body         []byte
	next         string
	upToDate     bool
	cacheControl string
	etag         string
}

func readChunkAt(t testing.TB, c *http.Client, url, off string) chunk {
	t.Helper()
	resp, b := coldDo(t, c, http.MethodGet, url+"?offset="+off, nil, nil)
	ch := chunk{status: resp.StatusCode, body: b, next: resp.Header.Get("Stream-Next-Offset"),
		upToDate: resp.Header.Get("Stream-Up-To-Date") == "true", cacheControl: resp.Header.Get("Cache-Control"),
		etag: resp.Header.Get("ETag")}
	if ch.status != http.StatusOK {
		t.Fatalf("GET %s?offset=%s: status %d: %s", url, off, ch.status, b)
	}
	return ch
}

// streamID returns the stream's internal id, which names its objects. The
// server's ETags are "<id>:<start>:<end>" (cache.ETag).
func streamID(t testing.TB, c *http.Client, url string) int64 {
	t.Helper()
	ch := readChunkAt(t, c, url, "-1")
	et := strings.Trim(strings.TrimPrefix(ch.etag, "W/"), `"`)
	id, _, _ := strings.Cut(et, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("cannot take the stream id from ETag %q of %s", ch.etag, url)
	}
	return n
}

// ---------------------------------------------------------------------------
// Stream model

// streamModel is what was appended to a stream: its bytes, the message
// boundaries and every append's Stream-Next-Offset.
type streamModel struct {
	name string
	url  string
	ct   string
	json bool

	mu     sync.Mutex
	data   []byte   // binary: the stream's bytes; JSON: each append's compact messages joined by commas, concatenated
	starts []int64  // start position of every message (JSON) or append (binary)
	msgs   [][]byte // JSON messages (compact)
	tokens []string // Stream-Next-Offset of every append, in order
}

func newModel(name, url, ct string) *streamModel {
	return &streamModel{name: name, url: url, ct: ct, json: strings.HasPrefix(ct, "application/json")}
}

// add records an acknowledged append: its messages and the returned token.
// It may be called from any goroutine.
func (m *streamModel) add(t testing.TB, msgs [][]byte, tok string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, msg := range msgs {
		if m.json && k > 0 {
			// The server stores an append's JSON messages as one record,
			// joined by commas (this model's appends stay far below the
			// 64 KiB that would split them).
			m.data = append(m.data, ',')
		}
		m.starts = append(m.starts, int64(len(m.data)))
		m.data = append(m.data, msg...)
		if m.json {
			m.msgs = append(m.msgs, msg)
		}
	}
	if got, ok := tryParseToken(tok); !ok || got.pos != int64(len(m.data)) {
		t.Errorf("%s: append returned %q, but %d bytes were appended in all", m.name, tok, len(m.data))
	}
	m.tokens = append(m.tokens, tok)
}

// appendMsgs appends msgs (one binary message, or a JSON batch) and records it.
func (m *streamModel) appendMsgs(t testing.TB, c *http.Client, msgs [][]byte) string {
	t.Helper()
	var body []byte
	if m.json {
		body = append([]byte("["), bytes.Join(msgs, []byte(","))...)
		body = append(body, ']')
	} else {
		body = msgs[0]
	}
	tok := appendTo(t, c, m.url, m.ct, body)
	m.add(t, msgs, tok)
	return tok
}

func (m *streamModel) tail() token {
	m.mu.Lock()
	defer m.mu.Unlock()
	return token{seg: m.lastSeg(), pos: int64(len(m.data))}
}

func (m *streamModel) lastSeg() int64 {
	if len(m.tokens) == 0 {
		return 0
	}
	s, _ := strconv.ParseInt(m.tokens[len(m.tokens)-1][:16], 10, 64)
	return s
}

// segBounds infers segment boundaries from the recorded tokens: a segment
// always ends at an append's end, and an append's token names the segment
// of its last byte, so segment s ends at the largest position of a token
// naming s (and starts where s-1 ends).
func (m *streamModel) segBounds(t testing.TB) map[int64][2]int64 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	end := map[int64]int64{}
	var last token
	for _, s := range m.tokens {
		k := parseToken(t, s)
		if k.seg < last.seg || k.pos <= last.pos && last.pos != 0 {
			t.Fatalf("%s: token %s after %s: tokens must grow", m.name, s, last)
		}
		last = k
		end[k.seg] = k.pos
	}
	out := map[int64][2]int64{}
	for s, e := range end {
		start := int64(0)
		if s > 0 {
			prev, ok := end[s-1]
			if !ok {
				t.Fatalf("%s: no append ended in segment %d, but one ended in %d: segment numbers skip", m.name, s-1, s)
			}
			start = prev
		}
		out[s] = [2]int64{start, e}
	}
	return out
}

// readCheck tracks the checks of a series of reads of one model.
type readCheck struct {
	m      *streamModel
	bounds map[int64][2]int64
}

func (m *streamModel) checker(t testing.TB) *readCheck {
	return &readCheck{m: m, bounds: m.segBounds(t)}
}

// check verifies one response to a read from token from: its bytes are
// exactly the model's bytes [from, next), and they lie in one segment.
func (rc *readCheck) check(t testing.TB, from token, ch chunk) token {
	t.Helper()
	m := rc.m
	next := parseToken(t, ch.next)
	if next.pos < from.pos || next.seg < from.seg {
		t.Fatalf("%s: read at %s answered Stream-Next-Offset %s, before the request", m.name, from, next)
	}
	m.mu.Lock()
	data, starts, msgs := m.data, m.starts, m.msgs
	m.mu.Unlock()
	if next.pos > int64(len(data)) {
		t.Fatalf("%s: read at %s answered Stream-Next-Offset %s beyond the %d appended bytes", m.name, from, next, len(data))
	}
	want := data[from.pos:next.pos]
	if m.json {
		var got []json.RawMessage
		if err := json.Unmarshal(ch.body, &got); err != nil {
			t.Fatalf("%s: read at %s: body is not a JSON array: %v", m.name, from, err)
		}
		i, ok := slices.BinarySearch(starts, from.pos)
		if !ok && from.pos != int64(len(data)) {
			t.Fatalf("%s: read at %s: not a message boundary of the model", m.name, from)
		}
		j := len(msgs)
		if next.pos < int64(len(data)) {
			if j, ok = slices.BinarySearch(starts, next.pos); !ok {
				t.Fatalf("%s: read at %s answered Stream-Next-Offset %s, not a message boundary of the model", m.name, from, next)
			}
		}
		if len(got) != j-i {
			t.Fatalf("%s: read at %s: %d messages, but Stream-Next-Offset %s says %d", m.name, from, len(got), next, j-i)
		}
		for k, g := range got {
			var buf bytes.Buffer
			if err := json.Compact(&buf, g); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), msgs[i+k]) {
				t.Fatalf("%s: read at %s: message %d of the response is %s, want message %d of the stream %s",
					m.name, from, k, buf.Bytes(), i+k, safeIndex(msgs, i+k))
			}
		}
	} else if !bytes.Equal(ch.body, want) {
		t.Fatalf("%s: read at %s (next %s): got %d bytes, want %d; first difference at byte %d",
			m.name, from, next, len(ch.body), len(want), firstDiff(ch.body, want))
	}
	if next.pos == from.pos {
		return next
	}
	// One segment: the bytes [from, next) all lie in segment next.seg.
	b, ok := rc.bounds[next.seg]
	if !ok {
		t.Fatalf("%s: read at %s answered %s, naming a segment no append ended in", m.name, from, next)
	}
	if from.pos < b[0] || next.pos > b[1] {
		t.Fatalf("%s: read at %s answered %s: bytes [%d,%d) span segments (segment %d is [%d,%d))",
			m.name, from, next, from.pos, next.pos, next.seg, b[0], b[1])
	}
	if next.seg != from.seg && !(next.seg == from.seg+1 && from.pos == rc.bounds[from.seg][1]) {
		t.Fatalf("%s: read at %s answered %s: skipped a segment", m.name, from, next)
	}
	return next
}

func safeIndex(msgs [][]byte, i int) string {
	if i < len(msgs) {
		return string(msgs[i])
	}
	return "(none)"
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// readWhole reads the stream from -1 through the chunk chain, checking
// every chunk, and that the chain ends at the model's tail. Chunks that are
// not up to date lie in sealed segments (the stream is quiescent and sealed
// by age), so their Cache-Control must say immutable. It returns the number
// of chunks.
func (rc *readCheck) readWhole(t testing.TB, c *http.Client, wantImmutable bool) int {
	t.Helper()
	m := rc.m
	tail := m.tail()
	from := token{}
	off := "-1"
	for n := 1; ; n++ {
		if n > 1_000_000 {
			t.Fatalf("%s: read did not reach the tail", m.name)
		}
		ch := readChunkAt(t, c, m.url, off)
		next := rc.check(t, from, ch)
		if !ch.upToDate {
			if next.pos == from.pos {
				t.Fatalf("%s: read at %s returned no data but is not up to date", m.name, from)
			}
			if wantImmutable && !strings.Contains(ch.cacheControl, "immutable") {
				t.Errorf("%s: chunk [%s,%s) of a sealed segment has Cache-Control %q, want immutable", m.name, from, next, ch.cacheControl)
			}
		}
		if ch.upToDate {
			if next.pos != tail.pos {
				t.Fatalf("%s: up to date at %s, but %d bytes were appended", m.name, next, tail.pos)
			}
			return n
		}
		from, off = next, ch.next
	}
}

// randomReads reads from n random recorded offsets (and the start).
func (rc *readCheck) randomReads(t testing.TB, c *http.Client, n int, pick func(int) int) {
	t.Helper()
	m := rc.m
	m.mu.Lock()
	toks := slices.Clone(m.tokens)
	m.mu.Unlock()
	toks = append(toks, token{}.String())
	for range n {
		off := toks[pick(len(toks))]
		rc.check(t, parseToken(t, off), readChunkAt(t, c, m.url, off))
	}
}

// ---------------------------------------------------------------------------
// Misc

// eventually polls cond every interval until it returns "" or the deadline
// passes, then fails with cond's last message.
func eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// hotLogFiles returns the hot log database files under dataDir/streams
// with their sizes. Files that vanish while it looks are left out (it runs
// while the server works, and off the test goroutine).
func hotLogFiles(dataDir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(filepath.Join(dataDir, "streams"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasSuffix(p, ".db") || strings.HasSuffix(p, ".db-wal") {
			if fi, err := d.Info(); err == nil {
				out[p] = fi.Size()
			}
		}
		return nil
	})
	return out
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// streamSegments returns the segment index rows of stream (of every stream
// if 0) from a catalog opened on a stopped server's data directory.
func streamSegments(t *testing.T, cat *catalog.Catalog, stream int64) []catalog.Segment {
	t.Helper()
	var out []catalog.Segment
	var after *[2]int64
	for {
		page, err := cat.ListSegments(context.Background(), catalog.SegmentFilter{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if stream == 0 || e.StreamID == stream {
				out = append(out, e.Segment)
			}
		}
		if len(page) < 1000 {
			return out
		}
		last := page[len(page)-1]
		after = &[2]int64{last.StreamID, last.Seg}
	}
}
