package coldstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Store that keeps objects in the process's memory, for the
// memory storage mode (serve --storage memory) and tests: nothing survives
// the process. It holds every object's bytes, so it suits development and
// test data, not production volumes.
type Memory struct {
	mu      sync.RWMutex
	objects map[string]memObject // guarded by mu; values are never modified
}

type memObject struct {
	data     []byte
	modified time.Time
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{objects: map[string]memObject{}} }

// String describes the store.
func (m *Memory) String() string { return "memory" }

// Put implements Store.
func (m *Memory) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("coldstore: put %q: %w: negative size %d", key, ErrSizeMismatch, size)
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	n, err := io.Copy(&buf, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		return fmt.Errorf("coldstore: put %q: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("coldstore: put %q: %w: got %s, want %d bytes", key, ErrSizeMismatch, describeLen(n, size), size)
	}
	m.mu.Lock()
	m.objects[key] = memObject{data: buf.Bytes(), modified: time.Now()}
	m.mu.Unlock()
	return nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := checkRange(off); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, ok := m.object(key)
	if !ok {
		return nil, fmt.Errorf("coldstore: get %q: %w", key, ErrNotFound)
	}
	size := int64(len(o.data))
	if off > size {
		return nil, fmt.Errorf("coldstore: get %q: %w: offset %d beyond size %d", key, ErrInvalidRange, off, size)
	}
	end := size
	if length >= 0 && length < end-off {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

// Head implements Store.
func (m *Memory) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	o, ok := m.object(key)
	if !ok {
		return ObjectInfo{}, fmt.Errorf("coldstore: head %q: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(o.data)), Modified: o.modified}, nil
}

// List implements Store. It lists a snapshot of the keys taken at the
// first iteration.
func (m *Memory) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(ObjectInfo{}, err)
			return
		}
		m.mu.RLock()
		var infos []ObjectInfo
		for k, o := range m.objects {
			if strings.HasPrefix(k, prefix) {
				infos = append(infos, ObjectInfo{Key: k, Size: int64(len(o.data)), Modified: o.modified})
			}
		}
		m.mu.RUnlock()
		slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				yield(ObjectInfo{}, err)
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

func (m *Memory) object(key string) (memObject, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	o, ok := m.objects[key]
	return o, ok
}
