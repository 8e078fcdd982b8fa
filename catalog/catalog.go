// Package catalog keeps the directory of durable streams: which path names
// which stream, the stream's expiry and closure, the fork relationships
// between streams, the queue of deleted streams whose files and objects
// still have to be removed, and the index of sealed segments (see
// segments.go). It is the only code that runs SQL on its database.
//
// The catalog is one small SQLite database ([Open]) or, in cluster mode, a
// PostgreSQL database that every node shares ([OpenPostgres]; see
// postgres.go): the same methods with the same semantics and errors on
// both. A stream's data is not in it: each stream keeps its data in files
// named after its id, which is why ids are never reused.
//
// Forks and deletion: a fork reads its parent's data up to the fork point,
// so a parent cannot disappear while forks of it exist. Every stream counts
// the rows that name it as their parent (its RefCount). Deleting a stream
// whose RefCount is positive only marks it deleted (a soft delete): the row
// and the data stay, and the path stays occupied. Deleting a stream whose
// RefCount is zero removes it for real (a hard delete) and decrements its
// parent's RefCount; a soft-deleted parent that reaches zero is hard-deleted
// in turn, and so on up the chain. Every hard-deleted id is queued for
// garbage collection ([Catalog.PendingGC]).
//
// All times are stored with millisecond precision.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/internal/vfs"
	"github.com/streamtier/durable-streams/migrations"

	"github.com/streamtier/durable-streams/internal/memdb"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
)

// Errors returned (wrapped) by [Catalog] methods; test for them with
// [errors.Is].
var (
	// ErrNotFound means no row, live or soft-deleted, has the path or id.
	ErrNotFound = errors.New("catalog: stream not found")
	// ErrExists means a row, live or soft-deleted, already has the path.
	ErrExists = errors.New("catalog: path in use")
	// ErrParentGone means a fork's parent does not exist or is
	// soft-deleted, so the fork cannot be created.
	ErrParentGone = errors.New("catalog: fork parent missing or deleted")
	// ErrSoftDeleted means the stream was deleted but its row remains
	// because forks of it still exist.
	ErrSoftDeleted = errors.New("catalog: stream soft-deleted")
)

// Stream is one row of the catalog.
type Stream struct {
	ID            int64
	Path          string
	ContentType   string
	TTL           time.Duration // sliding time to live after LastAccess; 0 = none
	ExpiresAt     time.Time     // absolute expiry; zero = none
	LastAccess    time.Time
	Closed        bool
	ParentID      int64  // 0 = not a fork
	ForkOffset    string // the fork offset as requested/resolved (opaque to the catalog); "" for non-forks
	ForkSubOffset int64
	RefCount      int64     // rows, live or soft-deleted, whose ParentID is ID
	DeletedAt     time.Time // zero = live; non-zero = soft-deleted
	CreatedAt     time.Time
}

// Deadline returns when the stream expires and whether it expires at all.
// With both a TTL and an absolute expiry, the earlier one wins.
func (s Stream) Deadline() (time.Time, bool) {
	var d time.Time
	ok := false
	if s.TTL > 0 {
		d, ok = s.LastAccess.Add(s.TTL), true
	}
	if !s.ExpiresAt.IsZero() && (!ok || s.ExpiresAt.Before(d)) {
		d, ok = s.ExpiresAt, true
	}
	return d, ok
}

// DeleteResult reports what [Catalog.Delete] did.
type DeleteResult struct {
	Soft    bool    // the stream was soft-deleted (forks of it exist)
	HardIDs []int64 // ids removed for real, to clean up: the stream itself unless Soft, then its cascaded ancestors, child first
}

// idBlock is how many ids AllocateID reserves per write to id_alloc. Ids
// of a block not handed out before a restart are skipped, never reused.
const idBlock = 1000

// maxConns bounds the connection pool. Writers are serialized anyway, and
// every SQLite connection carries its own page cache.
const maxConns = 8

// pragmas apply to every connection, since database/sql may open a new one
// at any time and only the DSN reaches all of them. synchronous=FULL makes
// an acknowledged commit survive power loss (group commits set it per
// transaction on their connection, see runGroup); foreign_keys backs up
// the refcount logic.
var pragmas = []string{
	"busy_timeout(10000)",
	"foreign_keys(ON)",
	"journal_mode(WAL)",
	"synchronous(FULL)",
}

