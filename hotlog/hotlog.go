// Package hotlog stores the recent part of one durable stream in its own
// SQLite database file, the stream's hot log.
//
// A hot log holds the stream's metadata, the state of its idempotent
// producers, the index of its sealed segments and the messages that have
// not yet been moved to object storage. One goroutine per stream writes it
// through [Log.Commit], one transaction per group commit; any number of
// readers read it concurrently through a separate pool of read-only
// connections, so reads never wait for the writer and the writer never
// waits for reads (the file is in WAL mode).
//
// Positions are byte positions in the stream's logical byte space: a
// message stored at Pos covers the bytes [Pos, Pos+len(Data)).
package hotlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/internal/vfs"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/streamtier/durable-streams/coldstore/segment"
)

// Message is one stored message. Positions are byte positions in the
// stream's logical byte space.
type Message struct {
	Pos      int64  // start position of Data
	Seg      int64  // segment number the message belongs to
	Data     []byte // never empty
	BatchEnd bool   // true on the last message of the append request that wrote it
}

// End returns the position just past the message's data.
func (m Message) End() int64 { return m.Pos + int64(len(m.Data)) }

// ForkBase describes the inherited prefix of a forked stream: positions
// [0, Pos) come from ParentID.
type ForkBase struct {
	ParentID int64
	Pos      int64 // first position owned by this stream
	Seg      int64 // segment number that contains position Pos-1 in the parent's view (or the parent's first segment if Pos==0)
	SegStart int64 // start position of that segment in the parent's view
	Shared   bool  // the fork's own data continues in segment Seg (true) or starts in Seg+1 (false)
}

// ProducerKey identifies one request of an idempotent producer.
type ProducerKey struct {
	ID    string
	Epoch int64
	Seq   int64
}

// Meta is the stream's persisted metadata (exactly one row). Times are
// stored with millisecond precision; the zero time round-trips as the zero
// time.
type Meta struct {
	StreamID     int64
	ContentType  string
	CreatedAt    time.Time
	Tail         int64        // next position to be written
	OpenSeg      int64        // number of the open (unsealed) segment
	OpenSegStart int64        // position where the open segment starts
	OpenSegMsgs  int64        // messages written into the open segment by this stream
	OpenSegBytes int64        // bytes written into the open segment by this stream
	OpenSegSince time.Time    // time the first message entered the open segment (zero if none)
	Closed       bool         // no more appends are accepted
	ClosedBy     *ProducerKey // producer request that closed the stream, if any (for idempotent close retries)
	StreamSeq    string       // last accepted Stream-Seq header value ("" if none)
	Fork         *ForkBase    // nil for a root stream
	// AppliedLSN is the position in the commit journal of the last change
	// written to this file (0: none): recovery replays only the records
	// past it, which makes replay idempotent.
	AppliedLSN uint64
}

// Producer is the persisted state of one idempotent producer.
type Producer struct {
	ID      string
	Epoch   int64
	LastSeq int64
	Updated time.Time // stored with millisecond precision
}

// Segment is one sealed range [Start, End) of this stream's own segment
// numbering.
type Segment struct {
	Seg       int64
	Start     int64
	End       int64
	Messages  int64
	Bytes     int64
	State     segment.State // segment.Sealed or segment.Uploaded
	ObjectKey string        // set when uploaded
	Checksum  uint32        // CRC32C of the object, set when uploaded
	SealedAt  time.Time
}

// Batch is the unit of group commit: everything in it is written in one
// transaction.
type Batch struct {
	Messages  []Message  // new messages, in position order (may be empty, e.g. close-only)
	Producers []Producer // producer rows to upsert
	Meta      Meta       // the complete new meta row
	Seal      *Segment   // optional newly sealed segment to insert (State == segment.Sealed)
}

// Options tune a Log. Zero values mean defaults.
type Options struct {
	ReadConns int // max connections in the read pool (default 4)
	// NoSync leaves commits unsynced (synchronous=NORMAL in WAL mode): a
	// crash keeps the file consistent but may lose the latest commits, so
	// the caller must hold them in a commit journal and call [SyncFiles]
	// before dropping them from it.
	NoSync bool
	// ReclaimBytes is how much free space the file may hold before
	// [Log.MarkUploaded] starts returning it to the file system, if it
	// also outweighs the data (default 8 MiB); until then freed pages are
	// left for later appends to reuse.
	ReclaimBytes int64
}

// Stats describes the size of a hot log.
type Stats struct {
	FileBytes int64 // size of the database file plus its WAL (in memory: of the database)
	Rows      int64 // number of stored messages
	DataBytes int64 // total size of the stored messages' data
}

const (
	defaultReadConns    = 4
	defaultReclaimBytes = 8 << 20
)

