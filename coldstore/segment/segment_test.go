package segment

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// genMsgs returns messages of the given sizes with random data and
// BatchEnd flags, contiguous from start.
func genMsgs(rng *rand.Rand, start int64, sizes []int) []Message {
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := make([]byte, total)
	for i := 0; i < len(data); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(data[i:], w[:])
	}
	msgs := make([]Message, len(sizes))
	pos := start
	for i, n := range sizes {
		msgs[i] = Message{Pos: pos, Data: data[:n:n], BatchEnd: i == len(sizes)-1 || rng.IntN(3) == 0}
		data = data[n:]
		pos += int64(n)
	}
	return msgs
}

func headerFor(stream, seg, start int64, msgs []Message) Header {
	end := start
	if len(msgs) > 0 {
		end = msgs[len(msgs)-1].End()
	}
	return Header{StreamID: stream, Segment: seg, Start: start, End: end, Count: int64(len(msgs)), ContentType: "application/octet-stream"}
}

func encodeT(tb testing.TB, h Header, msgs []Message, stride int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	size, crc, err := encode(&buf, h, msgs, stride)
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	obj := buf.Bytes()
	if size != int64(len(obj)) {
		tb.Fatalf("encode: size %d, wrote %d bytes", size, len(obj))
	}
	if got := encodedSize(h, msgs, stride); got != size {
		tb.Fatalf("encodedSize = %d, encode wrote %d bytes", got, size)
	}
	if want := crc32.Checksum(obj, castagnoli); crc != want {
		tb.Fatalf("encode: crc %08x, want %08x", crc, want)
	}
	return obj
}

// memFetch serves ranged reads of obj, counting them.
func memFetch(obj []byte, count *atomic.Int64) Fetch {
	return func(ctx context.Context, off, n int64) ([]byte, error) {
		if count != nil {
			count.Add(1)
		}
		if off < 0 || n < 0 || off > int64(len(obj)) || n > int64(len(obj))-off {
			return nil, fmt.Errorf("range [%d, %d) outside object of %d bytes", off, off+n, len(obj))
		}
		return bytes.Clone(obj[off : off+n]), nil
	}
}

// naiveRead is the reference read: the hot log's Read semantics over a
// slice of contiguous messages.
func naiveRead(msgs []Message, from, limit int64, budget int) []Message {
	out := []Message{}
	if from >= limit {
		return out
	}
	budget = max(budget, 0)
	used := 0
	for _, m := range msgs {
		if m.End() <= from {
			continue
		}
		if m.Pos >= limit || (len(out) > 0 && used+len(m.Data) > budget) {
			break
		}
		out = append(out, m)
		used += len(m.Data)
		if used >= budget {
			break
		}
	}
	return out
}