// Catalog is the stream directory. It is safe for concurrent use, and on
// PostgreSQL also across processes sharing the database.
type Catalog struct {
	db  *sql.DB
	now func() time.Time
	pg  bool // the database is PostgreSQL (see postgres.go)

	// holder, if set, names the lease under which this node writes
	// segment index rows (GuardSegmentWrites); set before use, then read
	// only.
	holder func(stream int64) (Holder, bool)

	// wlock is held by the goroutine committing a group of writes (see
	// write): this process's write transactions queue in Go, honouring
	// their contexts, instead of spinning in SQLite's busy handler.
	wlock chan struct{}

	// pendMu guards pending, the writes waiting for the next group commit.
	pendMu  sync.Mutex
	pending []*writeReq

	// wconn is the connection every group commit runs on (nil until the
	// first, or after one failed), and wsync its synchronous setting:
	// SQLite takes it per connection and refuses to change it inside a
	// transaction. Both are guarded by wlock.
	wconn *sql.Conn
	wsync string
	// checkpointed is the highest commit journal checkpoint committed
	// (see Journaled); it changes only while wlock is held.
	checkpointed atomic.Uint64

	// idLock guards next and the changes of limit, the unused part of
	// the reserved id block. It is a channel so that waiting for it
	// honors the context while the holder refills the block from the
	// database. limit is atomic for insert, which reads it without
	// idLock: every id below it is reserved in id_alloc.
	idLock chan struct{}
	next   int64
	limit  atomic.Int64

	// stmts are the statements every stream request or creation runs,
	// prepared once (every stream request looks its stream up, every
	// creation inserts a row); group, guarded by wlock, binds them to the
	// running group commit's transaction.
	stmts *stmts
	group groupStmts

	// paths, on SQLite, tells paths that have no row apart without a
	// query (see pathFilter); nil on PostgreSQL.
	paths *pathFilter
}

// Open opens the catalog database at path, creating it and its parent
// directories if needed, and brings its schema up to date. The database
// uses WAL journaling with synchronous=FULL, except for the writes the
// commit journal carries (see Journaled).
func Open(ctx context.Context, path string) (*Catalog, error) {
	c, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	return c, nil
}

func open(ctx context.Context, path string) (*Catalog, error) {
	// An in-memory database (package memdb) lives until the server drops
	// it; a file needs its directory, and a durable entry in it if new.
	mem := memdb.Is(path)
	dir, created := "", false
	if mem {
		if err := memdb.Keep(ctx, path); err != nil {
			return nil, err
		}
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		path, dir = abs, filepath.Dir(abs)
		if err := mkdirAllSync(dir); err != nil {
			return nil, err
		}
		_, err = os.Stat(abs)
		created = errors.Is(err, fs.ErrNotExist)
	}

	name, err := dsn(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	if err := initialize(ctx, db, !mem); err != nil {
		db.Close()
		return nil, err
	}
	if created {
		// The new file's directory entry must be durable before any
		// commit in it is acknowledged.
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, err
		}
	}
	return newCatalog(ctx, db, false)
}

// newCatalog returns the catalog on db, whose schema is up to date. It
// closes db if it fails.
func newCatalog(ctx context.Context, db *sql.DB, pg bool) (*Catalog, error) {
	st, err := prepareStmts(ctx, db, pg)
	if err != nil {
		db.Close()
		return nil, err
	}
	c := &Catalog{
		db:     db,
		now:    time.Now,
		pg:     pg,
		wlock:  make(chan struct{}, 1),
		idLock: make(chan struct{}, 1),
		stmts:  st,
	}
	if !pg {
		c.paths = newPathFilter(db)
	}
	return c, nil
}

// initialize brings the schema up to date; wal requires the file to be in
// WAL mode (an in-memory database keeps its journal in memory instead).
func initialize(ctx context.Context, db *sql.DB, wal bool) error {
	if !wal {
		return migrations.Apply(ctx, db)
	}
	// SQLite silently keeps the old journal mode where WAL is impossible
	// (some network file systems); the durability and concurrency
	// reasoning here assumes WAL, so refuse instead.
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL", mode)
	}
	return migrations.Apply(ctx, db)
}

// dsn returns the modernc.org/sqlite data source name for the absolute
// path abs. The path travels as an escaped file: URI so that '?', '#' and
// '%' in directory names survive. _txlock=immediate makes every
// transaction take the write lock at BEGIN: a deferred transaction that
// reads and then writes can fail with SQLITE_BUSY at the upgrade, which
// busy_timeout does not retry.
func dsn(path string) (string, error) {
	q := url.Values{}
	q.Set("mode", "rwc")
	q.Set("_txlock", "immediate")
	for _, p := range pragmas {
		if p == "journal_mode(WAL)" && memdb.Is(path) {
			continue
		}
		q.Add("_pragma", p)
	}
	return memdb.URI(path, q)
}