// Log is an open hot log. It is safe for concurrent use; writes are
// serialized.
//
// A Log made by [Image.OpenNew] has no file until its first Commit; until
// then it reads as empty.
type Log struct {
	path string
	opts Options
	rdb  *sql.DB // read-only pool; set before ready

	// ready is set once the file exists and the connections are open;
	// until then image is what the first commit writes out.
	ready atomic.Bool
	image *Image

	reclaimBytes int64 // see Options.ReclaimBytes
	pageSize     int64

	mu      sync.Mutex // serializes the write path and guards the fields below
	closed  bool
	wdb     *sql.DB // single writer connection
	insMsg  *sql.Stmt
	insMsgs *sql.Stmt // rowsPerInsert rows; prepared on first use
	args    []any     // reused arguments of insMsgs
	upProd  *sql.Stmt // prepared on first use, as insSeg
	updMeta *sql.Stmt
	insSeg  *sql.Stmt
}

// Create makes a new hot log file at path holding meta and the initial
// messages, durably: the transaction is committed with synchronous=FULL and
// the parent directory is fsynced so that the new file survives power loss.
// Any existing file at path (and its -wal and -shm files) is removed first:
// callers only create at paths no live stream uses. Missing parent
// directories are created with mode 0o755.
func Create(ctx context.Context, path string, meta Meta, initial []Message) error {
	return create(ctx, path, meta, initial, syncFull)
}

// CreateUnsynced is [Create] without any fsync, of the file or of its
// directory: a crash may leave no file, or a damaged one, at path. It is
// for callers whose commit journal holds the stream's creation and can
// create the file again; [SyncFiles] makes it durable.
func CreateUnsynced(ctx context.Context, path string, meta Meta, initial []Message) error {
	return create(ctx, path, meta, initial, syncOff)
}

func create(ctx context.Context, path string, meta Meta, initial []Message, sync syncLevel) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("hotlog: create %s: %w", path, err)
		}
	}()
	if err := checkMessages(initial); err != nil {
		return err
	}
	mem := memdb.Is(path)
	dir := filepath.Dir(path)
	if !mem {
		if err := mkdirAllSync(dir); err != nil {
			return err
		}
	}
	// A stale WAL left next to a fresh database would be replayed into it.
	if err := Remove(path); err != nil {
		return err
	}
	if mem {
		if err := memdb.Keep(ctx, path); err != nil {
			return err
		}
	}
	name, err := dsn(path, dsnCreate, sync)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	if err := initialize(ctx, db, &meta, initial, mem); err != nil {
		db.Close()
		return err
	}
	// The commit synced the data (synchronous=FULL); closing the last
	// connection removes the still empty WAL of the switch to WAL mode.
	if err := db.Close(); err != nil {
		return err
	}
	if sync == syncOff || mem {
		return nil
	}
	return syncDir(dir)
}

// Image is an empty hot log file (schema, settings, a placeholder meta
// row and no messages) kept in memory: writing it out is the cheapest way
// to make a new hot log, about a tenth of the work of [Create], which
// builds the schema statement by statement. The new file's first
// [Log.Commit] must write the real meta row.
type Image struct {
	b        []byte
	pageSize int64
}

// NewImage builds the image in a temporary file under dir.
func NewImage(ctx context.Context, dir string) (*Image, error) {
	tmp, err := os.MkdirTemp(dir, "hotlog-image-")
	if err != nil {
		return nil, fmt.Errorf("hotlog: image: %w", err)
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "image.db")
	if err := create(ctx, path, Meta{}, nil, syncOff); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hotlog: image: %w", err)
	}
	if len(b) < 100 {
		return nil, fmt.Errorf("hotlog: image: %d bytes, shorter than a database header", len(b))
	}
	// The header's page size: big endian at offset 16, 1 meaning 65536.
	ps := int64(b[16])<<8 | int64(b[17])
	if ps == 1 {
		ps = 65536
	}
	return &Image{b: b, pageSize: ps}, nil
}

// OpenNew returns the Log of a new hot log at path that is not written
// yet: its first [Log.Commit] writes the image out (as [Image.WriteFile]
// does, without syncs) and opens it, and that commit must carry the real
// meta row. Until then the Log reads as empty and [Log.Load] fails. A
// stream created in a commit journal pays for its file only when its
// data is first written to it, off the request path; a commit that fails
// leaves the Log unwritten, and the next one writes the image again.
func (im *Image) OpenNew(path string, opts Options) *Log {
	l := makeLog(path, opts)
	l.image = im
	return l
}

// WriteFile writes the image to path without any fsync, replacing any
// file there (and its -wal, -shm and -journal files). Like
// [CreateUnsynced] it is for callers whose commit journal can make the
// file again after a crash.
func (im *Image) WriteFile(path string) error {
	if err := mkdirAllSync(filepath.Dir(path)); err != nil {
		return fmt.Errorf("hotlog: create %s: %w", path, err)
	}
	for _, p := range []string{path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hotlog: create %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, im.b, 0o644); err != nil {
		return fmt.Errorf("hotlog: create %s: %w", path, err)
	}
	return nil
}

