package hotlog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/streamtier/durable-streams/coldstore/segment"
)

// Commit writes the batch atomically and durably: it returns nil only after
// the transaction is committed and synced to stable storage.
func (l *Log) Commit(ctx context.Context, b *Batch) error {
	if err := l.commit(ctx, b); err != nil {
		return fmt.Errorf("hotlog: commit %s: %w", l.path, err)
	}
	return nil
}

func (l *Log) commit(ctx context.Context, b *Batch) error {
	if b == nil {
		return errors.New("nil batch")
	}
	if err := checkMessages(b.Messages); err != nil {
		return err
	}
	if b.Seal != nil && b.Seal.State != segment.Sealed {
		return fmt.Errorf("new segment %d has state %q, want %q", b.Seal.Seg, b.Seal.State, segment.Sealed)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	if !l.ready.Load() {
		if err := l.materialize(ctx); err != nil {
			return err
		}
	}
	// Prepared outside the transaction, which holds the only writer
	// connection, and only by streams that ever need them.
	var upProd, insSeg *sql.Stmt
	var err error
	if len(b.Messages) >= rowsPerInsert {
		if _, err = l.prepared(ctx, &l.insMsgs, insertMessagesSQL(rowsPerInsert)); err != nil {
			return err
		}
	}
	if len(b.Producers) > 0 {
		if upProd, err = l.prepared(ctx, &l.upProd, upsertProducerSQL); err != nil {
			return err
		}
	}
	if b.Seal != nil {
		if insSeg, err = l.prepared(ctx, &l.insSeg, insertSegmentSQL); err != nil {
			return err
		}
	}
	return l.writeTx(ctx, func(tx *sql.Tx) error {
		if err := l.insertMessages(ctx, tx, b.Messages); err != nil {
			return err
		}
		if len(b.Producers) > 0 {
			up := tx.StmtContext(ctx, upProd)
			for i := range b.Producers {
				p := &b.Producers[i]
				if _, err := up.ExecContext(ctx, p.ID, p.Epoch, p.LastSeq, p.Updated.UnixMilli()); err != nil {
					return fmt.Errorf("upsert producer %q: %w", p.ID, err)
				}
			}
		}
		res, err := tx.StmtContext(ctx, l.updMeta).ExecContext(ctx, metaArgs(&b.Meta)...)
		if err != nil {
			return fmt.Errorf("update meta: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update meta: %w", err)
		} else if n != 1 {
			return fmt.Errorf("update meta: %d rows, want 1", n)
		}
		if s := b.Seal; s != nil {
			if _, err := tx.StmtContext(ctx, insSeg).ExecContext(ctx, segmentArgs(s)...); err != nil {
				return fmt.Errorf("insert segment %d: %w", s.Seg, err)
			}
		}
		return nil
	})
}

// insertMessages inserts ms in tx, rowsPerInsert rows per statement while
// enough remain: a batch of a thousand small messages then costs a few
// dozen statement executions instead of a thousand, each of which passes
// through database/sql and the driver. The caller holds l.mu.
func (l *Log) insertMessages(ctx context.Context, tx *sql.Tx, ms []Message) error {
	for len(ms) >= rowsPerInsert {
		args := l.args[:0]
		for i := range ms[:rowsPerInsert] {
			m := &ms[i]
			args = append(args, m.Pos, m.Seg, messageFlags(m), m.Data)
		}
		_, err := tx.StmtContext(ctx, l.insMsgs).ExecContext(ctx, args...)
		clear(args) // don't keep message data reachable
		l.args = args[:0]
		if err != nil {
			return fmt.Errorf("insert messages at %d: %w", ms[0].Pos, err)
		}
		ms = ms[rowsPerInsert:]
	}
	if len(ms) == 0 {
		return nil
	}
	ins := tx.StmtContext(ctx, l.insMsg)
	for i := range ms {
		m := &ms[i]
		if _, err := ins.ExecContext(ctx, m.Pos, m.Seg, messageFlags(m), m.Data); err != nil {
			return fmt.Errorf("insert message at %d: %w", m.Pos, err)
		}
	}
	return nil
}

// writeTx runs fn in a write transaction on the writer connection and
// commits it. The caller holds l.mu.
func (l *Log) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// Statements of tx close with it.
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// MarkUploaded records that segment seg is uploaded (object key and
// checksum, state [segment.Uploaded]) and deletes its message rows, in one
// transaction.
//
// The freed pages stay in the file, where the next appends reuse them, so
// a stream that is written steadily keeps a file of about the size of its
// hot data plus a segment, and a trim costs one small transaction. Only
// when the free space exceeds both [Options.ReclaimBytes] and the space
// the data takes (after a burst, or a backlog of uploads, drains) does
// MarkUploaded return it to the file system, up to a bounded step per
// call; [Log.Compact] returns all of it. A failure to reclaim is not
// reported: the upload is recorded, and the next call retries.
func (l *Log) MarkUploaded(ctx context.Context, seg int64, objectKey string, checksum uint32) error {
	if err := l.markUploaded(ctx, seg, objectKey, checksum); err != nil {
		return fmt.Errorf("hotlog: mark segment %d uploaded in %s: %w", seg, l.path, err)
	}
	return nil
}

func (l *Log) markUploaded(ctx context.Context, seg int64, objectKey string, checksum uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	if !l.ready.Load() {
		return errors.New("no such segment")
	}
	err := l.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"UPDATE segments SET state = ?, object_key = ?, checksum = ? WHERE seg = ?",
			string(segment.Uploaded), objectKey, int64(checksum), seg)
		if err != nil {
			return fmt.Errorf("update segment: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update segment: %w", err)
		} else if n == 0 {
			return errors.New("no such segment")
		}
		if _, err := tx.ExecContext(ctx, deleteSegmentSQL, seg); err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	free, pages, err := l.pageCounts(ctx)
	if err == nil && free*l.pageSize >= l.reclaimBytes && 2*free >= pages {
		l.reclaim(ctx, max(reclaimStepBytes/l.pageSize, 1))
	}
	return nil
}

