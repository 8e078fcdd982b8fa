// Package segment defines the immutable object format of a sealed segment
// and its encoder, decoders and verifier.
//
// A sealed segment [Start, End) of a stream is written once, as one object,
// to the cold store and never rewritten. The object is laid out so that a
// reader that knows only the object's size can serve a read starting at any
// position with two ranged reads: one of the object's tail (trailer and
// index, see [NewReader]) and one of the body range that holds the
// requested messages ([Index.Locate]). The byte-level layout is documented
// in docs/segment-format.md; in short:
//
//	header | body (blocks of records) | header copy | index | trailer
//
// The body is cut into blocks of whole records of at most [Stride] bytes
// (a record larger than that is a block of its own). The index has one
// fixed-size entry per block with the block's first position, its offset
// and its CRC32C, so every block a ranged read decodes is verified. All
// integers are little-endian; all checksums are CRC32C (Castagnoli).
package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
)

// Message is one message of a segment. Positions are byte positions in the
// stream's logical byte space: the message covers [Pos, Pos+len(Data)).
type Message struct {
	Pos      int64
	Data     []byte // never empty
	BatchEnd bool   // last message of the append request that wrote it
}

// End returns the position just past the message's data.
func (m Message) End() int64 { return m.Pos + int64(len(m.Data)) }

// Header describes a segment object. It is stored at the start of the
// object and, byte for byte, again in front of the index.
type Header struct {
	StreamID    int64
	Segment     int64  // segment number, >= 0
	Start       int64  // position of the first message, >= 0
	End         int64  // position just past the last message
	Count       int64  // number of messages; 0 only if Start == End
	ContentType string // the stream's content type, at most MaxContentType bytes
}

// Format constants. See docs/segment-format.md.
const (
	// Magic starts the header and ends the trailer.
	Magic = "DSSEG"
	// Version is the format version this package writes and reads.
	Version = 1

	// HeaderFixedSize is the size of the header without the content type.
	// The header is HeaderFixedSize + len(ContentType) bytes.
	HeaderFixedSize = 56
	// EntrySize is the size of one index entry.
	EntrySize = 20
	// TrailerSize is how many bytes at the end of an object hold the
	// trailer.
	TrailerSize = 48

	// Stride is the block size the encoder aims for: a block holds whole
	// records of at most Stride bytes in total, except that a record
	// larger than Stride is a block of its own.
	Stride = 4096

	// MaxContentType bounds the content type stored in the header. It
	// equals net/http's default limit on the size of request headers, so
	// any content type the server accepted fits.
	MaxContentType = 1 << 20

	// MinObjectSize is the size of the smallest valid object: an empty
	// segment with an empty content type.
	MinObjectSize = 2*HeaderFixedSize + TrailerSize

	// maxRecordHeader is the largest record header: a flags byte and a
	// 64-bit uvarint.
	maxRecordHeader = 1 + binary.MaxVarintLen64
	// minRecord is the smallest record: flags, a one-byte length, one
	// byte of data.
	minRecord = 3

	// Stride bounds accepted when decoding.
	minStride = minRecord
	maxStride = 16 << 20

	flagBatchEnd = 0x01
	flagsKnown   = flagBatchEnd
)

// ErrCorrupt reports an object (or part of one) that is not a valid segment
// object: a checksum mismatch, a truncated object or a violated structural
// invariant. Errors are returned wrapped with detail; test with errors.Is.
var ErrCorrupt = errors.New("segment: corrupt object")

// ErrRange reports a body range passed to [Index.DecodeRange] that does not
// start and end on block boundaries or does not contain the requested
// position. It is a caller error, not a property of the object.
var ErrRange = errors.New("segment: range not aligned to the index")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// block is one index entry: a run of whole records starting at object
// offset off with the message at position pos, checksummed by crc.
type block struct {
	pos int64
	off int64
	crc uint32
}

// Encode writes the complete object for msgs to w and returns its size and
// the CRC32C of all bytes written (what the segment table stores as the
// object's checksum).
//
// msgs must be the segment's messages in order with contiguous positions
// from h.Start to h.End (each starting where the previous one ends), and
// h.Count must equal len(msgs). Data is written as is and not retained.
func Encode(w io.Writer, h Header, msgs []Message) (size int64, crc uint32, err error) {
	return encode(w, h, msgs, Stride)
}

