package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Kind says what change a record describes. The journal itself only
// frames records; what a kind's payload means belongs to the package
// that writes it, and is documented in docs/journal.md so that a replica
// can apply the records too.
type Kind uint8

// Record kinds. Zero is never written: a zeroed header (a file extended
// but never written) reads as the end of the log.
const (
	// KindStreamBatch is one group commit of a stream's actor: its new
	// messages, producer states, sealed segment and complete metadata
	// row, everything needed to redo the commit on the stream's hot log.
	KindStreamBatch Kind = 1
	// KindStreamCreate is a new stream: its catalog row and the first
	// contents of its hot log (metadata and initial messages, for a fork
	// the materialized prefix).
	KindStreamCreate Kind = 2
	// KindStreamAbort voids an earlier record of the same stream whose
	// change the stream's hot log could not take: the writer answered
	// the request with an error, so replaying the change would apply
	// what was refused.
	KindStreamAbort Kind = 3
	// KindStreamDelete is the deletion of a stream (by a request or by
	// expiry), soft while forks of it exist: the catalog change, redone
	// on the catalog's state at that point of the log.
	KindStreamDelete Kind = 4
	// KindStreamTouch is a batch of streams' last access times, which
	// move the deadlines of streams with a sliding time to live.
	KindStreamTouch Kind = 5

	maxKind = KindStreamTouch
)

func (k Kind) String() string {
	switch k {
	case KindStreamBatch:
		return "stream-batch"
	case KindStreamCreate:
		return "stream-create"
	case KindStreamAbort:
		return "stream-abort"
	case KindStreamDelete:
		return "stream-delete"
	case KindStreamTouch:
		return "stream-touch"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one journal record as read back.
type Record struct {
	LSN     uint64 // log sequence number: 1 for the first record ever, then +1 per record
	Kind    Kind
	Payload []byte
}

// Framing: every record is a header followed by its payload.
//
//	offset size field
//	0      4    CRC32C (Castagnoli) of bytes 4 .. end of payload
//	4      4    payload length, little endian
//	8      8    LSN, little endian
//	16     1    kind
//	17     n    payload
//
// The checksum covers the length, LSN and kind as well as the payload, so
// a torn or stale header cannot pass for a record.
const headerSize = 17

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the framed record to b.
func appendRecord(b []byte, lsn uint64, kind Kind, payload []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, headerSize)...)
	h := b[start:]
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], lsn)
	h[16] = byte(kind)
	b = append(b, payload...)
	crc := crc32.Update(0, castagnoli, b[start+4:])
	binary.LittleEndian.PutUint32(b[start:start+4], crc)
	return b
}

// header is a decoded record header.
type header struct {
	crc  uint32
	n    uint32
	lsn  uint64
	kind Kind
}

func decodeHeader(h []byte) header {
	return header{
		crc:  binary.LittleEndian.Uint32(h[0:4]),
		n:    binary.LittleEndian.Uint32(h[4:8]),
		lsn:  binary.LittleEndian.Uint64(h[8:16]),
		kind: Kind(h[16]),
	}
}

// valid reports whether the header and payload form an intact record.
func (h header) valid(hdr, payload []byte) bool {
	crc := crc32.Update(0, castagnoli, hdr[4:])
	return crc32.Update(crc, castagnoli, payload) == h.crc
}