// SyncFiles makes everything committed so far to the hot log at path
// durable, whether or not it is open: its WAL, its database file and its
// directory entry are fsynced. An open Log in NoSync mode may commit
// meanwhile; what it commits after SyncFiles starts is not covered.
//
// Syncing the WAL covers every commit still in it; a commit no longer
// in it was copied into the database file by a checkpoint, which (at
// synchronous=NORMAL) synced it there before the WAL was reused.
func SyncFiles(path string) error {
	if memdb.Is(path) {
		return nil
	}
	for _, p := range []string{path + "-wal", path} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hotlog: sync %s: %w", p, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("hotlog: sync %s: %w", p, err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("hotlog: %w", err)
	}
	return nil
}

func initialize(ctx context.Context, db *sql.DB, meta *Meta, initial []Message, mem bool) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, p := range createPragmas {
		if _, err := c.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if _, err := tx.ExecContext(ctx, metaInsertSQL(), metaArgs(meta)...); err != nil {
		return fmt.Errorf("insert meta: %w", err)
	}
	if len(initial) > 0 {
		ins, err := tx.PrepareContext(ctx, insertMessageSQL)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i := range initial {
			m := &initial[i]
			if _, err := ins.ExecContext(ctx, m.Pos, m.Seg, messageFlags(m), m.Data); err != nil {
				return fmt.Errorf("insert message at %d: %w", m.Pos, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if mem {
		// No WAL without a file: readers and the writer of an in-memory
		// database take turns under busy_timeout, which its speed allows.
		return nil
	}
	// SQLite silently keeps the rollback journal where WAL is unsupported
	// (no shared memory, as on some network file systems); readers would
	// then block the writer.
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("file system does not support WAL mode (journal mode is %q)", mode)
	}
	return nil
}

// mkdirAllSync is os.MkdirAll that also fsyncs the parent of every
// directory it creates, so that the new path survives power loss.
func mkdirAllSync(dir string) error { return vfs.OS.MkdirAll(dir) }

func syncDir(dir string) error { return vfs.OS.SyncDir(dir) }

// Open opens an existing hot log. It fails with an error wrapping
// [fs.ErrNotExist] if the file does not exist, and refuses files written by
// a newer schema version.
func Open(ctx context.Context, path string, opts Options) (*Log, error) {
	l, err := open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("hotlog: open %s: %w", path, err)
	}
	return l, nil
}

func open(ctx context.Context, path string, opts Options) (_ *Log, err error) {
	// SQLite reports a missing file only as "unable to open database file";
	// checking first gives callers an error that matches fs.ErrNotExist.
	if memdb.Is(path) {
		if !memdb.Exists(path) {
			return nil, fs.ErrNotExist
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	l := makeLog(path, opts)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.connect(ctx, false); err != nil {
		return nil, err
	}
	return l, nil
}

func makeLog(path string, opts Options) *Log {
	l := &Log{path: path, opts: opts, reclaimBytes: opts.ReclaimBytes}
	if l.reclaimBytes <= 0 {
		l.reclaimBytes = defaultReclaimBytes
	}
	return l
}

// connect opens the connection pools of an existing file and sets ready.
// fresh says the file was just written from the image, whose schema
// version and page size are known: the writer then checks nothing, so
// opening a new hot log costs one connection and two statements (the read
// pool connects on the first read). On failure whatever it opened is
// closed again. The caller holds l.mu.
func (l *Log) connect(ctx context.Context, fresh bool) (err error) {
	defer func() {
		if err != nil {
			l.closeConns()
		}
	}()
	n := l.opts.ReadConns
	if n <= 0 {
		n = defaultReadConns
	}
	path := l.path
	sync := syncFull
	if l.opts.NoSync {
		sync = syncNormal
	}
	wname, err := dsn(path, dsnWrite, sync)
	if err != nil {
		return err
	}
	if l.wdb, err = sql.Open("sqlite", wname); err != nil {
		return err
	}
	l.wdb.SetMaxOpenConns(1)
	l.wdb.SetMaxIdleConns(1)
	l.wdb.SetConnMaxLifetime(0)
	l.wdb.SetConnMaxIdleTime(0)

	if fresh {
		l.pageSize = l.image.pageSize
	} else if err := l.check(ctx); err != nil {
		return err
	}

	// The writer connection exists and holds the WAL open by now, so the
	// read-only connections never have to create it.
	rname, err := dsn(path, dsnRead, sync)
	if err != nil {
		return err
	}
	if l.rdb, err = sql.Open("sqlite", rname); err != nil {
		return err
	}
	l.rdb.SetMaxOpenConns(n)
	l.rdb.SetMaxIdleConns(n)
	l.rdb.SetConnMaxLifetime(0)
	l.rdb.SetConnMaxIdleTime(0)

	// Every commit updates the meta row and nearly every one inserts a
	// message; the other statements are prepared on first use.
	for _, s := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&l.insMsg, insertMessageSQL},
		{&l.updMeta, metaUpdateSQL()},
	} {
		if *s.dst, err = l.wdb.PrepareContext(ctx, s.query); err != nil {
			return fmt.Errorf("prepare %q: %w", s.query, err)
		}
	}
	l.ready.Store(true)
	return nil
}

// check validates the schema version of an existing file, upgrades an
// older one and reads its page size. The caller holds l.mu.
func (l *Log) check(ctx context.Context) error {
	var version int
	if err := l.wdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version == 0:
		return errors.New("not a hot log (schema version 0)")
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than the supported version %d", version, schemaVersion)
	}
	if version < schemaVersion {
		if err := upgrade(ctx, l.wdb, version); err != nil {
			return err
		}
	}
	if err := l.wdb.QueryRowContext(ctx, "PRAGMA page_size").Scan(&l.pageSize); err != nil {
		return fmt.Errorf("read page size: %w", err)
	}
	return dropSegIndex(ctx, l.wdb)
}

// Written reports whether the Log has a file: always for [Open], after
// the first Commit (even a failed one) for [Image.OpenNew].
func (l *Log) Written() bool { return l.ready.Load() }

// materialize writes out the image of a Log made by [Image.OpenNew] and
// opens it. The caller holds l.mu.
func (l *Log) materialize(ctx context.Context) error {
	if err := l.image.WriteFile(l.path); err != nil {
		return err
	}
	return l.connect(ctx, true)
}

// prepared returns the statement *dst, preparing query on the writer
// first if needed: outside any transaction, which would hold the only
// writer connection. The caller holds l.mu.
func (l *Log) prepared(ctx context.Context, dst **sql.Stmt, query string) (*sql.Stmt, error) {
	if *dst == nil {
		st, err := l.wdb.PrepareContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", query, err)
		}
		*dst = st
	}
	return *dst, nil
}