// Close closes the database.
func (c *Catalog) Close() error {
	if c.paths != nil {
		c.paths.close()
	}
	c.stmts.close()
	c.wlock <- struct{}{}
	if c.wconn != nil {
		c.wconn.Close()
		c.wconn = nil
	}
	<-c.wlock
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("catalog: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers (the readiness check).
func (c *Catalog) Ping(ctx context.Context) error {
	if err := c.db.PingContext(ctx); err != nil {
		return fmt.Errorf("catalog: ping: %w", err)
	}
	return nil
}

// writeReq is one write waiting for a group commit.
type writeReq struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	jr   Journaled  // zero: not covered by the commit journal
	ckpt uint64     // a journal checkpoint this write records (see SetJournalCheckpoint)
	done chan error // buffered; receives the write's outcome once
}

// write runs fn in a write transaction and commits it if fn succeeds. It
// returns only once the outcome is durable.
//
// Writes group-commit: whoever finds the write lock free runs every write
// queued by then in one transaction, each inside its own savepoint so that
// a failing fn undoes only its own changes, and commits them with one
// fsync. Each fn sees the effects of the writes before it, as if they ran
// one after another. Creating streams from many clients at once otherwise
// waits for one catalog fsync per stream, and those fsyncs are slow while
// the same clients create files.
//
// On PostgreSQL every write is its own transaction instead (see
// postgres.go).
func (c *Catalog) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return c.enqueue(ctx, &writeReq{fn: fn})
}

// enqueue is write for a prepared request: with req.jr set, the group
// may commit without a sync (see Journaled).
func (c *Catalog) enqueue(ctx context.Context, req *writeReq) error {
	if c.pg {
		// Durable by itself: nothing here depends on the journal.
		return c.writePostgres(ctx, req.fn)
	}
	req.ctx, req.done = ctx, make(chan error, 1)
	c.pendMu.Lock()
	c.pending = append(c.pending, req)
	c.pendMu.Unlock()
	select {
	case err := <-req.done:
		return err
	case c.wlock <- struct{}{}:
		// The writes of a group mostly arrive together: the creations
		// whose journal records one fsync made durable wake at once.
		// Yielding once lets those already runnable queue theirs before
		// the group is taken; without it the first of them committed
		// alone, and groups held two writes on average under create-64
		// (eight with it), each group paying a transaction.
		runtime.Gosched()
		c.commitPending()
		<-c.wlock
		// This group or an earlier one, which released the lock only
		// after answering, has taken req.
		return <-req.done
	case <-ctx.Done():
		if c.unqueue(req) {
			return ctx.Err()
		}
		// A group took it already: only its outcome is the truth.
		return <-req.done
	}
}

// unqueue removes req from the pending writes and reports whether it was
// still there.
func (c *Catalog) unqueue(req *writeReq) bool {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	for i, r := range c.pending {
		if r == req {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return true
		}
	}
	return false
}

