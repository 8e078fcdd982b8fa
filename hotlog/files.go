package hotlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/streamtier/durable-streams/internal/memdb"
)

// StreamPath returns where the hot log of stream id lives below dataDir: a
// two-level sharded tree so that no directory grows past a few hundred
// entries.
func StreamPath(dataDir string, id int64) string {
	return filepath.Join(dataDir, "streams", fmt.Sprintf("%02x", id&0xff), fmt.Sprintf("%02x", (id>>8)&0xff), fmt.Sprintf("%d.db", id))
}

// Files returns every file a hot log at path may consist of: the database
// and SQLite's side files. The side files come first, the order in which
// they must be removed (a WAL left next to a fresh database would be
// replayed into it).
func Files(path string) []string {
	return []string{path + "-wal", path + "-shm", path + "-journal", path}
}

// Existing returns those of Files(path) that exist: for an in-memory
// path, the path itself while its database is kept.
func Existing(path string) ([]string, error) {
	if memdb.Is(path) {
		if memdb.Exists(path) {
			return []string{path}, nil
		}
		return nil, nil
	}
	var out []string
	for _, f := range Files(path) {
		if _, err := os.Lstat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Remove deletes the files of the hot log at path; missing ones are fine.
// The log must not be open.
func Remove(path string) error {
	if memdb.Is(path) {
		return memdb.Drop(path)
	}
	for _, p := range Files(path) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
