package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The catalog and the commit journal (docs/journal.md). On SQLite a
// catalog write that a durable journal record carries commits without a
// sync of its own: the record makes it durable, and after a crash the
// sequencer applies the records the catalog lost again. Such a write
// also advances the catalog's applied journal position (catalog_lsn of
// journal_nodes) in its transaction, so the position is lost exactly
// when the writes are. A write the journal does not carry (id blocks, the
// segment index, leases, a checkpoint) syncs, and with it every unsynced
// write before it in the WAL.
//
// On PostgreSQL every commit is durable by itself and shared by the nodes
// using the database; only the journal checkpoint is per node there.

// Journaled says that a catalog write is carried by a commit journal
// record that is already durable.
type Journaled struct {
	// LSN is the record that carries the write. A write whose LSN is at
	// or below the last checkpoint committed is synced anyway: recovery
	// would not redo it.
	LSN uint64
	// Applied is the catalog's applied position after the write: every
	// record up to Applied that changes the catalog is applied by this
	// write or by one committed before it. It is at most LSN; 0 leaves
	// the position alone.
	Applied uint64
}

// JournalPositions are one node's positions in its commit journal.
type JournalPositions struct {
	// Checkpoint: every record up to it is applied to the hot logs and
	// the catalog and durable there (0: none yet).
	Checkpoint uint64
	// Catalog: every record up to it that changes the catalog is applied
	// to the catalog (never below Checkpoint on SQLite; unused on
	// PostgreSQL, whose commits need no replay).
	Catalog uint64
}

// DefersSync reports whether writes carried by the journal (see
// [Journaled]) commit without a sync, so that a crash can lose them and
// the journal's owner has to apply its records again (SQLite).
func (c *Catalog) DefersSync() bool { return !c.pg }

// positionsKey is the journal_nodes row of node: its own on PostgreSQL,
// the single node's row, named "", on SQLite.
func (c *Catalog) positionsKey(node string) string {
	if c.pg {
		return node
	}
	return ""
}

// JournalPositions returns node's journal positions, adding its row if it
// has none yet.
func (c *Catalog) JournalPositions(ctx context.Context, node string) (JournalPositions, error) {
	key := c.positionsKey(node)
	var p JournalPositions
	err := c.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO journal_nodes (node) VALUES ($1) ON CONFLICT (node) DO NOTHING", key); err != nil {
			return err
		}
		var ck, cat int64
		err := tx.QueryRowContext(ctx, "SELECT checkpoint_lsn, catalog_lsn FROM journal_nodes WHERE node = $1", key).Scan(&ck, &cat)
		p = JournalPositions{Checkpoint: uint64(ck), Catalog: uint64(cat)}
		return err
	})
	if err != nil {
		return JournalPositions{}, fmt.Errorf("catalog: journal positions of %q: %w", node, err)
	}
	c.raiseCheckpointed(p.Checkpoint)
	return p, nil
}

// raiseCheckpointed moves the committed checkpoint known to unsyncedOK
// forward to lsn.
func (c *Catalog) raiseCheckpointed(lsn uint64) {
	for {
		cur := c.checkpointed.Load()
		if lsn <= cur || c.checkpointed.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

// JournalCheckpoint returns node's journal checkpoint: the position up to
// which every record is applied and durable outside the journal (0: none
// yet).
func (c *Catalog) JournalCheckpoint(ctx context.Context, node string) (uint64, error) {
	p, err := c.JournalPositions(ctx, node)
	return p.Checkpoint, err
}

// SetJournalCheckpoint records, durably, that every record of node's
// journal up to lsn is applied and durable outside the journal. The
// commit syncs, so every catalog write committed before it is durable
// too; the caller must have applied the catalog's records up to lsn
// first. A position below the recorded one is ignored: checkpoints only
// move forward.
func (c *Catalog) SetJournalCheckpoint(ctx context.Context, node string, lsn uint64) error {
	key := c.positionsKey(node)
	err := c.enqueue(ctx, &writeReq{ckpt: lsn, fn: func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO journal_nodes (node, checkpoint_lsn, catalog_lsn) VALUES ($1, $2, $2)
			ON CONFLICT (node) DO UPDATE SET
			checkpoint_lsn = CASE WHEN journal_nodes.checkpoint_lsn < $2 THEN $2 ELSE journal_nodes.checkpoint_lsn END,
			catalog_lsn = CASE WHEN journal_nodes.catalog_lsn < $2 THEN $2 ELSE journal_nodes.catalog_lsn END`, key, int64(lsn))
		return err
	}})
	if err != nil {
		return fmt.Errorf("catalog: set journal checkpoint %d of %q: %w", lsn, node, err)
	}
	return nil
}

// setCatalogLSN advances the applied position of the single node (SQLite)
// in the transaction of the writes that reached it.
func (c *Catalog) setCatalogLSN(ctx context.Context, tx *sql.Tx, lsn uint64) error {
	_, err := c.inTx(ctx, tx, c.stmts.setCatalogLSN).ExecContext(ctx, int64(lsn))
	if err != nil {
		return fmt.Errorf("applied journal position %d: %w", lsn, err)
	}
	return nil
}

// InsertJournaled is [Catalog.Insert] for a creation that journal record
// jr carries.
func (c *Catalog) InsertJournaled(ctx context.Context, s Stream, jr Journaled) error {
	return c.insertJ(ctx, s, jr)
}

// DeleteJournaled is [Catalog.Delete] at time at (zero: now) for a
// deletion that journal record jr carries.
func (c *Catalog) DeleteJournaled(ctx context.Context, id int64, at time.Time, jr Journaled) (DeleteResult, error) {
	return c.deleteJ(ctx, id, at, jr)
}

// SetClosedJournaled is [Catalog.SetClosed] for a close that journal
// record jr carries.
func (c *Catalog) SetClosedJournaled(ctx context.Context, id int64, jr Journaled) error {
	return c.setClosedJ(ctx, id, jr)
}

// TouchManyJournaled is [Catalog.TouchMany] for access times that
// journal record jr carries.
func (c *Catalog) TouchManyJournaled(ctx context.Context, access map[int64]time.Time, jr Journaled) error {
	return c.touchManyJ(ctx, access, jr)
}