// reclaimStepBytes bounds the free space one MarkUploaded returns to the
// file system. Returning a page moves the last page of the file into it
// (when that one is in use), so the step bounds the copying, and the stall
// of the stream's appends, per trim.
const reclaimStepBytes = 64 << 20

// Compact returns all free pages to the file system and empties the WAL.
// It is meant for a stream going idle: the copying it may do (up to the
// size of the free space) is then off every append's path.
func (l *Log) Compact(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("hotlog: compact %s: %w", l.path, errClosed)
	}
	if !l.ready.Load() {
		return nil // nothing written, nothing to return
	}
	free, _, err := l.pageCounts(ctx)
	if err != nil {
		return fmt.Errorf("hotlog: compact %s: %w", l.path, err)
	}
	if free > 0 {
		l.reclaim(ctx, 0)
	}
	return nil
}

// pageCounts returns the number of pages on the file's free list and in
// the whole file. The caller holds l.mu.
func (l *Log) pageCounts(ctx context.Context) (free, pages int64, err error) {
	if err := l.wdb.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, 0, fmt.Errorf("read free list: %w", err)
	}
	if err := l.wdb.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, 0, fmt.Errorf("read page count: %w", err)
	}
	return free, pages, nil
}

// reclaim returns up to pages free pages (all of them if pages is 0) to
// the file system. The caller holds l.mu.
//
// In WAL mode the vacuumed database file only shrinks when the WAL is
// checkpointed, and the WAL file itself only shrinks when a TRUNCATE
// checkpoint resets it; otherwise it keeps up to journal_size_limit bytes
// for reuse. A TRUNCATE checkpoint waits, under busy_timeout, for readers
// of older snapshots, and a ReadSegment can hold one for long while appends
// queue up behind this call; so it runs with busy_timeout 0 and simply
// leaves whatever it cannot do to the automatic checkpoints.
func (l *Log) reclaim(ctx context.Context, pages int64) {
	c, err := l.wdb.Conn(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", pages))
	if _, err := c.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return
	}
	_, _ = c.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	if _, err := c.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMillis)); err != nil {
		// Do not leave a connection without its busy timeout in the pool.
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
}
