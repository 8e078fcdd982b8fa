package sequencer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/hotlog"
)

// The payloads of the journal records the sequencer writes. Each is
// self-contained: applying it needs nothing but the state the records
// before it built, which is what lets a replica apply the same feed.
// docs/journal.md gives the layouts; all integers are varints
// (encoding/binary), strings and byte strings are length-prefixed, times
// are a presence byte and unix milliseconds.
//
//	stream-batch:  version, stream id, meta, producers, seal, messages
//	stream-create: version, catalog row, meta, messages

// recordVersion is the first byte of every payload, so the layouts can
// change without a new record kind.
const recordVersion = 1

// streamBatch is a journal record of kind KindStreamBatch: one group
// commit of a stream's actor.
type streamBatch struct {
	id    int64
	batch hotlog.Batch
}

// streamCreate is a journal record of kind KindStreamCreate: a new
// stream's catalog row and the first contents of its hot log.
type streamCreate struct {
	row  catalog.Stream
	meta hotlog.Meta
	msgs []hotlog.Message
}

type encoder struct{ b []byte }

func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) bytes(p []byte)  { e.uint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) string(s string) { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) time(t time.Time) {
	e.bool(!t.IsZero())
	if !t.IsZero() {
		e.int(t.UnixMilli())
	}
}

func (e *encoder) meta(m *hotlog.Meta) {
	e.int(m.StreamID)
	e.string(m.ContentType)
	e.time(m.CreatedAt)
	e.int(m.Tail)
	e.int(m.OpenSeg)
	e.int(m.OpenSegStart)
	e.int(m.OpenSegMsgs)
	e.int(m.OpenSegBytes)
	e.time(m.OpenSegSince)
	e.bool(m.Closed)
	e.bool(m.ClosedBy != nil)
	if c := m.ClosedBy; c != nil {
		e.string(c.ID)
		e.int(c.Epoch)
		e.int(c.Seq)
	}
	e.string(m.StreamSeq)
	e.bool(m.Fork != nil)
	if f := m.Fork; f != nil {
		e.int(f.ParentID)
		e.int(f.Pos)
		e.int(f.Seg)
		e.int(f.SegStart)
		e.bool(f.Shared)
	}
}

func (e *encoder) messages(ms []hotlog.Message) {
	e.uint(uint64(len(ms)))
	for i := range ms {
		e.int(ms[i].Pos)
		e.int(ms[i].Seg)
		e.bool(ms[i].BatchEnd)
		e.bytes(ms[i].Data)
	}
}

func (r *streamBatch) encode() []byte {
	b := &r.batch
	n := 64
	for i := range b.Messages {
		n += len(b.Messages[i].Data) + 24
	}
	e := &encoder{b: make([]byte, 0, n)}
	e.uint(recordVersion)
	e.int(r.id)
	e.meta(&b.Meta)
	e.uint(uint64(len(b.Producers)))
	for _, p := range b.Producers {
		e.string(p.ID)
		e.int(p.Epoch)
		e.int(p.LastSeq)
		e.time(p.Updated)
	}
	e.bool(b.Seal != nil)
	if s := b.Seal; s != nil {
		e.int(s.Seg)
		e.int(s.Start)
		e.int(s.End)
		e.int(s.Messages)
		e.int(s.Bytes)
		e.time(s.SealedAt)
	}
	e.messages(b.Messages)
	return e.b
}

func (r *streamCreate) encode() []byte {
	n := 128
	for i := range r.msgs {
		n += len(r.msgs[i].Data) + 24
	}
	e := &encoder{b: make([]byte, 0, n)}
	e.uint(recordVersion)
	row := &r.row
	e.int(row.ID)
	e.string(row.Path)
	e.string(row.ContentType)
	e.int(row.TTL.Milliseconds())
	e.time(row.ExpiresAt)
	e.bool(row.Closed)
	e.int(row.ParentID)
	e.string(row.ForkOffset)
	e.int(row.ForkSubOffset)
	e.time(row.CreatedAt)
	e.meta(&r.meta)
	e.messages(r.msgs)
	return e.b
}

