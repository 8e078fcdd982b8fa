package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// indexRow is the part of an admin index row that Verify and GC compare
// with the store.
type indexRow struct {
	streamID, seg int64
	key           string
	bytes         int64
	checksum      uint32
	state         string
}

// rowPage is how many index rows a walk reads per query, so that no read
// transaction stays open while objects are listed, read or deleted.
const rowPage = 500

const rowColumns = "stream_id, seg, object_key, bytes, checksum, state"

func scanRow(sc interface{ Scan(...any) error }) (indexRow, error) {
	var r indexRow
	var checksum int64
	err := sc.Scan(&r.streamID, &r.seg, &r.key, &r.bytes, &checksum, &r.state)
	r.checksum = uint32(checksum)
	return r, err
}

// rowCursor reads the admin index in object key order, a page at a time.
type rowCursor struct {
	db   *sql.DB
	page []indexRow
	pos  int
	done bool
	// The last row read: the next page starts after it.
	lastKey         string
	lastID, lastSeg int64
}

func newRowCursor(db *sql.DB) *rowCursor {
	return &rowCursor{db: db, lastID: math.MinInt64, lastSeg: math.MinInt64}
}

// next returns the next row, or nil after the last.
func (c *rowCursor) next(ctx context.Context) (*indexRow, error) {
	if c.pos == len(c.page) {
		if c.done {
			return nil, nil
		}
		if err := c.fetch(ctx); err != nil {
			return nil, err
		}
		if len(c.page) == 0 {
			return nil, nil
		}
	}
	r := &c.page[c.pos]
	c.pos++
	return r, nil
}

func (c *rowCursor) fetch(ctx context.Context) error {
	rows, err := c.db.QueryContext(ctx, `SELECT `+rowColumns+` FROM segments
		WHERE (object_key, stream_id, seg) > (?, ?, ?) ORDER BY object_key, stream_id, seg LIMIT ?`,
		c.lastKey, c.lastID, c.lastSeg, rowPage)
	if err != nil {
		return fmt.Errorf("admin: read index: %w", err)
	}
	defer rows.Close()
	c.page, c.pos = c.page[:0], 0
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return fmt.Errorf("admin: read index: %w", err)
		}
		c.page = append(c.page, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("admin: read index: %w", err)
	}
	if len(c.page) < rowPage {
		c.done = true
	}
	if n := len(c.page); n > 0 {
		c.lastKey, c.lastID, c.lastSeg = c.page[n-1].key, c.page[n-1].streamID, c.page[n-1].seg
	}
	return nil
}

// walk visits every object of the store and every row of the admin index,
// merged by key: both are in byte-wise key order (the store lists that way,
// and SQLite compares TEXT with memcmp). fn gets an object and the row
// naming it, or either alone; the pointers are valid only during the call.
//
// Rows are read a page at a time while the listing streams, so both may
// miss changes made during the walk; callers recheck before reporting or
// acting (rowFor, Head).
func (s *Service) walk(ctx context.Context, fn func(obj *coldstore.ObjectInfo, row *indexRow) error) error {
	next, stop := iter.Pull2(s.store.List(ctx, ""))
	defer stop()
	var obj *coldstore.ObjectInfo
	nextObj := func() error {
		o, err, ok := next()
		switch {
		case !ok:
			obj = nil
		case err != nil:
			return fmt.Errorf("admin: list store: %w", err)
		default:
			obj = &o
		}
		return nil
	}
	rows := newRowCursor(s.cat.DB())
	if err := nextObj(); err != nil {
		return err
	}
	row, err := rows.next(ctx)
	if err != nil {
		return err
	}
	for obj != nil || row != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case obj != nil && (row == nil || obj.Key < row.key):
			if err := fn(obj, nil); err != nil {
				return err
			}
			if err := nextObj(); err != nil {
				return err
			}
		case row != nil && (obj == nil || row.key < obj.Key):
			if err := fn(nil, row); err != nil {
				return err
			}
			if row, err = rows.next(ctx); err != nil {
				return err
			}
		default:
			if err := fn(obj, row); err != nil {
				return err
			}
			if err := nextObj(); err != nil {
				return err
			}
			if row, err = rows.next(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowFor returns the current index row naming key, or nil: the row whose
// object_key is key, or for a key in the segment format, the row of its
// (stream, segment).
func (s *Service) rowFor(ctx context.Context, key string) (*indexRow, error) {
	id, seg, ok := segment.ParseObjectKey(key)
	if !ok {
		id, seg = -1, -1
	}
	r, err := scanRow(s.cat.DB().QueryRowContext(ctx, `SELECT `+rowColumns+` FROM segments
		WHERE object_key = ? OR (stream_id = ? AND seg = ?) LIMIT 1`, key, id, seg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin: read index: %w", err)
	}
	return &r, nil
}
