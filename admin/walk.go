package admin

import (
	"context"
	"fmt"
	"iter"
	"math"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// indexRow is a row of the admin index that Verify and GC compare with
// the store.
type indexRow = catalog.Segment

// rowPage is how many index rows a walk reads per query, so that no read
// transaction stays open while objects are listed, read or deleted.
const rowPage = 500

// rowCursor reads the admin index in object key order, a page at a time.
type rowCursor struct {
	cat  *catalog.Catalog
	page []indexRow
	pos  int
	done bool
	// The last row read: the next page starts after it.
	last catalog.KeyCursor
}

func newRowCursor(cat *catalog.Catalog) *rowCursor {
	return &rowCursor{cat: cat, last: catalog.KeyCursor{Stream: math.MinInt64, Seg: math.MinInt64}}
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
	page, err := c.cat.SegmentsByKey(ctx, c.last, rowPage)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	c.page, c.pos = page, 0
	if len(c.page) < rowPage {
		c.done = true
	}
	if n := len(c.page); n > 0 {
		c.last = catalog.KeyCursor{Key: c.page[n-1].ObjectKey, Stream: c.page[n-1].StreamID, Seg: c.page[n-1].Seg}
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
	rows := newRowCursor(s.cat)
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
		case obj != nil && (row == nil || obj.Key < row.ObjectKey):
			if err := fn(obj, nil); err != nil {
				return err
			}
			if err := nextObj(); err != nil {
				return err
			}
		case row != nil && (obj == nil || row.ObjectKey < obj.Key):
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
	r, ok, err := s.cat.SegmentFor(ctx, key, id, seg)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return &r, nil
}
