package hotlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/memdb"
)

// Load returns the persisted state: the meta row, all producers ordered by
// ID, and all sealed segments ordered by Seg, from one consistent snapshot.
func (l *Log) Load(ctx context.Context) (Meta, []Producer, []Segment, error) {
	var (
		meta  Meta
		prods []Producer
		segs  []Segment
	)
	if !l.ready.Load() {
		return Meta{}, nil, nil, fmt.Errorf("hotlog: load %s: not written yet", l.path)
	}
	err := l.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		if meta, err = scanMeta(tx.QueryRowContext(ctx, metaSelectSQL())); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		if prods, err = loadProducers(ctx, tx); err != nil {
			return fmt.Errorf("producers: %w", err)
		}
		if segs, err = loadSegments(ctx, tx); err != nil {
			return fmt.Errorf("segments: %w", err)
		}
		return nil
	})
	if err != nil {
		return Meta{}, nil, nil, fmt.Errorf("hotlog: load %s: %w", l.path, err)
	}
	return meta, prods, segs, nil
}

func loadProducers(ctx context.Context, tx *sql.Tx) ([]Producer, error) {
	rows, err := tx.QueryContext(ctx, selectProducersSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Producer
	for rows.Next() {
		var (
			p       Producer
			updated sql.NullInt64
		)
		if err := rows.Scan(&p.ID, &p.Epoch, &p.LastSeq, &updated); err != nil {
			return nil, err
		}
		p.Updated = fromMillis(updated)
		out = append(out, p)
	}
	return out, rows.Err()
}

func loadSegments(ctx context.Context, tx *sql.Tx) ([]Segment, error) {
	rows, err := tx.QueryContext(ctx, selectSegmentsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Segment
	for rows.Next() {
		var (
			s        Segment
			state    string
			checksum int64
			sealed   sql.NullInt64
		)
		if err := rows.Scan(&s.Seg, &s.Start, &s.End, &s.Messages, &s.Bytes, &state, &s.ObjectKey, &checksum, &sealed); err != nil {
			return nil, err
		}
		s.State, s.Checksum, s.SealedAt = segment.State(state), uint32(checksum), fromMillis(sealed)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Read returns messages overlapping [from, limit) in position order. It
// starts with the message that contains position from (which starts before
// from when from is inside a message), includes whole messages only, and
// stops before the first message that would push the total Data size above
// maxBytes, except that the first message is always included. Messages with
// Pos >= limit are never returned. If there are none, Read returns an empty
// slice and no error; if the rows containing from were trimmed, the first
// message returned starts after from.
//
// Read uses the read pool and never blocks the writer. The returned Data
// slices are not shared with anything else.
func (l *Log) Read(ctx context.Context, from, limit int64, maxBytes int) ([]Message, error) {
	out, err := l.read(ctx, from, limit, max(maxBytes, 0))
	if err != nil {
		return nil, fmt.Errorf("hotlog: read %s at %d: %w", l.path, from, err)
	}
	return out, nil
}

func (l *Log) read(ctx context.Context, from, limit int64, maxBytes int) ([]Message, error) {
	out := []Message{}
	if from >= limit || !l.ready.Load() {
		return out, nil
	}
	// One connection for the whole read: a message left out by the main
	// query is fetched on the same connection while the main query is
	// still active, so from the same snapshot.
	c, err := l.rdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rows, err := c.QueryContext(ctx, readSQL, from, limit, maxBytes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	used := 0
	// Declared once: Scan takes their addresses, which would otherwise
	// move each of them to the heap on every row. n is an int64 because
	// Scan converts into an int by formatting and parsing a string.
	var (
		m     Message
		flags int64
		n     int64
		data  sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&m.Pos, &m.Seg, &flags, &n, &data); err != nil {
			return nil, err
		}
		if len(out) > 0 && int64(used)+n > int64(maxBytes) {
			break
		}
		if data != nil {
			m.Data = ownedBytes(data)
		} else if err := c.QueryRowContext(ctx, readDataSQL, m.Pos).Scan(&m.Data); err != nil {
			return nil, fmt.Errorf("message at %d: %w", m.Pos, err)
		}
		m.BatchEnd = flags&flagBatchEnd != 0
		out = append(out, m)
		used += len(m.Data)
		// Data is never empty, so no further message can fit.
		if used >= maxBytes {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// ownedBytes returns b, which the caller scanned into a [sql.RawBytes],
// for keeping. RawBytes is documented as valid only until the next Next,
// Scan or Close, but modernc.org/sqlite copies every BLOB into a freshly
// allocated slice that it never touches again, so b can be kept as is.
// Read and ReadSegment depend on this to avoid copying every message a
// second time (tested by TestReadDataNotShared).
func ownedBytes(b sql.RawBytes) []byte { return b }

// ReadSegment returns all messages of segment seg, sealed or open, in
// position order. Nothing indexes seg, so it scans the stored messages:
// fine for tools and tests on a hot log, whose uploaded segments are
// trimmed; the server's upload path reads sealed segments by position.
func (l *Log) ReadSegment(ctx context.Context, seg int64) ([]Message, error) {
	out, err := l.readSegment(ctx, seg)
	if err != nil {
		return nil, fmt.Errorf("hotlog: read segment %d of %s: %w", seg, l.path, err)
	}
	return out, nil
}

func (l *Log) readSegment(ctx context.Context, seg int64) ([]Message, error) {
	if !l.ready.Load() {
		return nil, nil
	}
	rows, err := l.rdb.QueryContext(ctx, readSegmentSQL, seg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var (
			m     Message
			flags int64
			data  sql.RawBytes
		)
		if err := rows.Scan(&m.Pos, &m.Seg, &flags, &data); err != nil {
			return nil, err
		}
		m.Data, m.BatchEnd = ownedBytes(data), flags&flagBatchEnd != 0
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// Stats returns the size in bytes of the database file plus its WAL, and
// the number of stored messages and their total data size. It scans the
// message table (not the data), so it is meant for occasional use.
func (l *Log) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	if !l.ready.Load() {
		return st, nil // not written yet
	}
	err := l.rdb.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(length(data)), 0) FROM messages").
		Scan(&st.Rows, &st.DataBytes)
	if err != nil {
		return Stats{}, fmt.Errorf("hotlog: stats %s: %w", l.path, err)
	}
	if memdb.Is(l.path) {
		// No files: the database's size in memory stands in for them.
		var pages int64
		if err := l.rdb.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return Stats{}, fmt.Errorf("hotlog: stats %s: %w", l.path, err)
		}
		st.FileBytes = pages * l.pageSize
		return st, nil
	}
	for _, p := range []string{l.path, l.path + "-wal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Stats{}, fmt.Errorf("hotlog: stats %s: %w", l.path, err)
		}
		st.FileBytes += fi.Size()
	}
	return st, nil
}

// readTx runs fn in a read transaction on the read pool, so that all its
// queries see one snapshot.
func (l *Log) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Nothing was written, so ending the transaction cannot lose anything;
	// Rollback is the cheapest way to end it.
	defer tx.Rollback()
	return fn(tx)
}