// EncodedSize returns the size of the object Encode writes for h and msgs,
// valid input assumed, so that a caller can size its buffer once instead
// of growing it through a dozen copies of a multi-megabyte object.
func EncodedSize(h Header, msgs []Message) int64 { return encodedSize(h, msgs, Stride) }

// encodedSize mirrors encode's cutting of the body into blocks.
func encodedSize(h Header, msgs []Message, stride int) int64 {
	var body, blocks int64
	cur := 0 // length of the open block
	for _, m := range msgs {
		rec := 1 + (bits.Len64(uint64(len(m.Data))|1)+6)/7 + len(m.Data)
		body += int64(rec)
		if cur > 0 && cur+rec > stride {
			blocks, cur = blocks+1, 0
		}
		if rec > stride {
			blocks++
			continue
		}
		cur += rec
	}
	if cur > 0 {
		blocks++
	}
	hdr := int64(HeaderFixedSize + len(h.ContentType))
	return 2*hdr + body + blocks*EntrySize + TrailerSize
}

func encode(w io.Writer, h Header, msgs []Message, stride int) (int64, uint32, error) {
	if err := checkEncode(h, msgs, stride); err != nil {
		return 0, 0, err
	}
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)

	hdr := appendHeader(make([]byte, 0, HeaderFixedSize+len(h.ContentType)), h)
	bw.Write(hdr)
	off := int64(len(hdr))

	bodyLen := h.End - h.Start + 2*h.Count // a good guess for 1..127-byte messages
	blocks := make([]block, 0, min(bodyLen/int64(stride)+1, h.Count))
	var (
		bodyCRC uint32
		cur     = make([]byte, 0, stride)
		curPos  int64
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		bodyCRC = crc32.Update(bodyCRC, castagnoli, cur)
		blocks = append(blocks, block{pos: curPos, off: off, crc: crc32.Checksum(cur, castagnoli)})
		bw.Write(cur)
		off += int64(len(cur))
		cur = cur[:0]
	}
	var rh [maxRecordHeader]byte
	for _, m := range msgs {
		n := putRecordHeader(rh[:], m)
		rec := n + len(m.Data)
		if len(cur) > 0 && len(cur)+rec > stride {
			flush()
		}
		if rec > stride {
			// A large record is a block of its own, written without
			// copying its data.
			c := crc32.Update(crc32.Checksum(rh[:n], castagnoli), castagnoli, m.Data)
			bodyCRC = crc32.Update(crc32.Update(bodyCRC, castagnoli, rh[:n]), castagnoli, m.Data)
			blocks = append(blocks, block{pos: m.Pos, off: off, crc: c})
			bw.Write(rh[:n])
			bw.Write(m.Data)
			off += int64(rec)
			continue
		}
		if len(cur) == 0 {
			curPos = m.Pos
		}
		cur = append(cur, rh[:n]...)
		cur = append(cur, m.Data...)
	}
	flush()

	// Footer: header copy, index, trailer.
	footerOff := off
	indexOff := footerOff + int64(len(hdr))
	foot := make([]byte, 0, len(hdr)+len(blocks)*EntrySize+TrailerSize)
	foot = append(foot, hdr...)
	for _, b := range blocks {
		foot = binary.LittleEndian.AppendUint64(foot, uint64(b.pos))
		foot = binary.LittleEndian.AppendUint64(foot, uint64(b.off))
		foot = binary.LittleEndian.AppendUint32(foot, b.crc)
	}
	indexCRC := crc32.Checksum(foot[len(hdr):], castagnoli)
	foot = appendTrailer(foot, Trailer{
		FooterOff: footerOff,
		IndexOff:  indexOff,
		Blocks:    int64(len(blocks)),
		Stride:    stride,
		BodyCRC:   bodyCRC,
		IndexCRC:  indexCRC,
	})
	bw.Write(foot)
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("segment: encode: %w", err)
	}
	return cw.n, cw.crc, nil
}

