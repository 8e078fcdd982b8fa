package coldstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// tempPrefix starts the names of in-progress uploads of the local backend.
// ValidateKey rejects key segments with this prefix, so temp files can never
// collide with (or be listed as) objects.
const tempPrefix = ".coldstore-tmp-"

// Local is a Store keeping each object as a file under a root directory; key
// "a/b/c" is the file <root>/a/b/c.
//
// Put is atomic and durable: the data goes to a temp file in the destination
// directory, which is fsynced, renamed over the destination and followed by an
// fsync of the directory (newly created parent directories are fsynced too).
// A crash mid-Put can leave a ".coldstore-tmp-*" file behind; it is never
// listed or returned.
//
// Delete removes directories it leaves empty. Unlike S3, the local backend
// cannot hold both "a" and "a/b": the second Put fails.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)

// NewLocal returns a local backend rooted at dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("coldstore: local backend needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("coldstore: local dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("coldstore: local dir: %w", err)
	}
	return &Local{root: abs}, nil
}

// Root returns the absolute root directory.
func (l *Local) Root() string { return l.root }

// String describes the store for logs.
func (l *Local) String() string { return "local:" + l.root }

func (l *Local) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("coldstore: put %q: negative size %d", key, size)
	}
	dir := filepath.Dir(p)

	// A concurrent Delete may prune the (empty) parent directory between
	// creating it and creating the temp file in it: retry.
	var f *os.File
	for attempt := 0; ; attempt++ {
		err = l.mkdirAll(dir)
		if err == nil {
			f, err = os.CreateTemp(dir, tempPrefix+"*")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 4 {
			return fmt.Errorf("coldstore: put %q: %w", key, err)
		}
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
		if err != nil {
			err = fmt.Errorf("coldstore: put %q: %w", key, err)
		}
	}()

	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: got %s, want %d bytes", ErrSizeMismatch, describeLen(n, size), size)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

func describeLen(n, size int64) string {
	if n > size {
		return "more"
	}
	return fmt.Sprint(n)
}

// mkdirAll creates dir and its missing parents below the root, fsyncing the
// parent of every directory it creates so that the new entries are durable.
func (l *Local) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	rel, err := filepath.Rel(l.root, dir)
	if err != nil {
		return err
	}
	cur := l.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, seg)
		err := os.Mkdir(cur, 0o755)
		switch {
		case err == nil:
			if err := syncDir(parent); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Exists (possibly as a file: CreateTemp will then fail).
		default:
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for fsync on Windows
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// isNotFound reports whether a filesystem error means that the key does not
// name an object: the path or one of its parents is missing, or a parent is a
// file.
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func notFound(key string) error {
	return fmt.Errorf("%w: %q", ErrNotFound, key)
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	if err := checkRange(off); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(key)
		}
		return nil, fmt.Errorf("coldstore: get %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("coldstore: get %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, notFound(key)
	}
	size := fi.Size()
	if off > size {
		f.Close()
		return nil, fmt.Errorf("%w: offset %d beyond size %d of %q", ErrInvalidRange, off, size, key)
	}
	n := size - off
	if length >= 0 && length < n {
		n = length
	}
	return &fileSection{SectionReader: io.NewSectionReader(f, off, n), f: f}, nil
}

// fileSection reads a byte range of an open file and closes the file.
type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (s *fileSection) Close() error { return s.f.Close() }

// Head implements Store.
func (l *Local) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	p, err := l.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if isNotFound(err) {
			return ObjectInfo{}, notFound(key)
		}
		return ObjectInfo{}, fmt.Errorf("coldstore: head %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, notFound(key)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Delete implements Store. Parent directories left empty are removed (up to,
// not including, the root). Deletes are not fsynced: after a crash a deleted
// object may reappear, and deleting it again is harmless.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("coldstore: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a directory is not an object
	}
	if err := os.Remove(p); err != nil && !isNotFound(err) {
		return fmt.Errorf("coldstore: delete %q: %w", key, err)
	}
	for d := filepath.Dir(p); d != l.root && strings.HasPrefix(d, l.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil { // not empty (or already gone): stop
			break
		}
	}
	return nil
}

// List implements Store. Directories are visited in key order (a directory
// "a" sorts as "a/", so "a-b" comes before "a/x" and "a0" after it), which
// makes the listing lexicographic without collecting it first.
func (l *Local) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if !prefixCanMatch(prefix) {
			return
		}
		// Start at the deepest directory that the prefix names completely.
		dirKey := ""
		if i := strings.LastIndexByte(prefix, '/'); i > 0 {
			dirKey = prefix[:i]
		}
		dir := l.root
		if dirKey != "" {
			dir = filepath.Join(l.root, filepath.FromSlash(dirKey))
		}
		l.walk(ctx, dir, dirKey, prefix, yield)
	}
}

type dirEntry struct {
	fs.DirEntry
	sortKey string
}

// walk lists dir, whose key is dirKey, yielding objects with the prefix.
// It returns false when the iteration must stop.
func (l *Local) walk(ctx context.Context, dir, dirKey, prefix string, yield func(ObjectInfo, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield(ObjectInfo{}, err)
		return false
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if isNotFound(err) {
			return true // removed concurrently, or the prefix names nothing
		}
		yield(ObjectInfo{}, fmt.Errorf("coldstore: list %q: %w", prefix, err))
		return false
	}
	entries := make([]dirEntry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		sk := name
		if de.IsDir() {
			sk += "/"
		}
		entries = append(entries, dirEntry{de, sk})
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return cmp.Compare(a.sortKey, b.sortKey) })

	for _, e := range entries {
		key := e.Name()
		if dirKey != "" {
			key = dirKey + "/" + key
		}
		switch {
		case e.IsDir():
			sub := key + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				continue
			}
			if !l.walk(ctx, filepath.Join(dir, e.Name()), key, prefix, yield) {
				return false
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if isNotFound(err) {
					continue // deleted concurrently
				}
				yield(ObjectInfo{}, fmt.Errorf("coldstore: list %q: %w", prefix, err))
				return false
			}
			if !yield(ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil) {
				return false
			}
		}
	}
	return true
}

// ctxReader makes a long copy stop when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
