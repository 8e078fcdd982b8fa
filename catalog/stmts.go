package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// stmts are the statements that run on every stream request or creation,
// prepared once for the life of the catalog: SQLite parses an unprepared
// statement on every run, which cost about as much as running it.
//
// database/sql keeps a statement prepared on every connection it ran on,
// and a transaction reuses that (tx.StmtContext, through [Catalog.inTx]);
// the group commit on SQLite always runs on one connection (see writer),
// so there each statement is parsed once, and again only after a failed
// group replaced the connection.
type stmts struct {
	getByPath     *sql.Stmt // Get
	insertStream  *sql.Stmt // insert
	pathTaken     *sql.Stmt // insert of a fork
	addRef        *sql.Stmt // insert of a fork
	idsReserved   *sql.Stmt // insert of an id this process did not reserve
	setCatalogLSN *sql.Stmt // a group of journaled writes
	touch         *sql.Stmt // touchManyJ
	// The group commit's savepoints (SQLite only: PostgreSQL runs every
	// write in its own transaction).
	savepoint, rollbackTo, release *sql.Stmt

	all []*sql.Stmt // to close
}

const getByPathSQL = "SELECT " + streamColumns + " FROM streams WHERE path = ?"

// prepareStmts prepares the statements on db.
func prepareStmts(ctx context.Context, db *sql.DB, pg bool) (*stmts, error) {
	type prep struct {
		dst   **sql.Stmt
		query string
	}
	s := &stmts{}
	list := []prep{
		{&s.getByPath, getByPathSQL},
		{&s.insertStream, `INSERT INTO streams (id, path, content_type, ttl_ms, expires_at,
			last_access, closed, parent_id, fork_offset, fork_sub_offset, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.pathTaken, "SELECT 1 FROM streams WHERE path = ?"},
		{&s.addRef, "UPDATE streams SET refcount = refcount + 1 WHERE id = ? AND deleted_at IS NULL"},
		{&s.idsReserved, "SELECT next FROM id_alloc WHERE id = 1"},
		{&s.setCatalogLSN, "UPDATE journal_nodes SET catalog_lsn = $1 WHERE node = '' AND catalog_lsn < $1"},
		{&s.touch, "UPDATE streams SET last_access = ?1 WHERE id = ?2 AND last_access < ?1"},
	}
	if !pg {
		list = append(list, prep{&s.savepoint, "SAVEPOINT w"},
			prep{&s.rollbackTo, "ROLLBACK TO w"}, prep{&s.release, "RELEASE w"})
	}
	for _, p := range list {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = st
		s.all = append(s.all, st)
	}
	return s, nil
}

func (s *stmts) close() {
	for _, st := range s.all {
		st.Close()
	}
}

// groupStmts are the statements bound to the transaction of the running
// group commit (SQLite), each bound once per group rather than once per
// write: binding allocates and takes the pool's lock. Only the goroutine
// holding wlock uses them.
type groupStmts struct {
	tx    *sql.Tx
	bound map[*sql.Stmt]*sql.Stmt
}

// inTx returns st for use in tx.
func (c *Catalog) inTx(ctx context.Context, tx *sql.Tx, st *sql.Stmt) *sql.Stmt {
	if c.pg || tx != c.group.tx {
		// PostgreSQL runs every write in its own transaction, concurrently.
		return tx.StmtContext(ctx, st)
	}
	b, ok := c.group.bound[st]
	if !ok {
		// Bound for every write of the group, so not with this write's
		// cancellation: bound with an ended context, the statement would
		// fail the group's later writes with that error. The write's own
		// context still governs the statement's runs.
		b = tx.StmtContext(context.WithoutCancel(ctx), st)
		c.group.bound[st] = b
	}
	return b
}

// beginGroup makes tx the group commit's transaction for inTx until the
// returned function is called. The caller holds wlock.
func (c *Catalog) beginGroup(tx *sql.Tx) (end func()) {
	if c.group.bound == nil {
		c.group.bound = map[*sql.Stmt]*sql.Stmt{}
	}
	c.group.tx = tx
	return func() {
		c.group.tx = nil
		clear(c.group.bound)
	}
}