func sameMsgs(t *testing.T, what string, got, want []Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Pos != w.Pos || g.BatchEnd != w.BatchEnd || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: message %d: got pos %d len %d batchEnd %v, want pos %d len %d batchEnd %v",
				what, i, g.Pos, len(g.Data), g.BatchEnd, w.Pos, len(w.Data), w.BatchEnd)
		}
	}
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mixed := make([]int, 3000)
	for i := range mixed {
		switch rng.IntN(20) {
		case 0:
			mixed[i] = Stride + rng.IntN(3*Stride)
		case 1:
			mixed[i] = Stride - rng.IntN(8)
		default:
			mixed[i] = 1 + rng.IntN(300)
		}
	}
	cases := []struct {
		name  string
		start int64
		sizes []int
	}{
		{"empty", 4711, nil},
		{"1B", 0, []int{1}},
		{"1B x 5000", 17, repeat(5000, 1)},
		{"100B x 50k", 123456789, repeat(50000, 100)},
		{"256KiB x 24", 1 << 40, repeat(24, 256<<10)},
		{"8MiB", 5, []int{8 << 20}},
		{"stride-sized", 0, repeat(100, Stride-2)},
		{"mixed", 99, mixed},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := genMsgs(rng, tc.start, tc.sizes)
			h := headerFor(int64(i+1), int64(i*7), tc.start, msgs)
			var buf bytes.Buffer
			size, crc, err := Encode(&buf, h, msgs)
			if err != nil {
				t.Fatal(err)
			}
			obj := buf.Bytes()
			if size != int64(len(obj)) || crc != crc32.Checksum(obj, castagnoli) {
				t.Fatalf("Encode returned size %d crc %08x for %d bytes crc %08x", size, crc, len(obj), crc32.Checksum(obj, castagnoli))
			}
			ix, err := Verify(bytes.NewReader(obj), size)
			if err != nil {
				t.Fatal(err)
			}
			if ix.Header != h || ix.ObjectCRC != crc || ix.Size != size || ix.Stride != Stride {
				t.Fatalf("Verify: header %+v crc %08x size %d, want %+v %08x %d", ix.Header, ix.ObjectCRC, ix.Size, h, crc, size)
			}
			got, n, err := ParseHeader(obj)
			if err != nil || got != h || int64(n) != ix.BodyOff {
				t.Fatalf("ParseHeader: %+v %d %v", got, n, err)
			}

			var fetches atomic.Int64
			r, err := NewReader(t.Context(), memFetch(obj, &fetches), size)
			if err != nil {
				t.Fatal(err)
			}
			if f := fetches.Load(); f != 1 {
				t.Errorf("NewReader: %d fetches, want 1", f)
			}
			// Everything at once.
			all, err := r.Read(t.Context(), math.MinInt64, math.MaxInt64, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			sameMsgs(t, "read all", all, msgs)
			// Catch-up reads of 1 MiB chunks, as the server does them.
			var chained []Message
			for from := h.Start; from < h.End; {
				before := fetches.Load()
				chunk, err := r.Read(t.Context(), from, h.End, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if f := fetches.Load() - before; f > 1 {
					t.Fatalf("read at %d: %d fetches", from, f)
				}
				if len(chunk) == 0 {
					t.Fatalf("read at %d: nothing", from)
				}
				chained = append(chained, chunk...)
				from = chunk[len(chunk)-1].End()
			}
			sameMsgs(t, "chained reads", chained, msgs)
		})
	}
}

// TestIndexSize reports the footprint of the sparse index for a 4 MiB
// segment of 100-byte messages.
func TestIndexSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	msgs := genMsgs(rng, 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	obj := encodeT(t, h, msgs, Stride)
	ix, err := ParseIndex(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	indexBytes := ix.Blocks() * EntrySize
	footer := ix.Size - ix.BodyEnd
	overhead := len(obj) - int(h.End-h.Start)
	t.Logf("%d messages, %d data bytes: object %d bytes, body %d, %d blocks, index %d bytes, footer %d bytes, total overhead %d bytes (%.2f%%); a dense 16-byte index would be %d bytes",
		h.Count, h.End-h.Start, len(obj), ix.BodyEnd-ix.BodyOff, ix.Blocks(), indexBytes, footer, overhead,
		100*float64(overhead)/float64(h.End-h.Start), 16*h.Count)
	if footer > TailFetch {
		t.Errorf("footer of %d bytes does not fit the first fetch of %d", footer, TailFetch)
	}
	if indexBytes > 24<<10 {
		t.Errorf("index of %d bytes, want at most 24 KiB", indexBytes)
	}
}

// randomSizes draws message sizes from one of several distributions.
func randomSizes(rng *rand.Rand, stride int) []int {
	n := rng.IntN(400)
	sizes := make([]int, n)
	kind := rng.IntN(4)
	for i := range sizes {
		switch kind {
		case 0: // tiny
			sizes[i] = 1 + rng.IntN(4)
		case 1: // small relative to the stride
			sizes[i] = 1 + rng.IntN(stride/2+1)
		case 2: // around the stride
			sizes[i] = max(1, stride-10+rng.IntN(20))
		default: // mixed with large messages
			if rng.IntN(6) == 0 {
				sizes[i] = stride + rng.IntN(4*stride)
			} else {
				sizes[i] = 1 + rng.IntN(200)
			}
		}
	}
	return sizes
}

// TestLocateDecodeRange compares Locate+DecodeRange with the reference
// read for random objects and random reads, and checks the size of the
// ranges Locate returns.
func TestLocateDecodeRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	strides := []int{minStride, 16, 64, 256, 1024, Stride}
	objects := 200
	if testing.Short() {
		objects = 30
	}
	for range objects {
		stride := strides[rng.IntN(len(strides))]
		start := rng.Int64N(1 << 20)
		msgs := genMsgs(rng, start, randomSizes(rng, stride))
		h := headerFor(rng.Int64(), rng.Int64N(1000), start, msgs)
		obj := encodeT(t, h, msgs, stride)
		ix, err := ParseIndex(obj[rng.IntN(int(h.End-h.Start)+1):], int64(len(obj)))
		if err != nil {
			t.Fatal(err)
		}
		boundary := map[int64]bool{}
		for _, m := range msgs {
			boundary[m.Pos] = true
		}
		for range 200 {
			from := h.Start - 5 + rng.Int64N(h.End-h.Start+10)
			var limit int64
			switch rng.IntN(4) {
			case 0:
				limit = math.MaxInt64
			case 1:
				limit = h.End
			default:
				limit = from + rng.Int64N(h.End-h.Start+10)
			}
			var budget int
			switch rng.IntN(5) {
			case 0:
				budget = rng.IntN(3) - 1
			case 1:
				budget = math.MaxInt
			default:
				budget = rng.IntN(8 * stride)
			}
			want := naiveRead(msgs, from, limit, budget)
			off, end := ix.Locate(from, limit, budget)
			got, err := ix.DecodeRange(obj[off:end], off, from, limit, budget)
			if err != nil {
				t.Fatalf("stride %d read (%d, %d, %d): range [%d, %d): %v", stride, from, limit, budget, off, end, err)
			}
			what := fmt.Sprintf("stride %d read (%d, %d, %d)", stride, from, limit, budget)
			sameMsgs(t, what, got, want)
			if len(want) == 0 {
				if off != end {
					t.Fatalf("%s: empty read, range [%d, %d)", what, off, end)
				}
				continue
			}
			// Locate's range holds the records returned plus less than a
			// stride on either side when from is a message boundary (or
			// inside a large message), and at most about the budget more
			// otherwise.
			var rec int64
			for _, m := range got {
				rec += int64(1 + uvarintLen(uint64(len(m.Data))) + len(m.Data))
			}
			waste := end - off - rec
			bound := 2 * int64(stride)
			if !boundary[max(from, h.Start)] && int64(len(got[0].Data)) <= int64(stride) {
				bound += 3 * int64(min(budget, 1<<40))
			}
			if waste < 0 || waste >= bound {
				t.Fatalf("%s: range [%d, %d) of %d bytes for %d record bytes (bound %d)", what, off, end, end-off, rec, bound)
			}
			if rng.IntN(8) != 0 {
				continue
			}
			// A whole-body range decodes the same.
			got, err = ix.DecodeRange(obj[ix.BodyOff:ix.BodyEnd], ix.BodyOff, from, limit, budget)
			if err != nil {
				t.Fatal(err)
			}
			sameMsgs(t, what+" whole body", got, want)
		}
	}
}