// decoder reads a payload; the first error sticks and ends the reading.
type decoder struct {
	b   []byte
	err error
}

var errShortRecord = errors.New("record payload ends early")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShortRecord)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShortRecord)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bool() bool {
	if len(d.b) == 0 {
		d.fail(errShortRecord)
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v != 0
}

// bytes returns a copy: payloads are only valid during a replay callback.
func (d *decoder) bytes() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errShortRecord)
		return nil
	}
	p := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errShortRecord)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if !d.bool() {
		return time.Time{}
	}
	return time.UnixMilli(d.int())
}

// count reads a length of items of at least min bytes each, refusing one
// the rest of the payload cannot hold.
func (d *decoder) count(min int) int {
	n := d.uint()
	if n > uint64(len(d.b)/min) {
		d.fail(errShortRecord)
		return 0
	}
	return int(n)
}

func (d *decoder) version() {
	if v := d.uint(); d.err == nil && v != recordVersion {
		d.fail(fmt.Errorf("record layout version %d is not %d", v, recordVersion))
	}
}

func (d *decoder) meta() hotlog.Meta {
	var m hotlog.Meta
	m.StreamID = d.int()
	m.ContentType = d.string()
	m.CreatedAt = d.time()
	m.Tail = d.int()
	m.OpenSeg = d.int()
	m.OpenSegStart = d.int()
	m.OpenSegMsgs = d.int()
	m.OpenSegBytes = d.int()
	m.OpenSegSince = d.time()
	m.Closed = d.bool()
	if d.bool() {
		m.ClosedBy = &hotlog.ProducerKey{ID: d.string(), Epoch: d.int(), Seq: d.int()}
	}
	m.StreamSeq = d.string()
	if d.bool() {
		m.Fork = &hotlog.ForkBase{ParentID: d.int(), Pos: d.int(), Seg: d.int(), SegStart: d.int(), Shared: d.bool()}
	}
	return m
}

func (d *decoder) messages() []hotlog.Message {
	ms := make([]hotlog.Message, d.count(4))
	for i := range ms {
		ms[i] = hotlog.Message{Pos: d.int(), Seg: d.int(), BatchEnd: d.bool(), Data: d.bytes()}
	}
	return ms
}

func (d *decoder) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the record", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decode %s record: %w", what, d.err)
	}
	return nil
}

func decodeStreamBatch(p []byte) (streamBatch, error) {
	d := &decoder{b: p}
	d.version()
	var r streamBatch
	r.id = d.int()
	b := &r.batch
	b.Meta = d.meta()
	b.Producers = make([]hotlog.Producer, d.count(4))
	for i := range b.Producers {
		b.Producers[i] = hotlog.Producer{ID: d.string(), Epoch: d.int(), LastSeq: d.int(), Updated: d.time()}
	}
	if d.bool() {
		b.Seal = &hotlog.Segment{Seg: d.int(), Start: d.int(), End: d.int(), Messages: d.int(), Bytes: d.int(),
			SealedAt: d.time(), State: segment.Sealed}
	}
	b.Messages = d.messages()
	return r, d.done("stream batch")
}

func decodeStreamCreate(p []byte) (streamCreate, error) {
	d := &decoder{b: p}
	d.version()
	var r streamCreate
	row := &r.row
	row.ID = d.int()
	row.Path = d.string()
	row.ContentType = d.string()
	row.TTL = time.Duration(d.int()) * time.Millisecond
	row.ExpiresAt = d.time()
	row.Closed = d.bool()
	row.ParentID = d.int()
	row.ForkOffset = d.string()
	row.ForkSubOffset = d.int()
	row.CreatedAt = d.time()
	r.meta = d.meta()
	r.msgs = d.messages()
	return r, d.done("stream create")
}
