package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// JournalCheckpoint returns the commit journal position up to which every
// record is applied and durable outside the journal (0: none yet).
func (c *Catalog) JournalCheckpoint(ctx context.Context) (uint64, error) {
	var lsn int64
	if err := c.db.QueryRowContext(ctx, "SELECT lsn FROM journal_checkpoint WHERE id = 1").Scan(&lsn); err != nil {
		return 0, fmt.Errorf("catalog: journal checkpoint: %w", err)
	}
	return uint64(lsn), nil
}

// SetJournalCheckpoint records, durably, that every journal record up to
// lsn is applied and durable outside the journal. A position below the
// recorded one is ignored: checkpoints only move forward.
func (c *Catalog) SetJournalCheckpoint(ctx context.Context, lsn uint64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE journal_checkpoint SET lsn = $1 WHERE id = 1 AND lsn < $1", int64(lsn))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: set journal checkpoint %d: %w", lsn, err)
	}
	return nil
}
