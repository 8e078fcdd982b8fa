package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
)

// Index is the decoded footer (header copy, index and trailer) of an
// object: everything needed to locate and decode any read.
type Index struct {
	Header  Header
	Size    int64  // object size
	BodyOff int64  // offset of the first record (the header's length)
	BodyEnd int64  // offset just past the last record
	Stride  int    // block size the object was written with
	BodyCRC uint32 // CRC32C of the body as stored in the trailer
	// ObjectCRC is the CRC32C of the whole object. Only Verify, which
	// reads every byte, sets it; it is zero in an Index from ParseIndex.
	ObjectCRC uint32

	blocks []block
}

// Blocks returns the number of index entries (body blocks).
func (ix *Index) Blocks() int { return len(ix.blocks) }

// blockEnd returns the object offset just past block k.
func (ix *Index) blockEnd(k int) int64 {
	if k+1 < len(ix.blocks) {
		return ix.blocks[k+1].off
	}
	return ix.BodyEnd
}

// blockEndPos returns the position just past the last message of block k.
func (ix *Index) blockEndPos(k int) int64 {
	if k+1 < len(ix.blocks) {
		return ix.blocks[k+1].pos
	}
	return ix.Header.End
}

// single reports whether block k is known to hold exactly one record: it
// is longer than the stride (parseFooter checks that such a block has
// exactly the length of one record).
func (ix *Index) single(k int) bool { return ix.blockEnd(k)-ix.blocks[k].off > int64(ix.Stride) }

// blockAt returns the block holding position pos, which must be in
// [Header.Start, Header.End).
func (ix *Index) blockAt(pos int64) int {
	return sort.Search(len(ix.blocks), func(k int) bool { return ix.blocks[k].pos > pos }) - 1
}

// ParseIndex decodes the index of an object of size bytes from tail, the
// last len(tail) bytes of the object, which must include the whole footer
// (the last Trailer.TailLen() bytes). It verifies the checksums of the
// header copy, the index and the trailer and the structure of the index;
// body blocks are verified when they are decoded.
func ParseIndex(tail []byte, size int64) (*Index, error) {
	if int64(len(tail)) > size {
		return nil, fmt.Errorf("segment: index: %d bytes of tail for an object of %d bytes", len(tail), size)
	}
	t, err := ParseTrailer(tail, size)
	if err != nil {
		return nil, err
	}
	need := t.TailLen()
	if int64(len(tail)) < need {
		return nil, fmt.Errorf("segment: index: footer needs the last %d bytes, got %d", need, len(tail))
	}
	return parseFooter(t, tail[int64(len(tail))-need:])
}

// parseFooter decodes foot, the bytes [t.FooterOff, t.Size) of the object.
func parseFooter(t Trailer, foot []byte) (*Index, error) {
	hlen := t.IndexOff - t.FooterOff
	h, n, err := ParseHeader(foot[:hlen])
	if err != nil {
		return nil, fmt.Errorf("header copy: %w", err)
	}
	if int64(n) != hlen {
		return nil, corrupt("header copy of %d bytes in a slot of %d", n, hlen)
	}
	entries := foot[hlen : int64(len(foot))-TrailerSize]
	if got := crc32.Checksum(entries, castagnoli); got != t.IndexCRC {
		return nil, corrupt("index: checksum %08x, stored %08x", got, t.IndexCRC)
	}
	ix := &Index{
		Header:  h,
		Size:    t.Size,
		BodyOff: hlen,
		BodyEnd: t.FooterOff,
		Stride:  t.Stride,
		BodyCRC: t.BodyCRC,
		blocks:  make([]block, t.Blocks),
	}
	for k := range ix.blocks {
		e := entries[k*EntrySize:]
		ix.blocks[k] = block{
			pos: int64(binary.LittleEndian.Uint64(e)),
			off: int64(binary.LittleEndian.Uint64(e[8:])),
			crc: binary.LittleEndian.Uint32(e[16:]),
		}
	}
	if err := ix.check(); err != nil {
		return nil, err
	}
	return ix, nil
}