// commitPending runs and commits every pending write as one group and
// delivers each outcome. The caller holds wlock.
func (c *Catalog) commitPending() {
	c.pendMu.Lock()
	group := c.pending
	c.pending = nil
	c.pendMu.Unlock()
	live := group[:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	results := make([]error, len(live))
	err := c.runGroup(live, results)
	if err != nil {
		err = c.rerunGroup(live, results, err)
	}
	for i, r := range live {
		if results[i] == nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}

// rerunGroup runs once more, in a new transaction, the writes of a group
// that failed with err after some of its writes failed on their own: the
// failure of a write may have taken the group's transaction with it
// (SQLite rolls a transaction back whole when a write in it is
// interrupted, as when its caller's context ends), and the others must
// not fail for it. Nothing of the group was committed, and a write's fn
// may run again (PostgreSQL retries them too). It returns the outcome of
// the writes without their own.
func (c *Catalog) rerunGroup(group []*writeReq, results []error, err error) error {
	var rest []*writeReq
	var at []int
	for i, r := range group {
		if results[i] == nil {
			rest = append(rest, r)
			at = append(at, i)
		}
	}
	if len(rest) == 0 || len(rest) == len(group) {
		return err
	}
	restResults := make([]error, len(rest))
	err = c.runGroup(rest, restResults)
	for j, i := range at {
		results[i] = restResults[j]
	}
	return err
}

// runGroup runs the writes of a group in one transaction and commits it.
// A write whose fn fails gets its error in results and leaves nothing
// behind; the returned error (begin, savepoint handling or commit) is the
// outcome of every write without one.
//
// The group commits without a sync (synchronous=NORMAL) only if the
// commit journal covers every write in it (see Journaled); then it also
// advances the catalog's applied journal position, in the same
// transaction. Any other write makes the group, and with it every
// unsynced group before it in the WAL, durable (synchronous=FULL).
func (c *Catalog) runGroup(group []*writeReq, results []error) error {
	// Not a caller's context: cancelling it would roll back the others'
	// writes too.
	ctx := context.Background()
	full := false
	for _, r := range group {
		full = full || !c.unsyncedOK(r.jr)
	}
	err := c.runGroupOn(ctx, full, group, results)
	if err != nil && c.wconn != nil {
		// The connection may be broken or inside a transaction: start
		// the next group on a fresh one.
		c.wconn.Close()
		c.wconn = nil
	}
	return err
}

// unsyncedOK reports whether a write covered by jr may commit without a
// sync. A record at or below a committed checkpoint must not: recovery
// starts after the checkpoint and would not redo the change, which only a
// later synced commit would make durable.
func (c *Catalog) unsyncedOK(jr Journaled) bool {
	return jr.LSN > 0 && jr.LSN > c.checkpointed.Load()
}

func (c *Catalog) runGroupOn(ctx context.Context, full bool, group []*writeReq, results []error) error {
	conn, err := c.writer(ctx, full)
	if err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	defer c.beginGroup(tx)()
	var applied uint64
	committed := false
	for i, r := range group {
		single := len(group) == 1
		if !single {
			if _, err := c.inTx(ctx, tx, c.stmts.savepoint).ExecContext(ctx); err != nil {
				return err
			}
		}
		if err := r.fn(tx); err != nil {
			results[i] = err
			if !single {
				if _, err := c.inTx(ctx, tx, c.stmts.rollbackTo).ExecContext(ctx); err != nil {
					return err
				}
			}
		} else {
			committed = true
			applied = max(applied, r.jr.Applied)
		}
		if !single {
			if _, err := c.inTx(ctx, tx, c.stmts.release).ExecContext(ctx); err != nil {
				return err
			}
		}
	}
	if !committed {
		return nil
	}
	if applied > 0 {
		if err := c.setCatalogLSN(ctx, tx, applied); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for i, r := range group {
		if results[i] == nil {
			c.raiseCheckpointed(r.ckpt)
		}
	}
	return nil
}

// writer returns the connection group commits run on, set to sync its
// commits (full) or not. The caller holds wlock.
func (c *Catalog) writer(ctx context.Context, full bool) (*sql.Conn, error) {
	if c.wconn == nil {
		conn, err := c.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		c.wconn, c.wsync = conn, ""
	}
	want := "NORMAL"
	if full {
		want = "FULL"
	}
	if c.wsync != want {
		if _, err := c.wconn.ExecContext(ctx, "PRAGMA synchronous = "+want); err != nil {
			return nil, err
		}
		c.wsync = want
	}
	return c.wconn, nil
}

// AllocateID returns a stream id that has never been returned before, also
// not by an earlier process using the same database. Ids are positive.
//
// Ids are reserved in blocks, so allocating is usually free of I/O, and
// ids reserved but not handed out before Close are skipped.
func (c *Catalog) AllocateID(ctx context.Context) (int64, error) {
	select {
	case c.idLock <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("catalog: allocate id: %w", ctx.Err())
	}
	defer func() { <-c.idLock }()
	if c.next == c.limit.Load() {
		var first int64
		err := c.write(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx,
				"UPDATE id_alloc SET next = next + ?1 WHERE id = 1 RETURNING next - ?1", idBlock).Scan(&first)
		})
		if err != nil {
			return 0, fmt.Errorf("catalog: allocate id: %w", err)
		}
		c.next = first
		c.limit.Store(first + idBlock)
	}
	id := c.next
	c.next++
	return id, nil
}

// Insert adds s as a live stream. s.ID must come from [Catalog.AllocateID];
// s.RefCount and s.DeletedAt are ignored (a new stream has no forks and is
// live). A zero s.CreatedAt means now, and a zero s.LastAccess means
// s.CreatedAt.
//
// Insert fails with [ErrExists] if a row, live or soft-deleted, has
// s.Path. If s.ParentID is not 0, the parent must exist and not be
// soft-deleted, else Insert fails with [ErrParentGone]; the parent's
// RefCount is incremented in the same transaction.
func (c *Catalog) Insert(ctx context.Context, s Stream) error {
	return c.insertJ(ctx, s, Journaled{})
}

func (c *Catalog) insertJ(ctx context.Context, s Stream, jr Journaled) error {
	if err := c.insert(ctx, s, jr); err != nil {
		return fmt.Errorf("catalog: insert %q: %w", s.Path, err)
	}
	return nil
}

func (c *Catalog) insert(ctx context.Context, s Stream, jr Journaled) error {
	switch {
	case s.ID <= 0:
		return fmt.Errorf("invalid id %d", s.ID)
	case s.Path == "":
		return errors.New("empty path")
	case s.TTL < 0:
		return fmt.Errorf("negative TTL %v", s.TTL)
	case s.ParentID < 0:
		return fmt.Errorf("invalid parent id %d", s.ParentID)
	case s.ParentID == 0 && (s.ForkOffset != "" || s.ForkSubOffset != 0):
		return errors.New("fork offset without a parent")
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = c.now()
	}
	if s.LastAccess.IsZero() {
		s.LastAccess = s.CreatedAt
	}
	var ttl sql.NullInt64
	if s.TTL > 0 {
		// Stored in whole milliseconds like every time here; a TTL under
		// one millisecond becomes one rather than none.
		ttl = sql.NullInt64{Int64: max(s.TTL.Milliseconds(), 1), Valid: true}
	}
	var parent sql.NullInt64
	if s.ParentID != 0 {
		parent = sql.NullInt64{Int64: s.ParentID, Valid: true}
	}
	if c.paths != nil {
		c.paths.add(s.Path) // before the row can exist
	}
	return c.enqueue(ctx, &writeReq{jr: jr, fn: func(tx *sql.Tx) error {
		// An id at or beyond the reserved range would be handed out again
		// by a later AllocateID. The ids of this process's own blocks
		// are below it (the reserved range only grows); others, such as
		// a creation replayed from the commit journal, are looked up.
		if s.ID >= c.limit.Load() {
			var next int64
			if err := c.inTx(ctx, tx, c.stmts.idsReserved).QueryRowContext(ctx).Scan(&next); err != nil {
				return err
			}
			if s.ID >= next {
				return fmt.Errorf("id %d was not allocated", s.ID)
			}
		}
		if parent.Valid {
			// A path in use is reported ahead of a parent that is gone.
			var one int
			switch err := c.inTx(ctx, tx, c.stmts.pathTaken).QueryRowContext(ctx, s.Path).Scan(&one); {
			case err == nil:
				return ErrExists
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			res, err := c.inTx(ctx, tx, c.stmts.addRef).ExecContext(ctx, s.ParentID)
			if err := requireChange(res, err, ErrParentGone); err != nil {
				return err
			}
		}
		// The path's UNIQUE constraint finds a path in use: one lookup
		// by path per creation, the insert's own.
		_, err := c.inTx(ctx, tx, c.stmts.insertStream).ExecContext(ctx,
			s.ID, s.Path, s.ContentType, ttl, millis(s.ExpiresAt),
			s.LastAccess.UnixMilli(), s.Closed, parent, s.ForkOffset, s.ForkSubOffset, s.CreatedAt.UnixMilli())
		if isPathConflict(err) {
			return ErrExists
		}
		return err
	}})
}

// sqliteConstraint is SQLite's primary result code SQLITE_CONSTRAINT.
const sqliteConstraint = 19

// isPathConflict reports whether err is the database refusing a second
// row with the same path (the UNIQUE constraint on streams.path): on
// PostgreSQL another node may have inserted it too.
func isPathConflict(err error) bool {
	if err == nil {
		return false
	}
	// The driver reports the extended result code, whose low byte is the
	// primary one; SQLite names the constraint only in the message.
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqliteConstraint && strings.Contains(se.Error(), "UNIQUE constraint failed: streams.path")
	}
	return isPostgresPathConflict(err)
}

// execAffecting runs query in tx and fails with none if it changed no
// row: the row it is about is gone or not as the write requires.
func execAffecting(ctx context.Context, tx *sql.Tx, none error, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	return requireChange(res, err, none)
}

// requireChange is the outcome of a write that returned res and err,
// failing with none if it changed no row.
func requireChange(res sql.Result, err, none error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return none
	}
	return nil
}

