package admin

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segment"
	"github.com/streamtier/durable-streams/internal/invariants"
)

// Reasons in a GCReport.
const (
	// Objects deleted.
	ReasonOrphaned      = "orphaned"       // no index row, and no stream owns its key
	ReasonDeletedStream = "deleted_stream" // its stream was deleted for real
	// Objects left alone.
	ReasonTooYoung          = "too_young"          // no index row yet, but younger than MinAge: may be an upload in progress
	ReasonStreamExists      = "stream_exists"      // no index row, but its stream exists: its hot log may refer to it
	ReasonCollectionPending = "collection_pending" // its stream's deletion is younger than MinAge: the collector (package reclaim) collects it
)

// GCObject is an object GC deleted (or, in a dry run, would delete) or
// left alone.
type GCObject struct {
	Key      string    `json:"key"`
	StreamID int64     `json:"stream_id,omitempty"` // 0 for a key not in the segment format
	Bytes    int64     `json:"bytes"`
	Modified time.Time `json:"modified"`
	Reason   string    `json:"reason"`
}

// GCRows counts the index rows of a stream deleted for real that GC
// removed (or would remove).
type GCRows struct {
	StreamID int64 `json:"stream_id"`
	Rows     int64 `json:"rows"`
}

// GCQueueEntry is an entry of the catalog's GC queue that GC finished (or
// would finish): the hot files it removed and the queue entry itself.
type GCQueueEntry struct {
	StreamID int64     `json:"stream_id"`
	QueuedAt time.Time `json:"queued_at"`
	HotFiles []string  `json:"hot_files,omitempty"`
}

// GCReport is the result of GC. Its lists are bounded by Config.MaxReport;
// the counts are exact.
type GCReport struct {
	DryRun bool `json:"dry_run"`
	// Objects deleted, or to delete in a dry run, and their total.
	Objects     []GCObject `json:"objects"`
	ObjectCount int64      `json:"object_count"`
	Bytes       int64      `json:"bytes"`
	// IndexRows of deleted streams removed (or to remove).
	IndexRows     []GCRows `json:"index_rows"`
	IndexRowCount int64    `json:"index_row_count"`
	// Queue lists the GC queue entries finished (or to finish).
	Queue      []GCQueueEntry `json:"gc_queue"`
	QueueCount int64          `json:"gc_queue_count"`
	// Skipped lists objects left alone on purpose, with the reason.
	Skipped      []GCObject `json:"skipped"`
	SkippedCount int64      `json:"skipped_count"`
	Truncated    bool       `json:"truncated"`
}

func addBounded[T any](list *[]T, max int, v T, truncated *bool) {
	if len(*list) < max {
		*list = append(*list, v)
	} else {
		*truncated = true
	}
}

// owner is what the catalog says about a stream id.
type owner struct {
	id       int64
	exists   bool      // a streams row, live or soft-deleted
	queuedAt time.Time // of its GC queue entry; zero if none
}