// check verifies the structure of the index against the header and the
// body range: blocks tile the body and the positions [Start, End), every
// block is long enough for the positions it covers, and a block longer
// than the stride is exactly one record.
func (ix *Index) check() error {
	h := ix.Header
	if len(ix.blocks) == 0 {
		if h.Count != 0 || ix.BodyOff != ix.BodyEnd {
			return corrupt("index: no blocks for %d messages in body [%d, %d)", h.Count, ix.BodyOff, ix.BodyEnd)
		}
		return nil
	}
	if int64(len(ix.blocks)) > h.Count {
		return corrupt("index: %d blocks for %d messages", len(ix.blocks), h.Count)
	}
	if b := ix.blocks[0]; b.off != ix.BodyOff || b.pos != h.Start {
		return corrupt("index: first block at offset %d position %d, want %d and %d", b.off, b.pos, ix.BodyOff, h.Start)
	}
	for k, b := range ix.blocks {
		end, endPos := ix.blockEnd(k), ix.blockEndPos(k)
		// Compare without subtracting: a corrupt next entry may hold any
		// value, and both ends are at most the checked body and position
		// ends once this holds for every block.
		if end <= b.off || end > ix.BodyEnd || endPos <= b.pos || endPos > h.End {
			return corrupt("index: block %d [%d, %d) positions [%d, %d)", k, b.off, end, b.pos, endPos)
		}
		n, d := end-b.off, endPos-b.pos
		if d > n-2 { // every record has at least a flags byte and a length byte
			return corrupt("index: block %d of %d bytes covers %d positions", k, n, d)
		}
		if n > int64(ix.Stride) && n != 1+int64(uvarintLen(uint64(d)))+d {
			return corrupt("index: block %d of %d bytes exceeds stride %d and is not one record of %d bytes", k, n, ix.Stride, d)
		}
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// walkBlock verifies the checksum of b, the bytes of block k, and calls fn
// for each of its records in order until fn returns false. Unless fn
// stops the walk, it also checks that the records fill b exactly and cover
// the block's positions. It returns the number of records walked.
func (ix *Index) walkBlock(k int, b []byte, fn func(pos int64, batchEnd bool, data []byte) bool) (int, error) {
	blk := ix.blocks[k]
	if got := crc32.Checksum(b, castagnoli); got != blk.crc {
		return 0, corrupt("block %d at offset %d: checksum %08x, stored %08x", k, blk.off, got, blk.crc)
	}
	pos, endPos := blk.pos, ix.blockEndPos(k)
	records := 0
	for p := 0; p < len(b); {
		flags := b[p]
		if flags&^flagsKnown != 0 {
			return records, corrupt("block %d: record at offset %d: unknown flags %#x", k, blk.off+int64(p), flags)
		}
		l, n := binary.Uvarint(b[p+1:])
		if n <= 0 || n != uvarintLen(l) {
			return records, corrupt("block %d: record at offset %d: bad length", k, blk.off+int64(p))
		}
		p += 1 + n
		if l == 0 || l > uint64(len(b)-p) || int64(l) > endPos-pos {
			return records, corrupt("block %d: record at offset %d: length %d", k, blk.off+int64(p), l)
		}
		data := b[p : p+int(l) : p+int(l)]
		records++
		if !fn(pos, flags&flagBatchEnd != 0, data) {
			return records, nil
		}
		pos += int64(l)
		p += int(l)
	}
	if pos != endPos {
		return records, corrupt("block %d: records end at position %d, want %d", k, pos, endPos)
	}
	return records, nil
}

// Locate returns the object byte range [off, end) to fetch, as one ranged
// read, for a read of the messages overlapping [from, limit) within budget
// bytes, with the semantics of [Index.DecodeRange]. The range starts and
// ends on block boundaries, so that every block in it can be verified.
// Besides the records the read returns, it holds less than one stride of
// records before the first one (none if that is a large message) and, when
// from is a message boundary (every offset the server hands out is), less
// than one stride of records after the last one. When from is inside a
// message it may also hold up to about budget bytes of messages that the
// budget then excludes. It never holds a large (single-block) message that
// ends past from+budget.
//
// If the read is empty (from >= limit after clipping both to the segment),
// Locate returns an empty range.
func (ix *Index) Locate(from, limit int64, budget int) (off, end int64) {
	budget = max(budget, 0)
	from, limit = max(from, ix.Header.Start), min(limit, ix.Header.End)
	if from >= limit {
		return ix.BodyEnd, ix.BodyEnd
	}
	i := ix.blockAt(from)
	// m bounds the start of the first message, the one containing from,
	// from above. Every further message returned ends at or before its
	// start plus budget, so it ends at or before m+budget and starts
	// before stop.
	m := from
	if ix.single(i) {
		m = ix.blocks[i].pos
	}
	lim := addInt64(m, int64(budget))
	stop := min(limit, lim)
	j := i
	for k := i + 1; k < len(ix.blocks) && ix.blocks[k].pos < stop; k++ {
		if ix.single(k) && ix.blockEndPos(k) > lim {
			break // a large message past the budget ends the read
		}
		j = k
	}
	return ix.blocks[i].off, ix.blockEnd(j)
}

// DecodeRange decodes a read from buf, the object bytes [off,
// off+len(buf)), typically the range Locate returned. It returns the
// messages overlapping [from, limit), in position order, starting with the
// message containing from (which starts before from when from is inside a
// message; from before the segment's start reads from its start). It
// includes whole messages only and stops before the first message that
// would push the total Data size above budget, except that the first
// message is always included; messages at or past limit are never
// returned. These are the semantics of the hot log's Read.
//
// buf must start and end on block boundaries and its blocks must cover
// from, otherwise the error wraps ErrRange. If buf ends before the read
// is complete, the messages up to its end are returned. Every block that
// is decoded is verified against its checksum. The returned Data slices
// point into buf.
func (ix *Index) DecodeRange(buf []byte, off int64, from, limit int64, budget int) ([]Message, error) {
	out := []Message{}
	budget = max(budget, 0)
	from, limit = max(from, ix.Header.Start), min(limit, ix.Header.End)
	if from >= limit {
		return out, nil
	}
	end := off + int64(len(buf))
	i := sort.Search(len(ix.blocks), func(k int) bool { return ix.blocks[k].off >= off })
	j := sort.Search(len(ix.blocks), func(k int) bool { return ix.blockEnd(k) >= end })
	if i == len(ix.blocks) || ix.blocks[i].off != off || j == len(ix.blocks) || ix.blockEnd(j) != end || j < i {
		return nil, fmt.Errorf("%w: [%d, %d) in a body of %d blocks", ErrRange, off, end, len(ix.blocks))
	}
	if ix.blocks[i].pos > from || ix.blockEndPos(j) <= from {
		return nil, fmt.Errorf("%w: [%d, %d) holds positions [%d, %d), not %d", ErrRange, off, end, ix.blocks[i].pos, ix.blockEndPos(j), from)
	}
	// Size the result for the segment's average record size, which is
	// exact for segments of equal-sized messages.
	if avg := (ix.BodyEnd - ix.BodyOff) / max(ix.Header.Count, 1); avg > 0 {
		out = make([]Message, 0, int64(len(buf))/avg+1)
	}
	used, done := 0, false
	visit := func(pos int64, batchEnd bool, data []byte) bool {
		if pos+int64(len(data)) <= from {
			return true
		}
		if pos >= limit || (len(out) > 0 && used+len(data) > budget) {
			done = true
			return false
		}
		out = append(out, Message{Pos: pos, Data: data, BatchEnd: batchEnd})
		used += len(data)
		// Data is never empty, so no further message can fit.
		done = used >= budget
		return !done
	}
	for k := i; k <= j && !done; k++ {
		if _, err := ix.walkBlock(k, buf[ix.blocks[k].off-off:ix.blockEnd(k)-off], visit); err != nil {
			return nil, err
		}
	}
	return out, nil
}
