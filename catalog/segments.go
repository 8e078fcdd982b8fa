package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
)

// The segment index: one row per sealed segment of every stream, mirrored
// from the streams' hot logs (which stay authoritative) so that questions
// across all streams are one query. The uploader records a segment when it
// first sees it sealed and again once its object is stored and verified;
// the collector removes a deleted stream's rows after its objects; the
// admin surface reads the index together with the stream directory.
//
// Writes go through the catalog's group-commit write queue like every
// other write; reads are plain queries and may miss writes that commit
// while they run.

// Segment is one row of the segment index.
type Segment struct {
	StreamID int64
	Seg      int64
	FirstPos int64 // byte position of the first message
	EndPos   int64 // byte position just past the last message
	// Bytes is the object's size once uploaded; while sealed, the size of
	// the messages' data in the hot log.
	Bytes     int64
	Messages  int64
	ObjectKey string
	Checksum  uint32 // CRC32C of the object; 0 until uploaded
	CreatedAt time.Time
	State     segment.State
}

// SegmentEntry is a row of the segment index with what the stream
// directory says about its stream.
type SegmentEntry struct {
	Segment
	// Path is the stream's path; "" once the stream is deleted for real
	// (its rows stay until the collector has removed its objects).
	Path         string
	StreamExists bool // the stream has a row, live or soft-deleted
	SoftDeleted  bool
}

// SegmentFilter selects rows of the segment index for [Catalog.ListSegments].
// Zero fields do not filter.
type SegmentFilter struct {
	StreamPath string        // exactly this stream
	Prefix     string        // streams whose path starts with this (byte-wise)
	State      segment.State // this state only
	// After, if set, starts the page after this (stream id, segment).
	After *[2]int64
	Limit int // no limit if <= 0
}

const segmentColumns = "s.stream_id, s.seg, s.first_pos, s.end_pos, s.bytes, s.messages, s.object_key, s.checksum, s.created_at, s.state"

func scanSegment(r scanner, extra ...any) (Segment, error) {
	var (
		g         Segment
		checksum  int64
		createdAt int64
		state     string
	)
	dest := append([]any{&g.StreamID, &g.Seg, &g.FirstPos, &g.EndPos, &g.Bytes, &g.Messages, &g.ObjectKey,
		&checksum, &createdAt, &state}, extra...)
	if err := r.Scan(dest...); err != nil {
		return Segment{}, err
	}
	g.Checksum, g.CreatedAt, g.State = uint32(checksum), time.UnixMilli(createdAt), segment.State(state)
	return g, nil
}

