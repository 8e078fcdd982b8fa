// Package journal is the commit journal shared by all streams: an
// append-only write-ahead log of self-contained records, made durable in
// groups, so that one fsync covers the changes of every stream that
// committed meanwhile (the way pebble and RocksDB keep one WAL for many
// column families).
//
// Durability. A record counts as durable once the fsync of the file
// holding it (and, for a new file, of its directory) has returned. Records
// queued while a sync runs are written and synced together by the next
// one, whatever stream they belong to: under load every fsync covers
// many records, and an idle journal syncs a single record at once.
//
// Files. The journal is a directory of files named after the LSN of their
// first record (%016x.journal). Records never span files; the writer
// starts a new file when the current one exceeds [Options.FileBytes].
// Owners of the state the records change report, through
// [Journal.Release], the LSN up to which that state is durable on its
// own; files whose records are all at or below it are deleted.
//
// Recovery ([Open]) reads every file in LSN order and stops at the first
// record that is short, fails its checksum or breaks the LSN sequence: a
// crash can only tear the tail that had not been synced, and no such
// record was ever acknowledged. The torn tail is truncated away before
// anything new is written. Damage followed by intact records in a later
// file is not a torn tail but corruption, and Open refuses it.
//
// The crash safety of each step is written next to it; docs/journal.md
// describes the format for readers of the files, such as a replica.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamtier/durable-streams/internal/vfs"
)

// Errors returned (wrapped) by the journal; test with errors.Is.
var (
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrFull is returned by appends while the journal holds
	// Options.MaxBytes: its owners have not released records for long
	// (checkpoints failing), and growing further would fill the disk.
	ErrFull = errors.New("journal: full, waiting for a checkpoint")
	// ErrCorrupt is returned by Open when intact records follow damaged
	// ones, which no crash can cause.
	ErrCorrupt = errors.New("journal: corrupt")
)

// Options configure a Journal. Zero values mean defaults.
type Options struct {
	// FS is the file system (default vfs.OS).
	FS vfs.FS
	// FileBytes is the size after which the writer starts a new file
	// (default a quarter of CheckpointBytes, at most 32 MiB). A file
	// exceeds it by at most one group commit.
	FileBytes int64
	// CheckpointBytes: NeedsCheckpoint reports true once the files hold
	// this much (default 128 MiB, at least 2 × FileBytes).
	CheckpointBytes int64
	// CheckpointAge: NeedsCheckpoint reports true once a record has been
	// unreleased this long (default 1 minute).
	CheckpointAge time.Duration
	// MaxBytes is the hard bound on the files' total size: appends fail
	// with ErrFull beyond it (default 4 × CheckpointBytes).
	MaxBytes int64
	// MaxRecordBytes bounds a record's payload (default 256 MiB); a
	// length above it in a header is read as a torn tail.
	MaxRecordBytes int
	Logger         *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = 128 << 20
	}
	if o.FileBytes <= 0 {
		o.FileBytes = min(32<<20, max(o.CheckpointBytes/4, 64<<10))
	}
	o.CheckpointBytes = max(o.CheckpointBytes, 2*o.FileBytes)
	if o.CheckpointAge <= 0 {
		o.CheckpointAge = time.Minute
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 * o.CheckpointBytes
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// file is one journal file.
type file struct {
	first uint64 // LSN of its first record (its name)
	size  int64
}

func fileName(first uint64) string { return fmt.Sprintf("%016x.journal", first) }

func parseFileName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".journal")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil && v > 0
}

// group is the records of one group commit: written and synced together.
type group struct {
	first, last uint64
	done        chan struct{} // closed once err is set
	err         error
}

// Journal is an open commit journal. It is safe for concurrent use.
type Journal struct {
	fs   vfs.FS
	dir  string
	opts Options
	lg   *slog.Logger

	mu      sync.Mutex
	next    uint64 // LSN of the next record
	pending []byte // framed records waiting for the flusher
	group   *group // the group pending belongs to
	durable uint64 // every record up to this LSN is durable
	err     error  // sticky: a failed write or sync fails every later append
	closed  bool
	files   []file // oldest first; the last is being written
	total   int64  // sum of files' sizes
	// released is the LSN up to which the owners have made their state
	// durable; dirtySince is when the oldest record past it became
	// durable (zero: none).
	released   uint64
	dirtySince time.Time

	wake chan struct{} // buffered: the flusher has work
	want chan struct{} // buffered: NeedsCheckpoint turned true
	stop chan struct{}
	done chan struct{} // closed when the flusher exits

	cur vfs.File // owned by the flusher after Open
}