// streamColumns is the column list that scanStream reads, in order.
const streamColumns = `id, path, content_type, ttl_ms, expires_at, last_access, closed,
	parent_id, fork_offset, fork_sub_offset, refcount, deleted_at, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanStream(r scanner) (Stream, error) {
	var (
		s                             Stream
		ttl, expires, parent, deleted sql.NullInt64
		lastAccess, createdAt         int64
	)
	err := r.Scan(&s.ID, &s.Path, &s.ContentType, &ttl, &expires, &lastAccess, &s.Closed,
		&parent, &s.ForkOffset, &s.ForkSubOffset, &s.RefCount, &deleted, &createdAt)
	if err != nil {
		return Stream{}, err
	}
	s.TTL = time.Duration(ttl.Int64) * time.Millisecond
	s.ExpiresAt = fromMillis(expires)
	s.LastAccess = time.UnixMilli(lastAccess)
	s.ParentID = parent.Int64
	s.DeletedAt = fromMillis(deleted)
	s.CreatedAt = time.UnixMilli(createdAt)
	return s, nil
}

func scanStreams(rows *sql.Rows) ([]Stream, error) {
	defer rows.Close()
	var out []Stream
	for rows.Next() {
		s, err := scanStream(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the stream at path, live or soft-deleted, or [ErrNotFound].
// On SQLite a path that never had a row is usually known as such without
// a query (see pathFilter).
func (c *Catalog) Get(ctx context.Context, path string) (Stream, error) {
	if c.paths != nil && !c.paths.mayHave(path) {
		return Stream{}, fmt.Errorf("catalog: get %q: %w", path, ErrNotFound)
	}
	s, err := scanStream(c.stmts.getByPath.QueryRowContext(ctx, path))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Stream{}, fmt.Errorf("catalog: get %q: %w", path, err)
	}
	return s, nil
}

// GetByID returns the stream with id, live or soft-deleted, or
// [ErrNotFound].
func (c *Catalog) GetByID(ctx context.Context, id int64) (Stream, error) {
	s, err := scanStream(c.db.QueryRowContext(ctx, "SELECT "+streamColumns+" FROM streams WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Stream{}, fmt.Errorf("catalog: get id %d: %w", id, err)
	}
	return s, nil
}

// Delete deletes stream id. If forks of it exist (RefCount > 0) the stream
// is soft-deleted; otherwise it is hard-deleted, and so is every
// soft-deleted ancestor whose RefCount drops to zero as a result. Hard
// deleted ids are queued for garbage collection in the same transaction.
//
// Delete fails with [ErrNotFound] if id does not exist and with
// [ErrSoftDeleted] if it is already soft-deleted.
func (c *Catalog) Delete(ctx context.Context, id int64) (DeleteResult, error) {
	return c.deleteJ(ctx, id, time.Time{}, Journaled{})
}

// deleteJ is Delete at time at (zero: now), covered by jr.
func (c *Catalog) deleteJ(ctx context.Context, id int64, at time.Time, jr Journaled) (DeleteResult, error) {
	var res DeleteResult
	err := c.enqueue(ctx, &writeReq{jr: jr, fn: func(tx *sql.Tx) error {
		res = DeleteResult{}
		if at.IsZero() {
			at = c.now()
		}
		now := at.UnixMilli()
		var refcount int64
		var deleted sql.NullInt64
		err := tx.QueryRowContext(ctx, "SELECT refcount, deleted_at FROM streams WHERE id = ?"+c.forUpdate(), id).Scan(&refcount, &deleted)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case deleted.Valid:
			return ErrSoftDeleted
		case refcount > 0:
			res.Soft = true
			_, err := tx.ExecContext(ctx, "UPDATE streams SET deleted_at = ? WHERE id = ?", now, id)
			return err
		}
		// The chain ends at a root, at a live ancestor or at one that still
		// has other forks. Parents are older than their forks and never
		// change, so the chain has no cycles.
		for cur := id; ; {
			var parent sql.NullInt64
			if err := tx.QueryRowContext(ctx, "DELETE FROM streams WHERE id = ? RETURNING parent_id", cur).Scan(&parent); err != nil {
				return fmt.Errorf("remove %d: %w", cur, err)
			}
			if _, err := tx.ExecContext(ctx,
				"INSERT INTO gc_queue (stream_id, queued_at) VALUES (?, ?) ON CONFLICT (stream_id) DO NOTHING", cur, now); err != nil {
				return fmt.Errorf("queue %d for gc: %w", cur, err)
			}
			res.HardIDs = append(res.HardIDs, cur)
			if !parent.Valid {
				return nil
			}
			var refcount int64
			var softDeleted bool
			err := tx.QueryRowContext(ctx,
				"UPDATE streams SET refcount = refcount - 1 WHERE id = ? RETURNING refcount, deleted_at IS NOT NULL",
				parent.Int64).Scan(&refcount, &softDeleted)
			if err != nil {
				return fmt.Errorf("release parent %d of %d: %w", parent.Int64, cur, err)
			}
			if refcount > 0 || !softDeleted {
				return nil
			}
			cur = parent.Int64
		}
	}})
	if err != nil {
		return DeleteResult{}, fmt.Errorf("catalog: delete %d: %w", id, err)
	}
	return res, nil
}

// SetClosed marks stream id closed (no more appends). Closing a closed
// stream succeeds. It fails with [ErrNotFound] if id does not exist and
// with [ErrSoftDeleted] if it is soft-deleted.
func (c *Catalog) SetClosed(ctx context.Context, id int64) error {
	return c.setClosedJ(ctx, id, Journaled{})
}

func (c *Catalog) setClosedJ(ctx context.Context, id int64, jr Journaled) error {
	err := c.enqueue(ctx, &writeReq{jr: jr, fn: func(tx *sql.Tx) error {
		var softDeleted bool
		err := tx.QueryRowContext(ctx, "SELECT deleted_at IS NOT NULL FROM streams WHERE id = ?"+c.forUpdate(), id).Scan(&softDeleted)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case softDeleted:
			return ErrSoftDeleted
		}
		_, err = tx.ExecContext(ctx, "UPDATE streams SET closed = TRUE WHERE id = ?", id)
		return err
	}})
	if err != nil {
		return fmt.Errorf("catalog: close stream %d: %w", id, err)
	}
	return nil
}

// TouchMany records the last access times in access (stream id to time)
// in one transaction, moving the deadlines of streams with a TTL. A time
// older than the one stored is ignored, so batches flushed out of order
// cannot shorten a stream's life. Missing ids are ignored.
func (c *Catalog) TouchMany(ctx context.Context, access map[int64]time.Time) error {
	return c.touchManyJ(ctx, access, Journaled{})
}

func (c *Catalog) touchManyJ(ctx context.Context, access map[int64]time.Time, jr Journaled) error {
	if len(access) == 0 {
		return nil
	}
	err := c.enqueue(ctx, &writeReq{jr: jr, fn: func(tx *sql.Tx) error {
		stmt := c.inTx(ctx, tx, c.stmts.touch)
		// In id order: two nodes touching overlapping sets then lock their
		// rows in the same order and cannot deadlock each other.
		for _, id := range slices.Sorted(maps.Keys(access)) {
			if _, err := stmt.ExecContext(ctx, access[id].UnixMilli(), id); err != nil {
				return fmt.Errorf("stream %d: %w", id, err)
			}
		}
		return nil
	}})
	if err != nil {
		return fmt.Errorf("catalog: touch: %w", err)
	}
	return nil
}

// limitArg converts a limit for SQL, where a limit <= 0 means none.
// (SQLite reads a negative LIMIT as none; PostgreSQL refuses it.)
func limitArg(limit int) int64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return int64(limit)
}

// ExpiryCursor is a position in the order of [Catalog.ExpiredFor]: just
// after stream ID, whose deadline is Deadline. The zero value is the
// start.
type ExpiryCursor struct {
	Deadline time.Time
	ID       int64
}

// ExpiredFor returns, for the sweeper of one node, a page of the live (not
// soft-deleted) streams whose deadline is at or before now: those after
// the cursor, in (deadline, id) order, at most limit of them (no limit if
// limit <= 0), and the cursor of the next page (the last row's; after
// itself when the page is empty). Without a node, all of them. With a node, only
// the streams that node may expire: those whose lease it holds, expired
// or not (their hot data is on its disk), and those no node holds (never
// leased, or released clean by a handoff). So the streams of other nodes,
// however many, never fill a node's pages, and no two nodes sweep the
// same leased stream.
func (c *Catalog) ExpiredFor(ctx context.Context, node string, now time.Time, after ExpiryCursor, limit int) ([]Stream, ExpiryCursor, error) {
	q, args := expiredQuery(node, now, after, limit)
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, after, fmt.Errorf("catalog: expired streams of %q: %w", node, err)
	}
	out, err := scanStreams(rows)
	if err != nil {
		return nil, after, fmt.Errorf("catalog: expired streams of %q: %w", node, err)
	}
	if len(out) > 0 {
		last := out[len(out)-1]
		d, _ := last.Deadline()
		after = ExpiryCursor{Deadline: d, ID: last.ID}
	}
	return out, after, nil
}

// expiredQuery is the statement of [Catalog.ExpiredFor] and its arguments.
func expiredQuery(node string, now time.Time, after ExpiryCursor, limit int) (string, []any) {
	// The first conditions match the partial index streams_deadline.
	q := "SELECT " + streamColumns + ` FROM streams
		WHERE deadline <= ? AND deadline IS NOT NULL AND deleted_at IS NULL`
	args := []any{now.UnixMilli()}
	if after != (ExpiryCursor{}) {
		d := after.Deadline.UnixMilli()
		q += " AND (deadline > ? OR (deadline = ? AND id > ?))"
		args = append(args, d, d, after.ID)
	}
	if node != "" {
		q += ` AND NOT EXISTS (SELECT 1 FROM stream_leases l
			WHERE l.stream_id = streams.id AND l.node <> '' AND l.node <> ?)`
		args = append(args, node)
	}
	q += " ORDER BY deadline, id LIMIT ?"
	return q, append(args, limitArg(limit))
}

// List returns the streams, live and soft-deleted, whose path starts with
// prefix and sorts after after, in path order (byte-wise), at most limit of
// them (no limit if limit <= 0). To page, pass the last path of one page
// as after for the next. Every byte of prefix is literal.
func (c *Catalog) List(ctx context.Context, prefix, after string, limit int) ([]Stream, error) {
	return c.list(ctx, prefix, after, limit, false)
}

// ListLive is [Catalog.List] without soft-deleted streams. Streams past
// their deadline are listed until the expiry sweep deletes them.
func (c *Catalog) ListLive(ctx context.Context, prefix, after string, limit int) ([]Stream, error) {
	return c.list(ctx, prefix, after, limit, true)
}

func (c *Catalog) list(ctx context.Context, prefix, after string, limit int, liveOnly bool) ([]Stream, error) {
	// A range on path rather than LIKE: LIKE would need its wildcards
	// escaped, is case-insensitive for ASCII, and cannot use the index.
	var conds []string
	var args []any
	if liveOnly {
		conds = append(conds, "deleted_at IS NULL")
	}
	if after >= prefix {
		conds, args = append(conds, "path > ?"), append(args, after)
	} else {
		conds, args = append(conds, "path >= ?"), append(args, prefix)
	}
	if end, ok := c.prefixEnd(prefix); ok {
		conds, args = append(conds, "path < ?"), append(args, end)
	}
	args = append(args, limitArg(limit))
	rows, err := c.db.QueryContext(ctx, "SELECT "+streamColumns+" FROM streams WHERE "+
		strings.Join(conds, " AND ")+" ORDER BY path LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: list %q: %w", prefix, err)
	}
	out, err := scanStreams(rows)
	if err != nil {
		return nil, fmt.Errorf("catalog: list %q: %w", prefix, err)
	}
	return out, nil
}

// prefixEnd is the package's prefixEnd on SQLite and validPrefixEnd on
// PostgreSQL.
func (c *Catalog) prefixEnd(prefix string) (string, bool) {
	if c.pg {
		return validPrefixEnd(prefix)
	}
	return prefixEnd(prefix)
}

// prefixEnd returns the smallest string greater than every string that
// starts with prefix, and false if there is none (prefix is empty or all
// 0xff bytes). SQLite compares TEXT byte-wise, and the driver passes the
// bytes through unchanged even when the result is not valid UTF-8.
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// Children returns the ids of the live (not soft-deleted) forks whose
// parent is id, in ascending order. It returns no ids, not an error, for an
// id that does not exist. Soft-deleted forks still count in the parent's
// RefCount but are not returned.
func (c *Catalog) Children(ctx context.Context, id int64) ([]int64, error) {
	ids, err := c.queryIDs(ctx, "SELECT id FROM streams WHERE parent_id = ? AND deleted_at IS NULL ORDER BY id", id)
	if err != nil {
		return nil, fmt.Errorf("catalog: children of %d: %w", id, err)
	}
	return ids, nil
}

// PendingGC returns ids of hard-deleted streams whose files and objects
// have not yet been removed, oldest deletion first, at most limit of them
// (no limit if limit <= 0).
func (c *Catalog) PendingGC(ctx context.Context, limit int) ([]int64, error) {
	ids, err := c.queryIDs(ctx, "SELECT stream_id FROM gc_queue ORDER BY queued_at, stream_id LIMIT ?", limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("catalog: pending gc: %w", err)
	}
	return ids, nil
}

// DoneGC removes id from the garbage collection queue once its files and
// objects are gone, together with its lease (see cluster.go). Removing an
// id that is not queued succeeds, so a collector that crashed after
// cleaning up can simply repeat.
func (c *Catalog) DoneGC(ctx context.Context, id int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM stream_leases WHERE stream_id = ?", id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM gc_queue WHERE stream_id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: gc done %d: %w", id, err)
	}
	return nil
}

func (c *Catalog) queryIDs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// millis converts t for storage; the zero time is stored as NULL so that
// it round-trips exactly.
func millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

// mkdirAllSync is os.MkdirAll that also fsyncs the parent of every
// directory it creates, so that the new path survives power loss.
func mkdirAllSync(dir string) error { return vfs.OS.MkdirAll(dir) }

func syncDir(dir string) error { return vfs.OS.SyncDir(dir) }
