package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// verifyBuffer is the largest block Verify reads into memory at once;
// larger blocks (single large records) are streamed.
const verifyBuffer = 1 << 20

// Verify reads a whole object of size bytes from r and checks every
// checksum (header, header copy, every block, body, index, trailer) and
// every structural invariant: the header and its copy are identical, the
// blocks tile the body, the records fill their blocks and cover the
// positions [Start, End) contiguously, the message count matches the
// header, and only single records exceed the stride. It returns the index
// with ObjectCRC set to the CRC32C of all size bytes, which must equal the
// checksum returned by [Encode].
//
// A malformed or truncated object yields an error wrapping ErrCorrupt;
// errors of r (other than io.EOF) are returned as they are.
func Verify(r io.ReaderAt, size int64) (*Index, error) {
	if size < MinObjectSize {
		return nil, corrupt("object of %d bytes, need at least %d", size, MinObjectSize)
	}
	tr, err := readAt(r, size-TrailerSize, TrailerSize, nil)
	if err != nil {
		return nil, err
	}
	t, err := ParseTrailer(tr, size)
	if err != nil {
		return nil, err
	}
	foot, err := readAt(r, t.FooterOff, t.TailLen(), nil)
	if err != nil {
		return nil, err
	}
	ix, err := parseFooter(t, foot)
	if err != nil {
		return nil, err
	}
	hdr, err := readAt(r, 0, ix.BodyOff, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr, foot[:ix.BodyOff]) {
		if _, _, err := ParseHeader(hdr); err != nil {
			return nil, err
		}
		return nil, corrupt("header differs from its copy in the footer")
	}

	objCRC := crc32.Checksum(hdr, castagnoli)
	var (
		bodyCRC uint32
		count   int64
		buf     []byte
	)
	for k, b := range ix.blocks {
		n := ix.blockEnd(k) - b.off
		if n <= max(int64(ix.Stride), verifyBuffer) {
			if buf, err = readAt(r, b.off, n, buf); err != nil {
				return nil, err
			}
			records, err := ix.walkBlock(k, buf, func(int64, bool, []byte) bool { return true })
			if err != nil {
				return nil, err
			}
			if records > 1 && n > int64(ix.Stride) {
				return nil, corrupt("block %d of %d records and %d bytes exceeds stride %d", k, records, n, ix.Stride)
			}
			count += int64(records)
			bodyCRC = crc32.Update(bodyCRC, castagnoli, buf)
			objCRC = crc32.Update(objCRC, castagnoli, buf)
			continue
		}
		// A block this large is one record (parseFooter checked its
		// length); check its record header and stream its checksum.
		buf = buf[:0]
		if buf, err = readAt(r, b.off, maxRecordHeader, buf); err != nil {
			return nil, err
		}
		if buf[0]&^flagsKnown != 0 {
			return nil, corrupt("block %d: record at offset %d: unknown flags %#x", k, b.off, buf[0])
		}
		l, m := binary.Uvarint(buf[1:])
		if m <= 0 || m != uvarintLen(l) || l != uint64(ix.blockEndPos(k)-b.pos) || int64(1+m)+int64(l) != n {
			return nil, corrupt("block %d: record at offset %d: bad length", k, b.off)
		}
		var blockCRC uint32
		for o := int64(0); o < n; {
			c := min(n-o, verifyBuffer)
			if buf, err = readAt(r, b.off+o, c, buf); err != nil {
				return nil, err
			}
			blockCRC = crc32.Update(blockCRC, castagnoli, buf)
			bodyCRC = crc32.Update(bodyCRC, castagnoli, buf)
			objCRC = crc32.Update(objCRC, castagnoli, buf)
			o += c
		}
		if blockCRC != b.crc {
			return nil, corrupt("block %d at offset %d: checksum %08x, stored %08x", k, b.off, blockCRC, b.crc)
		}
		count++
	}
	if bodyCRC != ix.BodyCRC {
		return nil, corrupt("body: checksum %08x, stored %08x", bodyCRC, ix.BodyCRC)
	}
	if count != ix.Header.Count {
		return nil, corrupt("body: %d messages, header says %d", count, ix.Header.Count)
	}
	ix.ObjectCRC = crc32.Update(objCRC, castagnoli, foot)
	return ix, nil
}

// readAt reads n bytes at off from r into buf's storage (grown if needed).
// An object shorter than expected is corrupt (truncated).
func readAt(r io.ReaderAt, off, n int64, buf []byte) ([]byte, error) {
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	got, err := r.ReadAt(buf, off)
	if int64(got) == n {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, corrupt("truncated: read %d of %d bytes at %d", got, n, off)
	}
	return nil, fmt.Errorf("segment: read %d bytes at %d: %w", n, off, err)
}