// GC removes what the normal paths left behind, in this order:
//
//  1. objects that no index row names and whose key no existing stream
//     owns (orphans), unless younger than MinAge, and the objects of
//     streams that were deleted for real (not in the catalog any more);
//  2. the index rows of those deleted streams;
//  3. GC queue entries older than MinAge whose objects are gone: their
//     remaining hot files are removed and the entry is finished.
//
// Objects named by a row in state sealed belong to an upload in progress
// and are kept while their stream exists, as are objects without a row
// whose stream exists (its hot log, which is authoritative, may refer to
// them; Verify reports them as orphaned). A deleted stream whose GC queue
// entry is younger than MinAge is left to the collector (package reclaim),
// which collects it right after the deletion.
//
// With dryRun nothing is changed and the report says what would be.
func (s *Service) GC(ctx context.Context, dryRun bool) (GCReport, error) {
	now := s.cfg.Now()
	rep := GCReport{DryRun: dryRun, Objects: []GCObject{}, IndexRows: []GCRows{}, Queue: []GCQueueEntry{}, Skipped: []GCObject{}}
	max := s.cfg.MaxReport
	var cache owner
	ownerOf := func(id int64) (owner, error) {
		if cache.id == id && id != 0 {
			return cache, nil
		}
		o, err := s.owner(ctx, id)
		if err == nil {
			cache = o
		}
		return o, err
	}
	young := func(o owner) bool {
		return !o.queuedAt.IsZero() && now.Sub(o.queuedAt) < s.cfg.MinAge
	}
	skip := func(obj *coldstore.ObjectInfo, id int64, reason string) {
		rep.SkippedCount++
		addBounded(&rep.Skipped, max, GCObject{Key: obj.Key, StreamID: id, Bytes: obj.Size, Modified: obj.Modified, Reason: reason}, &rep.Truncated)
	}
	remove := func(obj *coldstore.ObjectInfo, id int64, reason string) error {
		if !dryRun {
			if err := s.col.DeleteObject(ctx, obj.Key); err != nil {
				return fmt.Errorf("admin: gc: %w", err)
			}
			s.lg.Info("admin gc: deleted object", "key", obj.Key, "bytes", obj.Size, "reason", reason)
		}
		rep.ObjectCount++
		rep.Bytes += obj.Size
		addBounded(&rep.Objects, max, GCObject{Key: obj.Key, StreamID: id, Bytes: obj.Size, Modified: obj.Modified, Reason: reason}, &rep.Truncated)
		return nil
	}

	// 1. Objects.
	err := s.walk(ctx, func(obj *coldstore.ObjectInfo, row *indexRow) error {
		if obj == nil {
			return nil // rows without objects: step 2
		}
		if row == nil {
			// A row may have been written after its page was read.
			var err error
			if row, err = s.rowFor(ctx, obj.Key); err != nil {
				return err
			}
		}
		if row != nil {
			o, err := ownerOf(row.StreamID)
			switch {
			case err != nil:
				return err
			case o.exists:
				return nil // live data, or an upload in progress (state sealed)
			case young(o):
				skip(obj, row.StreamID, ReasonCollectionPending)
				return nil
			}
			return remove(obj, row.StreamID, ReasonDeletedStream)
		}
		id, _, ok := segment.ParseObjectKey(obj.Key)
		if !ok {
			id = 0
		} else if o, err := ownerOf(id); err != nil {
			return err
		} else if o.exists {
			skip(obj, id, ReasonStreamExists)
			return nil
		}
		if now.Sub(obj.Modified) < s.cfg.MinAge {
			skip(obj, id, ReasonTooYoung)
			return nil
		}
		return remove(obj, id, ReasonOrphaned)
	})
	if err != nil {
		return GCReport{}, err
	}

	// 2. Index rows of streams deleted for real, after their objects.
	if err := s.gcRows(ctx, dryRun, now, &rep); err != nil {
		return GCReport{}, err
	}

	// 3. GC queue entries.
	if err := s.gcQueue(ctx, dryRun, now, &rep); err != nil {
		return GCReport{}, err
	}
	if !dryRun && (rep.ObjectCount > 0 || rep.IndexRowCount > 0 || rep.QueueCount > 0) {
		s.lg.Info("admin gc: done", "objects", rep.ObjectCount, "bytes", rep.Bytes,
			"index_rows", rep.IndexRowCount, "gc_queue", rep.QueueCount, "skipped", rep.SkippedCount)
	}
	return rep, nil
}

func (s *Service) owner(ctx context.Context, id int64) (owner, error) {
	o, err := s.cat.OwnerOf(ctx, id)
	if err != nil {
		return owner{}, fmt.Errorf("admin: gc: %w", err)
	}
	return owner{id: id, exists: o.Exists, queuedAt: o.QueuedAt}, nil
}