// Open recovers the journal in dir, creating the directory if needed, and
// starts its writer. Records already in it are read back with Replay.
func Open(dir string, opts Options) (*Journal, error) {
	opts.setDefaults()
	j := &Journal{fs: opts.FS, dir: dir, opts: opts, lg: opts.Logger,
		wake: make(chan struct{}, 1), want: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := j.recover(); err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	if err := j.startFile(j.next); err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	j.group = &group{first: j.next, done: make(chan struct{})}
	go j.flusher()
	return j, nil
}

// startFile creates the file whose first record will be LSN first and
// makes its directory entry durable, so that a sync of the file is all a
// record in it needs to be durable. An empty file of that name, left by a
// crash right after an earlier startFile, is replaced.
func (j *Journal) startFile(first uint64) error {
	f, err := j.fs.Create(filepath.Join(j.dir, fileName(first)))
	if err != nil {
		return &undoneError{err} // nothing written
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.cur != nil {
		j.cur.Close()
	}
	j.cur = f
	j.mu.Lock()
	if n := len(j.files); n > 0 && j.files[n-1].first == first {
		j.total -= j.files[n-1].size
		j.files = j.files[:n-1]
	}
	j.files = append(j.files, file{first: first})
	j.mu.Unlock()
	return nil
}

// Ticket is a queued record; Wait tells when it is durable.
type Ticket struct {
	LSN uint64
	g   *group
}

// Wait returns nil once the record is durable, the journal's error if it
// cannot become durable, or ctx's error. After ctx's error the record may
// still become durable: the caller cannot tell, exactly as if it crashed.
func (t Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.g.done:
		return t.g.err
	default:
	}
	select {
	case <-t.g.done:
		return t.g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue queues a record and returns at once with its LSN. Records are
// durable in LSN order: once one is, so are all before it.
func (j *Journal) Enqueue(kind Kind, payload []byte) (Ticket, error) {
	if kind == 0 || kind > maxKind {
		return Ticket{}, fmt.Errorf("journal: invalid record kind %d", kind)
	}
	if len(payload) > j.opts.MaxRecordBytes {
		return Ticket{}, fmt.Errorf("journal: record of %d bytes exceeds the limit of %d", len(payload), j.opts.MaxRecordBytes)
	}
	j.mu.Lock()
	switch {
	case j.closed:
		j.mu.Unlock()
		return Ticket{}, ErrClosed
	case j.err != nil:
		err := j.err
		j.mu.Unlock()
		return Ticket{}, err
	case j.total+int64(len(j.pending)) >= j.opts.MaxBytes:
		j.mu.Unlock()
		return Ticket{}, ErrFull
	}
	lsn := j.next
	j.next++
	j.pending = appendRecord(j.pending, lsn, kind, payload)
	g := j.group
	g.last = lsn
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return Ticket{LSN: lsn, g: g}, nil
}

// Append queues a record and waits until it is durable (see Ticket.Wait).
func (j *Journal) Append(ctx context.Context, kind Kind, payload []byte) (uint64, error) {
	t, err := j.Enqueue(kind, payload)
	if err != nil {
		return 0, err
	}
	return t.LSN, t.Wait(ctx)
}

// DurableLSN returns the LSN up to which every record is durable.
func (j *Journal) DurableLSN() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// flusher writes and syncs the pending records, one group at a time.
func (j *Journal) flusher() {
	defer close(j.done)
	var spare []byte
	for {
		select {
		case <-j.wake:
		case <-j.stop:
		}
		j.mu.Lock()
		buf, g := j.pending, j.group
		stopping := j.closed
		if len(buf) > 0 {
			j.pending = spare[:0]
			j.group = &group{first: j.next, done: make(chan struct{})}
		}
		j.mu.Unlock()
		if len(buf) == 0 {
			if stopping {
				return
			}
			continue
		}
		err := j.writeGroup(g, buf)
		var undone *undoneError
		if errors.As(err, &undone) {
			j.undo(g, undone)
			spare = buf
			continue
		}
		j.mu.Lock()
		if err != nil {
			err = fmt.Errorf("journal: write records %d-%d: %w", g.first, g.last, err)
			if j.err == nil {
				j.lg.Error("journal write failed; no more appends are accepted", "err", err)
				j.err = err
			}
			// Records queued behind this group can never be durable: the
			// LSNs before them may be missing.
			err = j.err
		} else {
			j.durable = g.last
			if j.dirtySince.IsZero() {
				j.dirtySince = j.opts.Now()
			}
		}
		j.mu.Unlock()
		g.err = err
		close(g.done)
		spare = buf
		if err == nil && j.NeedsCheckpoint() {
			select {
			case j.want <- struct{}{}:
			default:
			}
		}
	}
}

// undoneError is a failed write of a group that left no trace: the file
// is back at its size before the group, durably.
type undoneError struct{ err error }

func (e *undoneError) Error() string { return e.err.Error() }
func (e *undoneError) Unwrap() error { return e.err }

// undo fails group g, whose write was undone, and every record queued
// after it, and hands their LSNs out again: none of them was written, so
// reusing them leaves no gap in the sequence. A full disk thus fails the
// appends it hits without stopping the journal.
func (j *Journal) undo(g *group, undone *undoneError) {
	err := fmt.Errorf("journal: write records %d-%d: %w", g.first, g.last, undone.err)
	j.mu.Lock()
	later := j.group
	j.next = g.first
	j.pending = j.pending[:0]
	j.group = &group{first: g.first, done: make(chan struct{})}
	j.mu.Unlock()
	j.lg.Warn("journal write failed and was undone", "err", err)
	for _, x := range []*group{g, later} {
		x.err = err
		close(x.done)
	}
}

// writeGroup writes buf, the framed records of g, and syncs them, after
// starting a new file if the current one is full. Only the flusher calls
// it. A write that fails (a full disk) is undone if it can be, and then
// returns an *undoneError; a failed sync cannot be undone (the kernel may
// have dropped the data while later syncs succeed) and stops the journal.
func (j *Journal) writeGroup(g *group, buf []byte) error {
	j.mu.Lock()
	err := j.err
	last := j.files[len(j.files)-1]
	allReleased := j.released+1 >= g.first
	j.mu.Unlock()
	if err != nil {
		return err
	}
	if last.size > 0 && (last.size+int64(len(buf)) > j.opts.FileBytes || allReleased) {
		// Every record in the current file is synced already (each group
		// is), so records in the new one never become durable before all
		// earlier ones.
		if err := j.startFile(g.first); err != nil {
			return err
		}
		last = file{first: g.first}
	}
	if _, err := j.cur.Write(buf); err != nil {
		if terr := j.cur.Truncate(last.size); terr != nil {
			return errors.Join(err, terr)
		}
		if serr := j.cur.Sync(); serr != nil {
			return errors.Join(err, serr)
		}
		return &undoneError{err}
	}
	if err := j.cur.Sync(); err != nil {
		return err
	}
	j.mu.Lock()
	j.files[len(j.files)-1].size += int64(len(buf))
	j.total += int64(len(buf))
	j.mu.Unlock()
	return nil
}

// Close writes and syncs the queued records and closes the journal.
// Appends after Close fail with ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	close(j.stop)
	<-j.done
	err := j.cur.Close()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	return err
}

// Release reports that the state changed by every record up to lsn is
// durable without the journal, and deletes the files holding only such
// records. The file being written is never deleted; Release asks for a
// new one at the next group when that file is all released, so that an
// idle journal can shrink to an empty file.
func (j *Journal) Release(lsn uint64) error {
	j.mu.Lock()
	if lsn > j.durable {
		lsn = j.durable
	}
	if lsn > j.released {
		j.released = lsn
		if lsn >= j.durable {
			j.dirtySince = time.Time{}
		} else {
			j.dirtySince = j.opts.Now()
		}
	}
	var drop []file
	for len(j.files) > 1 && j.files[1].first <= j.released+1 {
		drop = append(drop, j.files[0])
		j.total -= j.files[0].size
		j.files = j.files[1:]
	}
	j.mu.Unlock()
	if len(drop) == 0 {
		return nil
	}
	// Oldest first, each removal made durable before the next: were an
	// older file to reappear after a crash without a newer one, the LSN
	// sequence would have a gap that recovery must take for corruption.
	// A file deleted but back after a crash only holds released records,
	// which the owners skip.
	for _, f := range drop {
		if err := j.fs.Remove(filepath.Join(j.dir, fileName(f.first))); err != nil {
			return fmt.Errorf("journal: release %d: %w", lsn, err)
		}
		if err := j.fs.SyncDir(j.dir); err != nil {
			return fmt.Errorf("journal: release %d: %w", lsn, err)
		}
	}
	return nil
}

// Stats describe the journal's disk use.
type Stats struct {
	Files      int
	Bytes      int64  // total size of the files
	DurableLSN uint64 // every record up to here is durable
	Released   uint64 // every record up to here is released by its owners
	DirtyAge   time.Duration
}

// Stats returns the journal's current figures.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Stats{Files: len(j.files), Bytes: j.total, DurableLSN: j.durable, Released: j.released}
	if !j.dirtySince.IsZero() {
		s.DirtyAge = j.opts.Now().Sub(j.dirtySince)
	}
	return s
}

// CheckpointWanted returns a channel that receives when a group commit
// has made NeedsCheckpoint true (the age limit is only seen by calling
// NeedsCheckpoint).
func (j *Journal) CheckpointWanted() <-chan struct{} { return j.want }

// NeedsCheckpoint reports whether the owners should make their state
// durable and Release: the files hold Options.CheckpointBytes, or a
// record has waited Options.CheckpointAge.
func (j *Journal) NeedsCheckpoint() bool {
	s := j.Stats()
	if s.Released >= s.DurableLSN {
		return false
	}
	return s.Bytes >= j.opts.CheckpointBytes || s.DirtyAge >= j.opts.CheckpointAge
}