// RecordSealed adds g to the index in state sealed, unless a row for its
// (stream, segment) exists already: a segment is recorded once, when its
// upload first starts, so that an upload interrupted by a restart is found
// again ([Catalog.SealedSegments]). A zero g.CreatedAt means now.
func (c *Catalog) RecordSealed(ctx context.Context, g Segment) error {
	if g.CreatedAt.IsZero() {
		g.CreatedAt = c.now()
	}
	err := c.write(ctx, func(tx *sql.Tx) error {
		if err := c.checkHolder(ctx, tx, g.StreamID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO segments (stream_id, seg, first_pos, end_pos, bytes, messages, object_key, checksum, created_at, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stream_id, seg) DO NOTHING`,
			g.StreamID, g.Seg, g.FirstPos, g.EndPos, g.Bytes, g.Messages, g.ObjectKey, int64(g.Checksum),
			g.CreatedAt.UnixMilli(), string(segment.Sealed))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: record sealed segment %d/%d: %w", g.StreamID, g.Seg, err)
	}
	return nil
}

// MarkUploaded records that the object of segment seg of stream is stored
// and verified, with its size, CRC32C and message count. A row that does
// not exist is not created.
func (c *Catalog) MarkUploaded(ctx context.Context, stream, seg, bytes int64, checksum uint32, messages int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		if err := c.checkHolder(ctx, tx, stream); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE segments SET state = ?, bytes = ?, checksum = ?, messages = ?
			WHERE stream_id = ? AND seg = ?`, string(segment.Uploaded), bytes, int64(checksum), messages, stream, seg)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: mark segment %d/%d uploaded: %w", stream, seg, err)
	}
	return nil
}

// SealedSegments returns the rows in state sealed: uploads that have not
// finished, in (stream, segment) order.
func (c *Catalog) SealedSegments(ctx context.Context) ([]Segment, error) {
	out, err := queryAll(ctx, c.db, scanPlainSegment,
		"SELECT "+segmentColumns+" FROM segments s WHERE s.state = ? ORDER BY s.stream_id, s.seg", string(segment.Sealed))
	if err != nil {
		return nil, fmt.Errorf("catalog: sealed segments: %w", err)
	}
	return out, nil
}

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanPlainSegment(r scanner) (Segment, error) { return scanSegment(r) }

// DeleteSegments removes every index row of stream and returns how many
// there were. With onlyDeleted, it removes them only if the stream has no
// row in the directory (it was deleted for real), in the same transaction.
func (c *Catalog) DeleteSegments(ctx context.Context, stream int64, onlyDeleted bool) (int64, error) {
	var n int64
	err := c.write(ctx, func(tx *sql.Tx) error {
		q := "DELETE FROM segments WHERE stream_id = ?1"
		if onlyDeleted {
			q += " AND NOT EXISTS (SELECT 1 FROM streams WHERE id = ?1)"
		}
		res, err := tx.ExecContext(ctx, q, stream)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: delete segments of %d: %w", stream, err)
	}
	return n, nil
}

// ListSegments returns the index rows that f selects, joined with their
// streams, in (stream id, segment) order.
func (c *Catalog) ListSegments(ctx context.Context, f SegmentFilter) ([]SegmentEntry, error) {
	var conds []string
	var args []any
	if f.StreamPath != "" {
		conds, args = append(conds, "st.path = ?"), append(args, f.StreamPath)
	}
	if f.Prefix != "" {
		conds, args = append(conds, "st.path >= ?"), append(args, f.Prefix)
		if end, ok := c.prefixEnd(f.Prefix); ok {
			conds, args = append(conds, "st.path < ?"), append(args, end)
		}
	}
	if f.State != "" {
		conds, args = append(conds, "s.state = ?"), append(args, string(f.State))
	}
	if f.After != nil {
		conds, args = append(conds, "(s.stream_id, s.seg) > (?, ?)"), append(args, f.After[0], f.After[1])
	}
	q := "SELECT " + segmentColumns + `, st.id IS NOT NULL, coalesce(st.path, ''), st.deleted_at IS NOT NULL
		FROM segments s LEFT JOIN streams st ON st.id = s.stream_id`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY s.stream_id, s.seg LIMIT ?"
	args = append(args, limitArg(f.Limit))
	out, err := queryAll(ctx, c.db, func(r scanner) (SegmentEntry, error) {
		var e SegmentEntry
		var err error
		e.Segment, err = scanSegment(r, &e.StreamExists, &e.Path, &e.SoftDeleted)
		return e, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: list segments: %w", err)
	}
	return out, nil
}

// KeyCursor is a position in the index in object key order: the page
// after it starts at the next (object key, stream id, segment).
type KeyCursor struct {
	Key         string
	Stream, Seg int64
}

// SegmentsByKey returns up to limit index rows after cur in (object key,
// stream id, segment) order, which is the byte-wise order in which object
// stores list keys.
func (c *Catalog) SegmentsByKey(ctx context.Context, cur KeyCursor, limit int) ([]Segment, error) {
	out, err := queryAll(ctx, c.db, scanPlainSegment, "SELECT "+segmentColumns+` FROM segments s
		WHERE (s.object_key, s.stream_id, s.seg) > (?, ?, ?) ORDER BY s.object_key, s.stream_id, s.seg LIMIT ?`,
		cur.Key, cur.Stream, cur.Seg, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("catalog: read segment index: %w", err)
	}
	return out, nil
}

// SegmentFor returns the index row whose object key is key or, failing
// that, the row of (stream, seg); false if there is none.
func (c *Catalog) SegmentFor(ctx context.Context, key string, stream, seg int64) (Segment, bool, error) {
	g, err := scanSegment(c.db.QueryRowContext(ctx, "SELECT "+segmentColumns+` FROM segments s
		WHERE s.object_key = ? OR (s.stream_id = ? AND s.seg = ?) LIMIT 1`, key, stream, seg))
	if errors.Is(err, sql.ErrNoRows) {
		return Segment{}, false, nil
	}
	if err != nil {
		return Segment{}, false, fmt.Errorf("catalog: read segment index: %w", err)
	}
	return g, true, nil
}

// StreamSegmentsFrom returns the stream at path (live or soft-deleted)
// with up to limit of its index rows whose segment number is seg or more,
// in segment order, in one read: the rows around one position of a
// stream, through the primary key whatever the stream's length (catch-up
// reads a node that does not own the stream serves from the cold tier).
// A stream without such rows is [ErrNotFound], like a missing one.
func (c *Catalog) StreamSegmentsFrom(ctx context.Context, path string, seg int64, limit int) (Stream, []Segment, error) {
	var st Stream
	gs, err := queryAll(ctx, c.db, func(r scanner) (Segment, error) {
		var g Segment
		s, err := scanStream(scanFunc(func(sd ...any) error {
			var err error
			g, err = scanSegment(scanFunc(func(gd ...any) error { return r.Scan(append(sd, gd...)...) }))
			return err
		}))
		st = s
		return g, err
	}, "SELECT "+qualifiedStreamColumns+", "+segmentColumns+` FROM streams st JOIN segments s ON s.stream_id = st.id
		WHERE st.path = ? AND s.seg >= ? ORDER BY s.seg LIMIT ?`, path, seg, limitArg(limit))
	if err == nil && len(gs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Stream{}, nil, fmt.Errorf("catalog: segments of %q from %d: %w", path, seg, err)
	}
	return st, gs, nil
}

// qualifiedStreamColumns are streamColumns of the table named st.
var qualifiedStreamColumns = func() string {
	cols := strings.Split(streamColumns, ",")
	for i, c := range cols {
		cols[i] = "st." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}()

// scanFunc is a scanner that is a function: it lets a row hold the
// columns of two scan functions, one after the other.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// HasSegments reports whether stream has any index row.
func (c *Catalog) HasSegments(ctx context.Context, stream int64) (bool, error) {
	var left bool
	if err := c.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM segments WHERE stream_id = ?)`, stream).Scan(&left); err != nil {
		return false, fmt.Errorf("catalog: read segment index: %w", err)
	}
	return left, nil
}

// SegmentCount sums index rows of one state.
type SegmentCount struct {
	Segments int64
	Bytes    int64 // the rows' Bytes
}

// SegmentStats sums the index rows of stream (of every stream if stream
// is 0) per state.
func (c *Catalog) SegmentStats(ctx context.Context, stream int64) (map[segment.State]SegmentCount, error) {
	q := "SELECT state, count(*), coalesce(sum(bytes), 0) FROM segments"
	var args []any
	if stream != 0 {
		q, args = q+" WHERE stream_id = ?", append(args, stream)
	}
	rows, err := c.db.QueryContext(ctx, q+" GROUP BY state", args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: segment stats: %w", err)
	}
	defer rows.Close()
	out := map[segment.State]SegmentCount{}
	for rows.Next() {
		var state string
		var n SegmentCount
		if err := rows.Scan(&state, &n.Segments, &n.Bytes); err != nil {
			return nil, fmt.Errorf("catalog: segment stats: %w", err)
		}
		out[segment.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: segment stats: %w", err)
	}
	return out, nil
}

// Totals counts the catalog's streams.
type Totals struct {
	Streams     int64 // rows, live or soft-deleted
	SoftDeleted int64 // of those, soft-deleted
	// DeletedStreams counts streams deleted for real that still have
	// index rows.
	DeletedStreams int64
	PendingGC      int64 // entries of the GC queue
}

// Totals returns the counts of the whole catalog.
func (c *Catalog) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := c.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM streams),
		(SELECT count(*) FROM streams WHERE deleted_at IS NOT NULL),
		(SELECT count(DISTINCT stream_id) FROM segments s WHERE NOT EXISTS (SELECT 1 FROM streams WHERE id = s.stream_id)),
		(SELECT count(*) FROM gc_queue)`).Scan(&t.Streams, &t.SoftDeleted, &t.DeletedStreams, &t.PendingGC)
	if err != nil {
		return Totals{}, fmt.Errorf("catalog: totals: %w", err)
	}
	return t, nil
}

// Owner is what the catalog says about a stream id.
type Owner struct {
	Exists   bool      // a row, live or soft-deleted
	QueuedAt time.Time // when it was queued for GC; zero if it is not
}

// OwnerOf returns what the catalog says about stream id.
func (c *Catalog) OwnerOf(ctx context.Context, id int64) (Owner, error) {
	var o Owner
	var queued sql.NullInt64
	err := c.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM streams WHERE id = ?1),
		(SELECT queued_at FROM gc_queue WHERE stream_id = ?1)`, id).Scan(&o.Exists, &queued)
	if err != nil {
		return Owner{}, fmt.Errorf("catalog: look up stream %d: %w", id, err)
	}
	o.QueuedAt = fromMillis(queued)
	return o, nil
}

// DeletedSegments counts the index rows of a stream deleted for real.
type DeletedSegments struct {
	StreamID int64
	Rows     int64
	QueuedAt time.Time // its GC queue entry; zero if it has none
}

// SegmentsOfDeleted returns, for up to limit streams with ids above after
// that have index rows but no row in the directory, how many rows each
// has, in id order.
func (c *Catalog) SegmentsOfDeleted(ctx context.Context, after int64, limit int) ([]DeletedSegments, error) {
	out, err := queryAll(ctx, c.db, func(r scanner) (DeletedSegments, error) {
		var d DeletedSegments
		var queued sql.NullInt64
		err := r.Scan(&d.StreamID, &d.Rows, &queued)
		d.QueuedAt = fromMillis(queued)
		return d, err
	}, `SELECT s.stream_id, count(*),
		(SELECT queued_at FROM gc_queue WHERE stream_id = s.stream_id)
		FROM segments s WHERE s.stream_id > ? AND NOT EXISTS (SELECT 1 FROM streams WHERE id = s.stream_id)
		GROUP BY s.stream_id ORDER BY s.stream_id LIMIT ?`, after, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("catalog: segments of deleted streams: %w", err)
	}
	return out, nil
}

// GCEntry is an entry of the GC queue.
type GCEntry struct {
	StreamID int64
	QueuedAt time.Time
}

// GCQueue returns up to limit GC queue entries queued at or before
// before and after the entry after, in (queue time, id) order.
func (c *Catalog) GCQueue(ctx context.Context, before time.Time, after GCEntry, limit int) ([]GCEntry, error) {
	out, err := queryAll(ctx, c.db, func(r scanner) (GCEntry, error) {
		var e GCEntry
		var ms int64
		err := r.Scan(&e.StreamID, &ms)
		e.QueuedAt = time.UnixMilli(ms)
		return e, err
	}, `SELECT stream_id, queued_at FROM gc_queue
		WHERE queued_at <= ? AND (queued_at, stream_id) > (?, ?) ORDER BY queued_at, stream_id LIMIT ?`,
		before.UnixMilli(), after.QueuedAt.UnixMilli(), after.StreamID, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("catalog: read gc queue: %w", err)
	}
	return out, nil
}
