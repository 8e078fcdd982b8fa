package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// OffsetStore keeps a consumer's position in one stream: the offset
// after the last batch it handled. Stream.Consume loads it once at the
// start and saves after every batch its handler accepted, so a restarted
// consumer resumes where the previous one stopped.
//
// An implementation must make a Save that returned nil visible to the
// next Load, also across process restarts if it is to survive them. The
// offsets are opaque tokens of the server; a store only keeps them.
type OffsetStore interface {
	// Load returns the saved offset, or ok false when nothing was saved
	// yet.
	Load(ctx context.Context) (offset string, ok bool, err error)
	// Save records offset, replacing the previous one.
	Save(ctx context.Context, offset string) error
}

// MemoryOffsetStore is an OffsetStore in memory: it survives a
// reconnection of Consume but not the process. The zero value is empty
// and ready to use; it is safe for concurrent use.
type MemoryOffsetStore struct {
	mu     sync.Mutex
	offset string
	ok     bool
}

// Load returns the saved offset.
func (m *MemoryOffsetStore) Load(context.Context) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offset, m.ok, nil
}

// Save records offset.
func (m *MemoryOffsetStore) Save(_ context.Context, offset string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offset, m.ok = offset, true
	return nil
}

// FileOffsetStore is an OffsetStore in a file holding the offset on one
// line. Save replaces the file atomically (a temporary file, synced, then
// renamed over it, then the directory synced), so after a crash the file
// holds either the old offset or the new one, never a torn mix. Use one
// file per consumer of one stream; it is safe for concurrent use within
// one process, not between processes.
type FileOffsetStore struct {
	path string
	mu   sync.Mutex
}

// NewFileOffsetStore returns a store in the file at path. The file and
// its directory are created by the first Save.
func NewFileOffsetStore(path string) *FileOffsetStore {
	return &FileOffsetStore{path: path}
}

// Path returns the file's path.
func (f *FileOffsetStore) Path() string { return f.path }

// Load reads the saved offset; a missing file means none was saved.
func (f *FileOffsetStore) Load(context.Context) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("offset store: %w", err)
	}
	off := strings.TrimSpace(string(raw))
	if off == "" || strings.ContainsAny(off, "\r\n") {
		return "", false, fmt.Errorf("offset store %s: no offset in the file", f.path)
	}
	return off, true, nil
}

// Save writes offset atomically and durably.
func (f *FileOffsetStore) Save(_ context.Context, offset string) error {
	if offset == "" || strings.ContainsAny(offset, "\r\n") {
		return fmt.Errorf("offset store: bad offset %q", offset)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("offset store: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("offset store: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	_, err = tmp.WriteString(offset + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("offset store: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable. Windows cannot sync a
// directory: there the rename is as durable as the system makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