func TestReadInsideMessage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	msgs := genMsgs(rng, 1000, []int{10, 3 * Stride, 10, 10, 2 * Stride, 10})
	h := headerFor(1, 2, 1000, msgs)
	obj := encodeT(t, h, msgs, Stride)
	r, err := NewReader(t.Context(), memFetch(obj, nil), int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from   int64
		budget int
		want   []Message
	}{
		{1005, 1, msgs[:1]},                       // inside a small message, budget below its size
		{1005, 10, msgs[:1]},                      // budget exactly used
		{1005, 11, msgs[:1]},                      // the large message does not fit
		{1005, 10 + 3*Stride, msgs[:2]},           // it fits exactly
		{1010 + Stride, 0, msgs[1:2]},             // inside the large message, no budget
		{1010 + Stride, 3*Stride + 20, msgs[1:4]}, // budget counts the whole first message
		{1010 + 3*Stride + 15, 1 << 20, msgs[3:]}, // the rest
		{1000 - 50, 10, msgs[:1]},                 // before the segment: from its start
		{h.End - 1, -5, msgs[5:]},                 // the last byte, negative budget
		{h.End, 1 << 20, nil},                     // the end
	} {
		got, err := r.Read(t.Context(), tc.from, math.MaxInt64, tc.budget)
		if err != nil {
			t.Fatal(err)
		}
		sameMsgs(t, fmt.Sprintf("read (%d, %d)", tc.from, tc.budget), got, tc.want)
		if got == nil {
			t.Fatalf("read (%d, %d): nil slice", tc.from, tc.budget)
		}
	}
	// A limit inside a message still returns it; a limit at its start
	// does not.
	got, _ := r.Read(t.Context(), 1000, 1011, 1<<20)
	sameMsgs(t, "limit inside", got, msgs[:2])
	got, _ = r.Read(t.Context(), 1000, 1010, 1<<20)
	sameMsgs(t, "limit at start", got, msgs[:1])
}

