package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
)

// ErrCrashed is returned by every operation on a MemFS after its Crash.
var ErrCrashed = errors.New("vfs: file opened before a crash")

// MemFS is a strict in-memory file system, modelled on pebble's
// vfs.NewStrictMem: it remembers, for every file, the contents it had at
// its last Sync, and for every directory, the entries it had at its last
// SyncDir. [MemFS.Crash] throws everything else away, as a power loss
// would. Directories themselves (MkdirAll) are durable at once.
//
// It is safe for concurrent use.
type MemFS struct {
	mu    sync.Mutex
	dirs  map[string]*memDir
	dead  bool // crashed: every operation fails
	syncs int  // file syncs so far
	// syncErr, if set, is returned by every File.Sync (a failing disk).
	syncErr error
	// writeErr, if set, fails every File.Write (a full disk).
	writeErr error
	// syncHook, if set, runs at the start of every File.Sync.
	syncHook func()
}

type memDir struct {
	live   map[string]*memNode
	synced map[string]*memNode
}

type memNode struct {
	data   []byte
	synced []byte
}

// NewMem returns an empty MemFS with a root directory "/".
func NewMem() *MemFS {
	m := &MemFS{dirs: map[string]*memDir{}}
	m.dirs["/"] = newMemDir()
	return m
}

func newMemDir() *memDir {
	return &memDir{live: map[string]*memNode{}, synced: map[string]*memNode{}}
}

// Syncs returns how many File.Sync calls have succeeded so far.
func (m *MemFS) Syncs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncs
}

// SetSyncError makes every later File.Sync fail with err (nil: succeed).
func (m *MemFS) SetSyncError(err error) {
	m.mu.Lock()
	m.syncErr = err
	m.mu.Unlock()
}

// SetWriteError makes every later File.Write fail with err, writing
// nothing (nil: succeed).
func (m *MemFS) SetWriteError(err error) {
	m.mu.Lock()
	m.writeErr = err
	m.mu.Unlock()
}

// SetSyncHook makes every later File.Sync call fn first, outside any
// lock (tests use it to hold a sync while more work queues up).
func (m *MemFS) SetSyncHook(fn func()) {
	m.mu.Lock()
	m.syncHook = fn
	m.mu.Unlock()
}

// Crash simulates a power loss and returns the file system as it is
// found after it: every file with the contents of its last Sync and every
// directory with the entries of its last SyncDir. With rng set, a file
// whose unsynced changes only appended to it keeps a random prefix of the
// appended bytes, the way a disk may have written some of a file's dirty
// pages before losing power.
//
// m itself is dead from then on: every operation on it, and on files
// opened from it, fails with [ErrCrashed]. So code still running against
// it (as a crashed process would no longer run) can neither change the
// returned state nor observe a sync succeeding after the crash.
func (m *MemFS) Crash(rng *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead = true
	c := NewMem()
	nodes := map[*memNode]*memNode{}
	for path, d := range m.dirs {
		cd := newMemDir()
		c.dirs[path] = cd
		for name, n := range d.synced {
			cn := nodes[n]
			if cn == nil {
				keep := n.synced
				if rng != nil && len(n.data) > len(n.synced) && string(n.data[:len(n.synced)]) == string(n.synced) {
					keep = n.data[:len(n.synced)+rng.IntN(len(n.data)-len(n.synced)+1)]
				}
				cn = &memNode{data: append([]byte(nil), keep...)}
				cn.synced = append([]byte(nil), cn.data...)
				nodes[n] = cn
			}
			cd.live[name], cd.synced[name] = cn, cn
		}
	}
	return c
}

func (m *MemFS) split(name string) (*memDir, string, error) {
	name = filepath.Clean(name)
	if m.dead {
		return nil, "", ErrCrashed
	}
	d := m.dirs[filepath.Dir(name)]
	if d == nil {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, filepath.Base(name), nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.split(name)
	if err != nil {
		return nil, err
	}
	n := d.live[base]
	if n == nil {
		n = &memNode{}
		d.live[base] = n
	}
	n.data = n.data[:0:0]
	return &memFile{fs: m, n: n, name: name, write: true}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.open(name, false) }

// OpenReadWrite implements FS.
func (m *MemFS) OpenReadWrite(name string) (File, error) { return m.open(name, true) }

func (m *MemFS) open(name string, write bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.split(name)
	if err != nil {
		return nil, err
	}
	n := d.live[base]
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{fs: m, n: n, name: name, write: write}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.split(name)
	if err != nil {
		return err
	}
	if d.live[base] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.live, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, obase, err := m.split(oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := m.split(newname)
	if err != nil {
		return err
	}
	n := od.live[obase]
	if n == nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	delete(od.live, obase)
	nd.live[nbase] = n
	return nil
}

// MkdirAll implements FS; new directories are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return ErrCrashed
	}
	for d := filepath.Clean(dir); m.dirs[d] == nil; d = filepath.Dir(d) {
		m.dirs[d] = newMemDir()
	}
	return nil
}

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, ErrCrashed
	}
	d := m.dirs[filepath.Clean(dir)]
	if d == nil {
		return nil, &fs.PathError{Op: "list", Path: dir, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(d.live))
	for name := range d.live {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return ErrCrashed
	}
	d := m.dirs[filepath.Clean(dir)]
	if d == nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	if m.syncErr != nil {
		return m.syncErr
	}
	d.synced = make(map[string]*memNode, len(d.live))
	for name, n := range d.live {
		d.synced[name] = n
	}
	return nil
}

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	write  bool
	pos    int64 // read position
	closed bool
}

func (f *memFile) check() error {
	switch {
	case f.closed:
		return fs.ErrClosed
	case f.fs.dead:
		return ErrCrashed
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write appends p: files are only ever written at their end here.
func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if !f.write {
		return 0, fmt.Errorf("vfs: %s is open read-only", f.name)
	}
	if f.fs.writeErr != nil {
		return 0, f.fs.writeErr
	}
	f.n.data = append(f.n.data, p...)
	return len(p), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	hook := f.fs.syncHook
	f.fs.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if f.fs.syncErr != nil {
		return f.fs.syncErr
	}
	f.n.synced = append(f.n.synced[:0:0], f.n.data...)
	f.fs.syncs++
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if !f.write {
		return fmt.Errorf("vfs: %s is open read-only", f.name)
	}
	if size < int64(len(f.n.data)) {
		f.n.data = append([]byte(nil), f.n.data[:size]...)
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}
