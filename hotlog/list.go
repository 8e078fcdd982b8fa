package hotlog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// StreamIDs returns the ids of the streams that have a hot log below
// dataDir (see [StreamPath]), in ascending order: the streams whose
// unsealed data this node holds. A missing tree holds none.
func StreamIDs(dataDir string) ([]int64, error) {
	var ids []int64
	root := filepath.Join(dataDir, "streams")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		name, ok := strings.CutSuffix(d.Name(), ".db")
		if d.IsDir() || !ok {
			return nil
		}
		id, err := strconv.ParseInt(name, 10, 64)
		if err != nil || StreamPath(dataDir, id) != path {
			return nil // not a hot log of this layout
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}