func checkEncode(h Header, msgs []Message, stride int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("segment: encode stream %d segment %d: %s", h.StreamID, h.Segment, fmt.Sprintf(format, args...))
	}
	switch {
	case stride < minStride || stride > maxStride:
		return bad("stride %d out of range", stride)
	case h.Segment < 0:
		return bad("negative segment number")
	case h.Start < 0 || h.End < h.Start:
		return bad("bad range [%d, %d)", h.Start, h.End)
	case h.Count != int64(len(msgs)):
		return bad("header count %d, got %d messages", h.Count, len(msgs))
	case len(h.ContentType) > MaxContentType:
		return bad("content type of %d bytes exceeds %d", len(h.ContentType), MaxContentType)
	}
	pos := h.Start
	for i, m := range msgs {
		if m.Pos != pos {
			return bad("message %d at position %d, want %d", i, m.Pos, pos)
		}
		if len(m.Data) == 0 {
			return bad("message %d at position %d is empty", i, m.Pos)
		}
		if int64(len(m.Data)) > h.End-pos {
			return bad("message %d at position %d ends past %d", i, m.Pos, h.End)
		}
		pos += int64(len(m.Data))
	}
	if pos != h.End {
		return bad("messages end at %d, want %d", pos, h.End)
	}
	return nil
}

// putRecordHeader writes m's record header (flags byte, uvarint data
// length) into b and returns its length.
func putRecordHeader(b []byte, m Message) int {
	var flags byte
	if m.BatchEnd {
		flags |= flagBatchEnd
	}
	b[0] = flags
	return 1 + binary.PutUvarint(b[1:], uint64(len(m.Data)))
}

func appendHeader(b []byte, h Header) []byte {
	start := len(b)
	b = append(b, Magic...)
	b = append(b, Version, 0, 0) // version, reserved
	b = binary.LittleEndian.AppendUint64(b, uint64(h.StreamID))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Segment))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Start))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.End))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Count))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.ContentType)))
	b = append(b, h.ContentType...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// ParseHeader decodes the header at the start of b (which may hold more
// bytes after it) and returns it with its encoded length, which is also
// the offset of the body.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < HeaderFixedSize {
		return Header{}, 0, corrupt("header: %d bytes, need at least %d", len(b), HeaderFixedSize)
	}
	if string(b[:5]) != Magic {
		return Header{}, 0, corrupt("header: bad magic %q", b[:5])
	}
	if b[5] != Version {
		return Header{}, 0, corrupt("header: unknown version %d", b[5])
	}
	if b[6] != 0 || b[7] != 0 {
		return Header{}, 0, corrupt("header: reserved bytes %#x %#x", b[6], b[7])
	}
	ctLen := binary.LittleEndian.Uint32(b[48:])
	if ctLen > MaxContentType {
		return Header{}, 0, corrupt("header: content type length %d", ctLen)
	}
	n := HeaderFixedSize + int(ctLen)
	if len(b) < n {
		return Header{}, 0, corrupt("header: %d bytes, need %d", len(b), n)
	}
	if got, want := crc32.Checksum(b[:n-4], castagnoli), binary.LittleEndian.Uint32(b[n-4:]); got != want {
		return Header{}, 0, corrupt("header: checksum %08x, stored %08x", got, want)
	}
	h := Header{
		StreamID:    int64(binary.LittleEndian.Uint64(b[8:])),
		Segment:     int64(binary.LittleEndian.Uint64(b[16:])),
		Start:       int64(binary.LittleEndian.Uint64(b[24:])),
		End:         int64(binary.LittleEndian.Uint64(b[32:])),
		Count:       int64(binary.LittleEndian.Uint64(b[40:])),
		ContentType: string(b[52 : n-4]),
	}
	switch {
	case h.Segment < 0:
		return Header{}, 0, corrupt("header: segment %d", h.Segment)
	case h.Start < 0 || h.End < h.Start:
		return Header{}, 0, corrupt("header: range [%d, %d)", h.Start, h.End)
	case h.Count < 0 || h.Count > h.End-h.Start || (h.Count == 0) != (h.Start == h.End):
		return Header{}, 0, corrupt("header: %d messages in [%d, %d)", h.Count, h.Start, h.End)
	}
	return h, n, nil
}