// gcRows removes the index rows of streams that are not in the catalog,
// except those whose deletion is younger than MinAge.
func (s *Service) gcRows(ctx context.Context, dryRun bool, now time.Time, rep *GCReport) error {
	for after := int64(math.MinInt64); ; {
		page, err := s.cat.SegmentsOfDeleted(ctx, after, rowPage)
		if err != nil {
			return fmt.Errorf("admin: gc: %w", err)
		}
		for _, g := range page {
			if !g.QueuedAt.IsZero() && now.Sub(g.QueuedAt) < s.cfg.MinAge {
				continue // the collector is collecting it
			}
			n := g.Rows
			if !dryRun {
				if n, err = s.col.DeleteRows(ctx, g.StreamID); err != nil {
					return fmt.Errorf("admin: gc: %w", err)
				}
				s.lg.Info("admin gc: deleted index rows", "stream_id", g.StreamID, "rows", n)
			}
			rep.IndexRowCount += n
			addBounded(&rep.IndexRows, s.cfg.MaxReport, GCRows{StreamID: g.StreamID, Rows: n}, &rep.Truncated)
		}
		if len(page) < rowPage {
			return nil
		}
		after = page[len(page)-1].StreamID
	}
}

// gcQueue finishes GC queue entries older than MinAge whose stream has no
// objects and no index rows left: it removes the stream's hot files (which
// the collector removes first, unless that failed) and the entry. It needs
// to know where hot logs are (Config.Collector or Config.Registry);
// without either it does nothing.
func (s *Service) gcQueue(ctx context.Context, dryRun bool, now time.Time, rep *GCReport) error {
	if !s.hot {
		return nil
	}
	cutoff := now.Add(-s.cfg.MinAge)
	var last catalog.GCEntry
	for {
		page, err := s.cat.GCQueue(ctx, cutoff, last, rowPage)
		if err != nil {
			return fmt.Errorf("admin: gc: %w", err)
		}
		for _, e := range page {
			done, err := s.finishQueued(ctx, dryRun, e.StreamID, e.QueuedAt, rep)
			if err != nil {
				return err
			}
			if done {
				rep.QueueCount++
			}
		}
		if len(page) < rowPage {
			return nil
		}
		last = page[len(page)-1]
	}
}

func (s *Service) finishQueued(ctx context.Context, dryRun bool, id int64, queued time.Time, rep *GCReport) (bool, error) {
	o, err := s.owner(ctx, id)
	if err != nil {
		return false, err
	}
	if o.exists {
		// The catalog queues an id in the transaction that removes its
		// row, and ids are never reused; leave such an entry alone.
		invariants.Failf(s.lg, "admin: gc: stream %d is queued for GC but still in the catalog", id)
		return false, nil
	}
	if !dryRun {
		// Finished only once nothing of the stream is left in the cold tier
		// (a dry run deleted nothing, so it reports what step 1 would allow).
		for _, err := range s.store.List(ctx, segment.StreamPrefix(id)) {
			if err != nil {
				return false, fmt.Errorf("admin: gc: list stream %d: %w", id, err)
			}
			return false, nil // an object is left (skipped above)
		}
		if left, err := s.cat.HasSegments(ctx, id); err != nil {
			return false, fmt.Errorf("admin: gc: %w", err)
		} else if left {
			return false, nil
		}
	}
	ent := GCQueueEntry{StreamID: id, QueuedAt: queued.UTC()}
	if ent.HotFiles, err = s.col.HotFiles(id); err != nil {
		return false, fmt.Errorf("admin: gc: %w", err)
	}
	if !dryRun {
		if err := s.col.RemoveHot(id); err != nil {
			return false, fmt.Errorf("admin: gc: %w", err)
		}
		if err := s.col.Finish(ctx, id); err != nil {
			return false, fmt.Errorf("admin: gc: %w", err)
		}
		s.lg.Info("admin gc: finished deleted stream", "stream_id", id, "hot_files", len(ent.HotFiles))
	}
	addBounded(&rep.Queue, s.cfg.MaxReport, ent, &rep.Truncated)
	return true, nil
}
