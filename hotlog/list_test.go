package hotlog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestStreamIDs(t *testing.T) {
	dir := t.TempDir()
	if ids, err := StreamIDs(dir); err != nil || len(ids) != 0 {
		t.Fatalf("StreamIDs of an empty directory = %v, %v", ids, err)
	}
	for _, id := range []int64{70000, 3, 256, 1} {
		if err := Create(t.Context(), StreamPath(dir, id), Meta{StreamID: id}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Side files, strays and files out of place are not hot logs.
	for _, p := range []string{StreamPath(dir, 1) + "-wal", filepath.Join(dir, "streams", "x.db"),
		filepath.Join(dir, "streams", "01", "00", "7.db")} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := StreamIDs(dir)
	if want := []int64{1, 3, 256, 70000}; err != nil || !slices.Equal(ids, want) {
		t.Errorf("StreamIDs = %v, %v, want %v", ids, err, want)
	}
}
