package catalog

import (
	"context"
	"database/sql"
	"hash/maphash"
	"sync/atomic"
)

// pathFilter is a Bloom filter of the paths of a SQLite catalog's rows, so
// that [Catalog.Get] answers [ErrNotFound] for a path never used without a
// query: every stream creation looks its path up first, and a new path is
// found nowhere.
//
// Invariant: once loaded, every path that has a row in the database has its
// bits set. A path's bits are set before its insert runs (insert), and the
// paths in the database at open by a scan (load), which the filter waits
// for before it answers; bits are never cleared, so a deleted path, like a
// false positive, costs only the lookup that every creation made before.
// The invariant needs every write to the database to go through this
// Catalog: true of SQLite, which only the server owning the data directory
// opens. A PostgreSQL catalog is shared by the nodes of a cluster, each
// inserting the paths it owns, and has no filter.
//
// Memory: pathFilterBits bits (2 MiB) per catalog, whatever the number of
// streams. With pathFilterProbes probes the false positive rate stays under
// 1% up to about 1.5 million paths (present at open or created since); past
// that more and more lookups of new paths reach the database, as without a
// filter, and the next start counts only the paths present then.
type pathFilter struct {
	seed   maphash.Seed
	bits   []atomic.Uint64
	ready  atomic.Bool   // load has added every path present at open
	loaded chan struct{} // closed when load returns
	cancel context.CancelFunc
}

const (
	pathFilterBits   = 1 << 24 // a power of two
	pathFilterProbes = 7
)

// newPathFilter returns an empty filter and starts loading the paths of
// db's rows into it. Paths inserted from now on must be added too.
func newPathFilter(db *sql.DB) *pathFilter {
	ctx, cancel := context.WithCancel(context.Background())
	f := &pathFilter{seed: maphash.MakeSeed(), bits: make([]atomic.Uint64, pathFilterBits/64),
		loaded: make(chan struct{}), cancel: cancel}
	go f.load(ctx, db)
	return f
}

// load adds the paths of every row of db and marks the filter ready. A
// failed scan leaves the filter unready: every lookup queries.
func (f *pathFilter) load(ctx context.Context, db *sql.DB) {
	defer close(f.loaded)
	rows, err := db.QueryContext(ctx, "SELECT path FROM streams")
	if err != nil {
		return
	}
	defer rows.Close()
	var path string
	for rows.Next() {
		if rows.Scan(&path) != nil {
			return
		}
		f.add(path)
	}
	if rows.Err() == nil {
		f.ready.Store(true)
	}
}

// close stops the load and waits for it. A closed catalog answers
// nothing from memory: its lookups fail like every other method.
func (f *pathFilter) close() {
	f.cancel()
	<-f.loaded
	f.ready.Store(false)
}

// probes calls fn with the bit positions of path (double hashing).
func (f *pathFilter) probes(path string, fn func(bit uint64) bool) {
	h := maphash.String(f.seed, path)
	step := h>>32 | 1
	mask := uint64(len(f.bits))*64 - 1 // a power of two, less one
	for range pathFilterProbes {
		if !fn(h & mask) {
			return
		}
		h += step
	}
}

// add sets path's bits.
func (f *pathFilter) add(path string) {
	f.probes(path, func(bit uint64) bool {
		f.bits[bit/64].Or(1 << (bit % 64))
		return true
	})
}

// mayHave reports whether path may have a row: false only if it has
// none.
func (f *pathFilter) mayHave(path string) bool {
	if !f.ready.Load() {
		return true
	}
	all := true
	f.probes(path, func(bit uint64) bool {
		all = f.bits[bit/64].Load()&(1<<(bit%64)) != 0
		return all
	})
	return all
}