// TestLayout pins the byte layout documented in docs/segment-format.md.
func TestLayout(t *testing.T) {
	msgs := []Message{
		{Pos: 10, Data: []byte("ab")},
		{Pos: 12, Data: []byte("cde"), BatchEnd: true},
		{Pos: 15, Data: bytes.Repeat([]byte("x"), 200), BatchEnd: true},
	}
	h := Header{StreamID: 0x0102030405060708, Segment: 3, Start: 10, End: 215, Count: 3, ContentType: "text/plain"}
	obj := encodeT(t, h, msgs, Stride)
	le := binary.LittleEndian
	ct := len(h.ContentType)
	hl := HeaderFixedSize + ct
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("magic", string(obj[0:5]), Magic)
	check("version", obj[5], Version)
	check("stream", le.Uint64(obj[8:]), uint64(h.StreamID))
	check("segment", le.Uint64(obj[16:]), 3)
	check("start", le.Uint64(obj[24:]), 10)
	check("end", le.Uint64(obj[32:]), 215)
	check("count", le.Uint64(obj[40:]), 3)
	check("ct len", le.Uint32(obj[48:]), ct)
	check("ct", string(obj[52:52+ct]), h.ContentType)
	check("header crc", le.Uint32(obj[52+ct:]), crc32.Checksum(obj[:52+ct], castagnoli))
	body := obj[hl:]
	check("record 0", body[:5], []byte{0, 2, 'a', 'b', 1})
	check("record 1", body[5:9], []byte{3, 'c', 'd', 'e'})
	check("record 2 header", body[9:12], []byte{1, 0xc8, 0x01})
	bodyLen := 5 + 4 + 3 + 200
	footer := hl + bodyLen
	check("header copy", obj[footer:footer+hl], obj[:hl])
	idx := footer + hl
	check("entry pos", le.Uint64(obj[idx:]), 10)
	check("entry off", le.Uint64(obj[idx+8:]), hl)
	check("entry crc", le.Uint32(obj[idx+16:]), crc32.Checksum(obj[hl:footer], castagnoli))
	tr := obj[idx+EntrySize:]
	check("trailer size", len(tr), TrailerSize)
	check("footer off", le.Uint64(tr[0:]), footer)
	check("index off", le.Uint64(tr[8:]), idx)
	check("entries", le.Uint64(tr[16:]), 1)
	check("stride", le.Uint32(tr[24:]), Stride)
	check("body crc", le.Uint32(tr[28:]), crc32.Checksum(obj[hl:footer], castagnoli))
	check("index crc", le.Uint32(tr[32:]), crc32.Checksum(obj[idx:idx+EntrySize], castagnoli))
	check("trailer crc", le.Uint32(tr[36:]), crc32.Checksum(tr[:36], castagnoli))
	check("trailer version", tr[40], Version)
	check("trailer magic", string(tr[43:]), Magic)

	// Blocks: small records share a block; a record larger than the
	// stride is a block of its own.
	msgs = genMsgs(rand.New(rand.NewPCG(1, 1)), 0, []int{10, 10, 100, 5, 5})
	obj = encodeT(t, headerFor(1, 1, 0, msgs), msgs, 32)
	ix, err := ParseIndex(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for _, b := range ix.blocks {
		starts = append(starts, b.pos)
	}
	check("block starts", starts, []int64{0, 20, 120})
}

func TestEncodeErrors(t *testing.T) {
	good := genMsgs(rand.New(rand.NewPCG(1, 1)), 100, []int{5, 6, 7})
	for _, tc := range []struct {
		name string
		edit func(*Header, []Message) []Message
	}{
		{"gap", func(h *Header, m []Message) []Message { m[1].Pos++; return m }},
		{"overlap", func(h *Header, m []Message) []Message { m[2].Pos--; return m }},
		{"empty message", func(h *Header, m []Message) []Message { m[2].Data = nil; return m }},
		{"count", func(h *Header, m []Message) []Message { h.Count = 2; return m }},
		{"end short", func(h *Header, m []Message) []Message { h.End--; return m }},
		{"end long", func(h *Header, m []Message) []Message { h.End++; return m }},
		{"start", func(h *Header, m []Message) []Message { h.Start = 99; return m }},
		{"negative start", func(h *Header, m []Message) []Message { h.Start, h.End, h.Count = -1, -1, 0; return nil }},
		{"negative segment", func(h *Header, m []Message) []Message { h.Segment = -1; return m }},
		{"content type", func(h *Header, m []Message) []Message {
			h.ContentType = strings.Repeat("a", MaxContentType+1)
			return m
		}},
	} {
		h := headerFor(1, 1, 100, good)
		msgs := tc.edit(&h, slices.Clone(good))
		if _, _, err := Encode(&bytes.Buffer{}, h, msgs); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// A failing writer.
	h := headerFor(1, 1, 100, good)
	if _, _, err := Encode(failWriter{}, h, good); err == nil {
		t.Error("failing writer: no error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDecodeRangeErrors(t *testing.T) {
	msgs := genMsgs(rand.New(rand.NewPCG(1, 1)), 0, repeat(100, 50))
	obj := encodeT(t, headerFor(1, 1, 0, msgs), msgs, 256)
	ix, err := ParseIndex(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	b0, b1, b2 := ix.blocks[0], ix.blocks[1], ix.blocks[2]
	for _, tc := range []struct {
		name     string
		off, end int64
		from     int64
	}{
		{"start inside a block", b0.off + 1, b1.off, 0},
		{"end inside a block", b0.off, b1.off + 1, 0},
		{"empty", b1.off, b1.off, b1.pos},
		{"from before", b1.off, b2.off, b1.pos - 1},
		{"from after", b1.off, b2.off, b2.pos},
	} {
		_, err := ix.DecodeRange(obj[tc.off:tc.end], tc.off, tc.from, math.MaxInt64, 1<<20)
		if !errors.Is(err, ErrRange) {
			t.Errorf("%s: %v, want ErrRange", tc.name, err)
		}
	}
	// A range that ends before the read is complete returns what it has.
	got, err := ix.DecodeRange(obj[b1.off:b2.off], b1.off, b1.pos+5, math.MaxInt64, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sameMsgs(t, "short range", got, naiveRead(msgs, b1.pos, b2.pos, 1<<20))
}

// readAll reads a whole object through a Reader in chunks.
func readAll(ctx context.Context, obj []byte, chunk int) ([]Message, error) {
	r, err := NewReader(ctx, memFetch(obj, nil), int64(len(obj)))
	if err != nil {
		return nil, err
	}
	h := r.Index().Header
	var out []Message
	for from := h.Start; from < h.End; {
		msgs, err := r.Read(ctx, from, h.End, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
		from = msgs[len(msgs)-1].End()
	}
	return out, nil
}

func TestCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	sizes := append(repeat(60, 30), 300, 2, 700, 1)
	msgs := genMsgs(rng, 77, sizes)
	h := headerFor(5, 6, 77, msgs)
	small := encodeT(t, h, msgs, 128) // several blocks, some single-record
	big := genMsgs(rng, 0, append(repeat(1000, 100), 200<<10, verifyBuffer+verifyBuffer/2, 5))
	large := encodeT(t, headerFor(1, 1, 0, big), big, Stride)

	for _, tc := range []struct {
		name  string
		obj   []byte
		msgs  []Message
		flips []int
	}{
		{"small, every byte", small, msgs, nil},
		{"large, random bytes", large, big, func() []int {
			// Every byte of the head and the footer, random ones elsewhere.
			ix, err := ParseIndex(large, int64(len(large)))
			if err != nil {
				t.Fatal(err)
			}
			var f []int
			for i := range int(ix.BodyOff) + 64 {
				f = append(f, i)
			}
			for i := int(ix.BodyEnd) - 64; i < int(ix.BodyEnd+ix.BodyOff)+64; i++ {
				f = append(f, i)
			}
			for i := len(large) - TrailerSize - 64; i < len(large); i++ {
				f = append(f, i)
			}
			for range 100 {
				f = append(f, rng.IntN(len(large)), int(ix.BodyEnd)+rng.IntN(len(large)-int(ix.BodyEnd)))
			}
			return f
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := ParseIndex(tc.obj, int64(len(tc.obj)))
			if err != nil {
				t.Fatal(err)
			}
			flips := tc.flips
			if flips == nil {
				for i := range tc.obj {
					flips = append(flips, i)
				}
			}
			for _, i := range flips {
				x := byte(1 + rng.IntN(255))
				bad := tc.obj
				bad[i] ^= x
				if _, err := Verify(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d ^ %#x: Verify: %v", i, x, err)
				}
				switch {
				case int64(i) < ix.BodyOff:
					// A ranged reader never reads the leading header; it
					// uses the copy in the footer.
					got, err := readAll(t.Context(), bad, 1<<20)
					if err != nil {
						t.Fatalf("byte %d ^ %#x in the leading header: read: %v", i, x, err)
					}
					sameMsgs(t, "read", got, tc.msgs)
				case int64(i) >= ix.BodyEnd:
					if _, err := NewReader(t.Context(), memFetch(bad, nil), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("byte %d ^ %#x in the footer: NewReader: %v", i, x, err)
					}
				default:
					// Any read whose range includes the block fails.
					r, err := NewReader(t.Context(), memFetch(bad, nil), int64(len(bad)))
					if err != nil {
						t.Fatalf("byte %d ^ %#x in the body: NewReader: %v", i, x, err)
					}
					k := sort.Search(ix.Blocks(), func(k int) bool { return ix.blocks[k].off > int64(i) }) - 1
					from := ix.blocks[k].pos + rng.Int64N(ix.blockEndPos(k)-ix.blocks[k].pos)
					if _, err := r.Read(t.Context(), from, math.MaxInt64, rng.IntN(3)); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("byte %d ^ %#x in block %d: read at %d: %v", i, x, k, from, err)
					}
				}
				bad[i] ^= x
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	msgs := genMsgs(rng, 0, append(repeat(50, 200), 10000))
	obj := encodeT(t, headerFor(1, 1, 0, msgs), msgs, 512)
	cuts := []int{0, 1, 10, TrailerSize - 1, TrailerSize, MinObjectSize, len(obj) / 2, len(obj) - TrailerSize, len(obj) - 1}
	for range 50 {
		cuts = append(cuts, rng.IntN(len(obj)))
	}
	for _, n := range cuts {
		cut := obj[:n]
		if _, err := Verify(bytes.NewReader(cut), int64(n)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d: Verify: %v", n, err)
		}
		// The store returns fewer bytes than the size says.
		if _, err := Verify(bytes.NewReader(cut), int64(len(obj))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d, full size: Verify: %v", n, err)
		}
		if _, err := readAll(t.Context(), cut, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d: read: %v", n, err)
		}
		if _, err := ParseTrailer(cut, int64(n)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d: ParseTrailer: %v", n, err)
		}
		if _, _, err := ParseHeader(cut); n < HeaderFixedSize+len("application/octet-stream") && !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d: ParseHeader: %v", n, err)
		}
	}
	// Extra bytes at the end are no object either.
	long := append(bytes.Clone(obj), 0)
	if _, err := Verify(bytes.NewReader(long), int64(len(long))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("extra byte: Verify: %v", err)
	}
}

// TestReaderFetches proves that a read costs at most three fetches: one
// or two for the footer and one for the body.
func TestReaderFetches(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	msgs := genMsgs(rng, 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	for _, tc := range []struct {
		name          string
		obj           []byte
		footerFetches int64
		readFetches   int64
	}{
		{"4 MiB, default stride", encodeT(t, h, msgs, Stride), 1, 1},
		{"4 MiB, index larger than the first fetch", encodeT(t, h, msgs, 128), 2, 1},
		{"small object", encodeT(t, headerFor(1, 0, 0, msgs[:100]), msgs[:100], Stride), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			r, err := NewReader(t.Context(), memFetch(tc.obj, &n), int64(len(tc.obj)))
			if err != nil {
				t.Fatal(err)
			}
			if got := n.Load(); got != tc.footerFetches {
				t.Errorf("NewReader: %d fetches, want %d", got, tc.footerFetches)
			}
			end := r.Index().Header.End
			for range 20 {
				from := rng.Int64N(end)
				n.Store(0)
				got, err := r.Read(t.Context(), from, math.MaxInt64, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if f := n.Load(); f != tc.readFetches {
					t.Fatalf("read at %d: %d fetches, want %d", from, f, tc.readFetches)
				}
				sameMsgs(t, "read", got, naiveRead(msgs, from, end, 1<<20))
			}
		})
	}
}

func TestReaderFetchErrors(t *testing.T) {
	msgs := genMsgs(rand.New(rand.NewPCG(1, 1)), 0, repeat(100, 1000))
	obj := encodeT(t, headerFor(1, 0, 0, msgs), msgs, Stride)
	boom := errors.New("boom")
	var calls atomic.Int64
	failing := func(fail int64, short bool) Fetch {
		calls.Store(0)
		return func(ctx context.Context, off, n int64) ([]byte, error) {
			if calls.Add(1) == fail {
				if short {
					return obj[off : off+n-1], nil
				}
				return nil, boom
			}
			return obj[off : off+n], nil
		}
	}
	if _, err := NewReader(t.Context(), failing(1, false), int64(len(obj))); !errors.Is(err, boom) {
		t.Errorf("NewReader: %v, want boom", err)
	}
	if _, err := NewReader(t.Context(), failing(1, true), int64(len(obj))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NewReader, short fetch: %v, want ErrCorrupt", err)
	}
	r, err := NewReader(t.Context(), failing(2, false), int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(t.Context(), 0, math.MaxInt64, 100); !errors.Is(err, boom) {
		t.Errorf("Read: %v, want boom", err)
	}
	r, _ = NewReader(t.Context(), failing(2, true), int64(len(obj)))
	if _, err := r.Read(t.Context(), 0, math.MaxInt64, 100); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Read, short fetch: %v, want ErrCorrupt", err)
	}
	if _, err := NewReader(t.Context(), memFetch(obj, nil), MinObjectSize-1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("tiny size: %v, want ErrCorrupt", err)
	}
}

// reseal recomputes, as far as the bytes allow, every checksum of a
// (mutated) object, so that fuzzing reaches the structural checks behind
// them.
func reseal(b []byte) {
	le := binary.LittleEndian
	if len(b) < TrailerSize {
		return
	}
	tr := b[len(b)-TrailerSize:]
	end := uint64(len(b) - TrailerSize)
	header := func(off uint64) uint64 {
		if off > end || end-off < HeaderFixedSize {
			return 0
		}
		n := uint64(le.Uint32(b[off+48:]))
		if n > end-off-HeaderFixedSize {
			return 0
		}
		le.PutUint32(b[off+52+n:], crc32.Checksum(b[off:off+52+n], castagnoli))
		return HeaderFixedSize + n
	}
	hl := header(0)
	footerOff, indexOff := le.Uint64(tr[0:]), le.Uint64(tr[8:])
	if footerOff <= indexOff && indexOff <= end {
		header(footerOff)
		entries := b[indexOff:end]
		for k := 0; k+EntrySize <= len(entries); k += EntrySize {
			off := le.Uint64(entries[k+8:])
			next := footerOff
			if k+2*EntrySize <= len(entries) {
				next = le.Uint64(entries[k+EntrySize+8:])
			}
			if off <= next && next <= footerOff {
				le.PutUint32(entries[k+16:], crc32.Checksum(b[off:next], castagnoli))
			}
		}
		le.PutUint32(tr[32:], crc32.Checksum(entries, castagnoli))
		if hl <= footerOff {
			le.PutUint32(tr[28:], crc32.Checksum(b[hl:footerOff], castagnoli))
		}
	}
	le.PutUint32(tr[36:], crc32.Checksum(tr[:36], castagnoli))
}

func fuzzSeeds(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, sizes := range [][]int{nil, {1}, {3, 1, 4, 1, 5}, repeat(40, 20), {100, 2, 300, 7}} {
		msgs := genMsgs(rng, int64(rng.IntN(100)), sizes)
		h := headerFor(1, 2, 0, msgs)
		if len(msgs) > 0 {
			h = headerFor(1, 2, msgs[0].Pos, msgs)
		}
		obj := encodeT(f, h, msgs, 64)
		f.Add(obj, int64(0), int64(math.MaxInt64), int32(1<<20))
		f.Add(obj, h.Start+3, h.End-2, int32(5))
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder, raw and with their
// checksums recomputed: none may panic, and whatever Verify accepts must
// read back consistently.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, from, limit int64, budget int32) {
		for _, obj := range [][]byte{data, func() []byte { c := bytes.Clone(data); reseal(c); return c }()} {
			size := int64(len(obj))
			ParseTrailer(obj, size)
			ParseHeader(obj)
			ix, err := ParseIndex(obj, size)
			if err == nil {
				off, end := ix.Locate(from, limit, int(budget))
				ix.DecodeRange(obj[off:end], off, from, limit, int(budget))
				ix.DecodeRange(obj[ix.BodyOff:ix.BodyEnd], ix.BodyOff, from, limit, int(budget))
				ix.DecodeRange(obj[off:], off, from, limit, int(budget)) // usually misaligned
			}
			vix, verr := Verify(bytes.NewReader(obj), size)
			r, rerr := NewReader(t.Context(), memFetch(obj, nil), size)
			if rerr == nil {
				r.Read(t.Context(), from, limit, int(budget))
			}
			if verr != nil {
				if !errors.Is(verr, ErrCorrupt) {
					t.Fatalf("Verify: %v, want ErrCorrupt", verr)
				}
				continue
			}
			// A verified object reads back in full, in both ways.
			if err != nil || rerr != nil {
				t.Fatalf("Verify accepts what ParseIndex (%v) or NewReader (%v) rejects", err, rerr)
			}
			if vix.ObjectCRC != crc32.Checksum(obj, castagnoli) {
				t.Fatal("ObjectCRC differs")
			}
			all, err := ix.DecodeRange(obj[ix.BodyOff:ix.BodyEnd], ix.BodyOff, 0, math.MaxInt64, math.MaxInt)
			if err != nil || int64(len(all)) != ix.Header.Count {
				t.Fatalf("verified object: %d of %d messages: %v", len(all), ix.Header.Count, err)
			}
			chunked, err := readAll(t.Context(), obj, int(max(budget, 0)))
			if err != nil {
				t.Fatal(err)
			}
			sameMsgs(t, "chunked", chunked, all)
			got, err := r.Read(t.Context(), from, limit, int(budget))
			if err != nil {
				t.Fatal(err)
			}
			sameMsgs(t, "read", got, naiveRead(all, max(from, ix.Header.Start), min(limit, ix.Header.End), int(budget)))
		}
	})
}

// FuzzRoundTrip encodes messages cut from arbitrary bytes with a small
// stride and checks reads against the reference.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{1, 2, 3}, uint16(16), int64(3), int64(100), int32(5))
	f.Add(bytes.Repeat([]byte("x"), 500), []byte{200, 1, 90, 7}, uint16(64), int64(0), int64(300), int32(100))
	f.Fuzz(func(t *testing.T, data, cuts []byte, stride uint16, from, limit int64, budget int32) {
		var sizes []int
		for i := 0; len(data) > 0; i++ {
			n := 1
			if len(cuts) > 0 {
				n = max(1, int(cuts[i%len(cuts)]))
			}
			n = min(n, len(data))
			sizes = append(sizes, n)
			data = data[n:]
		}
		msgs := genMsgs(rand.New(rand.NewPCG(uint64(len(sizes)), 1)), 10, sizes)
		h := headerFor(1, 1, 10, msgs)
		obj := encodeT(t, h, msgs, max(minStride, int(stride)))
		if _, err := Verify(bytes.NewReader(obj), int64(len(obj))); err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(t.Context(), memFetch(obj, nil), int64(len(obj)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Read(t.Context(), from, limit, int(budget))
		if err != nil {
			t.Fatal(err)
		}
		sameMsgs(t, "read", got, naiveRead(msgs, from, limit, int(budget)))
	})
}

func BenchmarkEncode(b *testing.B) {
	msgs := genMsgs(rand.New(rand.NewPCG(1, 1)), 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	b.SetBytes(h.End - h.Start)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Encode(discard{}, h, msgs); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkRead(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	msgs := genMsgs(rng, 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	obj := encodeT(b, h, msgs, Stride)
	fetch := func(ctx context.Context, off, n int64) ([]byte, error) { return obj[off : off+n], nil }
	r, err := NewReader(b.Context(), fetch, int64(len(obj)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		m := msgs[rng.IntN(len(msgs)*3/4)]
		got, err := r.Read(b.Context(), m.Pos, h.End, 1<<20)
		if err != nil || len(got) != (1<<20)/100 {
			b.Fatalf("%d messages, %v", len(got), err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	msgs := genMsgs(rand.New(rand.NewPCG(1, 1)), 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	obj := encodeT(b, h, msgs, Stride)
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(obj), int64(len(obj))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewReader(b *testing.B) {
	msgs := genMsgs(rand.New(rand.NewPCG(1, 1)), 0, repeat((4<<20)/100, 100))
	h := headerFor(1, 0, 0, msgs)
	obj := encodeT(b, h, msgs, Stride)
	fetch := func(ctx context.Context, off, n int64) ([]byte, error) { return obj[off : off+n], nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewReader(b.Context(), fetch, int64(len(obj))); err != nil {
			b.Fatal(err)
		}
	}
}