// Trailer is the decoded fixed-size trailer at the end of an object.
type Trailer struct {
	Size      int64 // object size
	FooterOff int64 // offset of the header copy, which is the end of the body
	IndexOff  int64 // offset of the first index entry
	Blocks    int64 // number of index entries
	Stride    int   // block size the object was written with
	BodyCRC   uint32
	IndexCRC  uint32
}

// TailLen returns how many bytes at the end of the object hold the footer
// (header copy, index and trailer): what [ParseIndex] needs.
func (t Trailer) TailLen() int64 { return t.Size - t.FooterOff }

func appendTrailer(b []byte, t Trailer) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.FooterOff))
	b = binary.LittleEndian.AppendUint64(b, uint64(t.IndexOff))
	b = binary.LittleEndian.AppendUint64(b, uint64(t.Blocks))
	b = binary.LittleEndian.AppendUint32(b, uint32(t.Stride))
	b = binary.LittleEndian.AppendUint32(b, t.BodyCRC)
	b = binary.LittleEndian.AppendUint32(b, t.IndexCRC)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	b = append(b, Version, 0, 0) // version, reserved
	return append(b, Magic...)
}

// ParseTrailer decodes the trailer of an object of size bytes from b, the
// object's last TrailerSize bytes (b may be longer; its last TrailerSize
// bytes are used). It checks the trailer's checksum and that the offsets it
// holds are consistent with size.
func ParseTrailer(b []byte, size int64) (Trailer, error) {
	if size < MinObjectSize {
		return Trailer{}, corrupt("object of %d bytes, need at least %d", size, MinObjectSize)
	}
	if len(b) < TrailerSize {
		return Trailer{}, corrupt("trailer: %d bytes, need %d", len(b), TrailerSize)
	}
	b = b[len(b)-TrailerSize:]
	if string(b[43:]) != Magic {
		return Trailer{}, corrupt("trailer: bad magic %q", b[43:])
	}
	if b[40] != Version {
		return Trailer{}, corrupt("trailer: unknown version %d", b[40])
	}
	if b[41] != 0 || b[42] != 0 {
		return Trailer{}, corrupt("trailer: reserved bytes %#x %#x", b[41], b[42])
	}
	if got, want := crc32.Checksum(b[:36], castagnoli), binary.LittleEndian.Uint32(b[36:]); got != want {
		return Trailer{}, corrupt("trailer: checksum %08x, stored %08x", got, want)
	}
	footerOff := binary.LittleEndian.Uint64(b[0:])
	indexOff := binary.LittleEndian.Uint64(b[8:])
	blocks := binary.LittleEndian.Uint64(b[16:])
	stride := binary.LittleEndian.Uint32(b[24:])
	end := uint64(size - TrailerSize) // end of the index
	switch {
	case stride < minStride || stride > maxStride:
		return Trailer{}, corrupt("trailer: stride %d", stride)
	case indexOff > end || footerOff > indexOff:
		return Trailer{}, corrupt("trailer: footer at %d, index at %d in %d bytes", footerOff, indexOff, size)
	case indexOff-footerOff < HeaderFixedSize || footerOff < indexOff-footerOff:
		// The header copy is as long as the header, which precedes the body.
		return Trailer{}, corrupt("trailer: header copy [%d, %d)", footerOff, indexOff)
	case (end-indexOff)%EntrySize != 0 || (end-indexOff)/EntrySize != blocks:
		return Trailer{}, corrupt("trailer: %d index entries in %d bytes", blocks, end-indexOff)
	}
	return Trailer{
		Size:      size,
		FooterOff: int64(footerOff),
		IndexOff:  int64(indexOff),
		Blocks:    int64(blocks),
		Stride:    int(stride),
		BodyCRC:   binary.LittleEndian.Uint32(b[28:]),
		IndexCRC:  binary.LittleEndian.Uint32(b[32:]),
	}, nil
}

// crcWriter counts and checksums what it passes on to w.
type crcWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// addInt64 returns a+b, saturating at math.MaxInt64 (b >= 0).
func addInt64(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