// Close closes both connection pools. Calls after the first return nil.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.closeConns(); err != nil {
		return fmt.Errorf("hotlog: close %s: %w", l.path, err)
	}
	return nil
}

// closeConns closes the statements and both pools. The caller holds l.mu.
func (l *Log) closeConns() error {
	var errs []error
	for _, s := range []**sql.Stmt{&l.insMsg, &l.insMsgs, &l.upProd, &l.updMeta, &l.insSeg} {
		if *s != nil {
			errs = append(errs, (*s).Close())
			*s = nil
		}
	}
	if l.rdb != nil {
		errs = append(errs, l.rdb.Close())
	}
	// The writer closes last so that, as the last connection, it
	// checkpoints the WAL.
	if l.wdb != nil {
		errs = append(errs, l.wdb.Close())
		l.wdb = nil
	}
	return errors.Join(errs...)
}

// errClosed is returned by the write path of a closed Log.
var errClosed = errors.New("log is closed")

// checkMessages rejects message lists that would corrupt the position
// space: empty messages (a position would belong to no message) and
// overlapping or unordered ones.
func checkMessages(msgs []Message) error {
	for i := range msgs {
		m := &msgs[i]
		if len(m.Data) == 0 {
			return fmt.Errorf("message at %d is empty", m.Pos)
		}
		if m.Pos < 0 {
			return fmt.Errorf("message at negative position %d", m.Pos)
		}
		if i > 0 && m.Pos < msgs[i-1].End() {
			return fmt.Errorf("message at %d overlaps or precedes the message at %d", m.Pos, msgs[i-1].Pos)
		}
	}
	return nil
}

// dropSegIndex drops the index on messages.seg that files created by
// earlier versions have (see deleteSegmentSQL). The schema version stays:
// every query works with and without the index.
func dropSegIndex(ctx context.Context, db *sql.DB) error {
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_seg'").Scan(&n)
	if err != nil {
		return fmt.Errorf("look up index messages_seg: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, "DROP INDEX messages_seg"); err != nil {
		return fmt.Errorf("drop index messages_seg: %w", err)
	}
	return nil
}

// upgrade brings a file of schema version from up to schemaVersion, in one
// transaction.
func upgrade(ctx context.Context, db *sql.DB, from int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upgrade schema: %w", err)
	}
	defer tx.Rollback()
	if from < 2 {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE meta ADD COLUMN applied_lsn INTEGER NOT NULL DEFAULT 0"); err != nil {
			return fmt.Errorf("upgrade schema to 2: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("upgrade schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upgrade schema: %w", err)
	}
	return nil
}
