// Package coldstore is the object-storage layer for sealed segments: immutable
// objects holding sealed ranges of per-stream logs. Segments are written once
// (re-uploads after a crash overwrite with identical content), read by byte
// range, listed by key prefix and deleted by retention.
//
// Two backends implement Store: a local directory (the default, see Local) and
// S3-compatible object storage such as AWS S3, MinIO or Cloudflare R2 (see S3).
//
// Keys are "/"-separated relative paths such as "streams/abc/0000000042.seg".
// Every backend accepts the same keys: non-empty, no leading or trailing "/",
// no empty, "." or ".." segments, no NUL or backslash (see ValidateKey).
package coldstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
)

// Store is an object store holding immutable segment objects.
type Store interface {
	// Put stores the object atomically (readers never see a partial object)
	// and overwrites any existing one (re-upload after a crash is
	// idempotent). size is the exact length of r; a reader that is shorter or
	// longer makes Put fail without storing anything.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get returns bytes [off, off+length) of the object; length < 0 means to
	// the end. A range reaching past the end is cut at the end; off equal to
	// the size yields an empty body and off beyond it fails with
	// ErrInvalidRange. Missing object → error matching
	// errors.Is(err, ErrNotFound). The caller must close the body.
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Head returns size and modification time. Missing → ErrNotFound.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// List yields objects whose key starts with prefix, in lexicographic
	// (byte-wise) key order. An error is yielded at most once, as the last
	// element.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
}

var (
	// ErrNotFound reports that the object does not exist.
	ErrNotFound = errors.New("coldstore: object not found")
	// ErrInvalidKey reports a key that is not a valid relative "/" path.
	ErrInvalidKey = errors.New("coldstore: invalid key")
	// ErrInvalidRange reports a Get whose offset lies beyond the object end
	// (or is negative).
	ErrInvalidRange = errors.New("coldstore: invalid range")
	// ErrSizeMismatch reports a Put whose reader did not hold exactly size
	// bytes.
	ErrSizeMismatch = errors.New("coldstore: reader length does not match size")
)

// Kinds of backend accepted by Config.Kind.
const (
	KindLocal = "local"
	KindS3    = "s3"
	// KindMemory keeps objects in memory (see Memory).
	KindMemory = "memory"
)

// Config selects and configures a backend.
type Config struct {
	// Kind is "local" (the default when empty), "s3" or "memory".
	Kind string
	// Dir is the root directory of the local backend.
	Dir string
	// S3 configures the s3 backend.
	S3 S3Config
}

// String describes the configuration without secrets, for logs.
func (c Config) String() string {
	switch c.Kind {
	case KindS3:
		return "s3 " + c.S3.String()
	case "", KindLocal:
		return "local " + c.Dir
	case KindMemory:
		return "memory"
	default:
		return fmt.Sprintf("unknown kind %q", c.Kind)
	}
}

// GoString is like String so that %#v does not print secrets either.
func (c Config) GoString() string { return "coldstore.Config{" + c.String() + "}" }

// Open returns the backend chosen by cfg.Kind.
func Open(ctx context.Context, cfg Config) (Store, error) {
	switch cfg.Kind {
	case "", KindLocal:
		return NewLocal(cfg.Dir)
	case KindS3:
		return NewS3(ctx, cfg.S3)
	case KindMemory:
		return NewMemory(), nil
	default:
		return nil, fmt.Errorf("coldstore: unknown kind %q (want %q, %q or %q)", cfg.Kind, KindLocal, KindS3, KindMemory)
	}
}

// Describe returns a one-line description of s for logs, never containing
// secrets. Both backends implement fmt.Stringer; other stores are described by
// their type.
func Describe(s Store) string {
	if d, ok := s.(fmt.Stringer); ok {
		return d.String()
	}
	return fmt.Sprintf("%T", s)
}

// ValidateKey reports whether key is acceptable to every backend: a non-empty
// relative "/"-separated path without empty, "." or ".." segments, and without
// NUL or backslash characters. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case strings.HasPrefix(key, "/"):
		return bad("absolute path")
	case strings.ContainsRune(key, 0):
		return bad("contains NUL")
	case strings.ContainsRune(key, '\\'):
		return bad("contains backslash")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("dot segment")
		}
		if strings.HasPrefix(seg, tempPrefix) {
			return bad("reserved temporary-file name")
		}
	}
	return nil
}

// prefixCanMatch reports whether any valid key can start with prefix: the
// part of the prefix before its last "/" must itself be a valid key. List
// returns nothing early otherwise (MinIO even rejects such prefixes).
func prefixCanMatch(prefix string) bool {
	i := strings.LastIndexByte(prefix, '/')
	return i < 0 || ValidateKey(prefix[:i]) == nil
}

// checkRange validates Get arguments that can be checked without the object.
func checkRange(off int64) error {
	if off < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalidRange, off)
	}
	return nil
}

// emptyBody is returned for zero-length reads.
func emptyBody() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }
