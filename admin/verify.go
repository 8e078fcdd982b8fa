package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// Problem is one finding of Verify.
type Problem struct {
	Key      string `json:"key"`
	StreamID int64  `json:"stream_id,omitempty"` // 0 for a key not in the segment format
	Seg      *int64 `json:"seg,omitempty"`
	Bytes    int64  `json:"bytes"` // object size; for a missing object, the size the index expects
	Reason   string `json:"reason"`
}

// Report is the result of Verify.
type Report struct {
	Objects     int64 `json:"objects"`      // objects in the store
	ObjectBytes int64 `json:"object_bytes"` // their size
	IndexRows   int64 `json:"index_rows"`   // rows of the admin index
	Verified    int64 `json:"verified"`     // uploaded objects whose content was checked
	// InProgress counts rows in state sealed: the upload is pending or
	// running, so their objects (present or not) are not checked.
	InProgress int64 `json:"in_progress"`

	MissingCount    int64 `json:"missing_count"`
	OrphanedCount   int64 `json:"orphaned_count"`
	MismatchedCount int64 `json:"mismatched_count"`
	// Missing: rows in state uploaded whose object is not in the store.
	Missing []Problem `json:"missing"`
	// Orphaned: objects that no index row names, including keys that are
	// not in the segment key format.
	Orphaned []Problem `json:"orphaned"`
	// Mismatched: objects that are not valid segments, or whose size,
	// CRC32C, stream or segment differ from their index row.
	Mismatched []Problem `json:"mismatched"`
	// Truncated is set when a list was cut at Config.MaxReport entries.
	Truncated bool `json:"truncated"`
	// Clean is set when nothing is missing, orphaned or mismatched.
	Clean bool `json:"clean"`
}

func (r *Report) add(list *[]Problem, count *int64, max int, p Problem) {
	*count++
	if len(*list) < max {
		*list = append(*list, p)
	} else {
		r.Truncated = true
	}
}

// memVerifyLimit is the largest object Verify checks in memory; larger ones
// are spooled to a temporary file.
const memVerifyLimit = 16 << 20

// Verify compares the admin index with the object store. It lists the whole
// store once, merging it with the index read in pages, and reads every
// uploaded object back to check it with segment.Verify and against the
// CRC32C recorded in its row. Findings that may be races with a concurrent
// upload or collection are checked again before they are reported.
func (s *Service) Verify(ctx context.Context) (Report, error) {
	rep := Report{Missing: []Problem{}, Orphaned: []Problem{}, Mismatched: []Problem{}}
	max := s.cfg.MaxReport
	var buf []byte
	err := s.walk(ctx, func(obj *coldstore.ObjectInfo, row *indexRow) error {
		if obj != nil {
			rep.Objects++
			rep.ObjectBytes += obj.Size
		}
		if row != nil {
			rep.IndexRows++
		}
		if row == nil {
			// The row may have been written after its page was read.
			r, err := s.rowFor(ctx, obj.Key)
			if err != nil {
				return err
			}
			if r == nil {
				p := Problem{Key: obj.Key, Bytes: obj.Size, Reason: "no index row"}
				if id, seg, ok := segment.ParseObjectKey(obj.Key); ok {
					p.StreamID, p.Seg = id, &seg
				} else {
					p.Reason = "not a segment key"
				}
				rep.add(&rep.Orphaned, &rep.OrphanedCount, max, p)
				return nil
			}
			row = r
		}
		if row.State != StateUploaded {
			rep.InProgress++
			return nil
		}
		if obj == nil {
			// The object may have been stored after the listing passed it.
			info, err := s.store.Head(ctx, row.ObjectKey)
			if errors.Is(err, coldstore.ErrNotFound) {
				return s.reportMissing(ctx, &rep, row)
			}
			if err != nil {
				return fmt.Errorf("admin: head %s: %w", row.ObjectKey, err)
			}
			obj = &info
		}
		rep.Verified++
		reason, err := s.checkObject(ctx, obj, row, &buf)
		if errors.Is(err, coldstore.ErrNotFound) {
			return s.reportMissing(ctx, &rep, row)
		}
		if err != nil {
			return err
		}
		if reason != "" {
			seg := row.Seg
			rep.add(&rep.Mismatched, &rep.MismatchedCount, max,
				Problem{Key: row.ObjectKey, StreamID: row.StreamID, Seg: &seg, Bytes: obj.Size, Reason: reason})
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	rep.Clean = rep.MissingCount == 0 && rep.OrphanedCount == 0 && rep.MismatchedCount == 0
	return rep, nil
}

// reportMissing reports row's object as missing unless the row is gone or
// no longer uploaded (the stream was collected meanwhile).
func (s *Service) reportMissing(ctx context.Context, rep *Report, row *indexRow) error {
	cur, err := s.rowFor(ctx, row.ObjectKey)
	if err != nil {
		return err
	}
	if cur == nil || cur.State != StateUploaded {
		return nil
	}
	seg := cur.Seg
	rep.add(&rep.Missing, &rep.MissingCount, s.cfg.MaxReport,
		Problem{Key: cur.ObjectKey, StreamID: cur.StreamID, Seg: &seg, Bytes: cur.Bytes, Reason: "object not in the store"})
	return nil
}

// checkObject reads obj back and returns why it does not match row, or ""
// when it does. buf is reused between calls.
func (s *Service) checkObject(ctx context.Context, obj *coldstore.ObjectInfo, row *indexRow, buf *[]byte) (string, error) {
	if obj.Size != row.Bytes {
		return fmt.Sprintf("size %d, index says %d", obj.Size, row.Bytes), nil
	}
	rc, err := s.store.Get(ctx, row.ObjectKey, 0, -1)
	if err != nil {
		return "", fmt.Errorf("admin: get %s: %w", row.ObjectKey, err)
	}
	defer rc.Close()
	var (
		ra   io.ReaderAt
		size int64
		sum  uint32
	)
	// The checksum is compared last (want 0): a structural finding says
	// more than a checksum mismatch.
	if obj.Size <= memVerifyLimit {
		b := bytes.NewBuffer((*buf)[:0])
		if _, sum, err = segment.CopyChecked(b, io.LimitReader(rc, memVerifyLimit+1), 0); err != nil {
			return "", fmt.Errorf("admin: read %s: %w", row.ObjectKey, err)
		}
		*buf = b.Bytes()
		ra, size = bytes.NewReader(*buf), int64(len(*buf))
	} else {
		f, err := os.CreateTemp("", "durable-streams-verify-*")
		if err != nil {
			return "", fmt.Errorf("admin: verify %s: %w", row.ObjectKey, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if size, sum, err = segment.CopyChecked(f, rc, 0); err != nil {
			return "", fmt.Errorf("admin: read %s: %w", row.ObjectKey, err)
		}
		ra = f
	}
	if size != row.Bytes {
		return fmt.Sprintf("read %d bytes, index says %d", size, row.Bytes), nil
	}
	ix, err := segment.Verify(ra, size)
	if errors.Is(err, segment.ErrCorrupt) {
		return err.Error(), nil
	}
	if err != nil {
		return "", fmt.Errorf("admin: verify %s: %w", row.ObjectKey, err)
	}
	if sum != row.Checksum {
		return fmt.Sprintf("checksum %08x, index says %08x", sum, row.Checksum), nil
	}
	if ix.Header.StreamID != row.StreamID || ix.Header.Segment != row.Seg {
		return fmt.Sprintf("object holds stream %d segment %d", ix.Header.StreamID, ix.Header.Segment), nil
	}
	return "", nil
}
