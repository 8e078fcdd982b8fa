// Package memdb decides where the server's SQLite databases live: in files
// (the default) or, for the memory storage mode (serve --storage memory),
// in SQLite's in-memory "memdb" VFS, where no file is ever created.
//
// A database path that starts with [Prefix] names an in-memory database;
// every other path is a file. [URI] builds the data source name for
// either, so the packages that own a database (hotlog, catalog,
// subscriptions) differ only where durability work on files (directory
// creation, fsync) makes no sense in memory.
//
// SQLite drops an in-memory database when its last connection closes, so
// a database would vanish between a hot log's creation and its opening,
// or when an idle stream's actor closes. [Keep] holds one connection per
// database until [Drop] (the database's removal) or [DropAll] (the
// server's shutdown). The set of kept databases is process-wide because
// SQLite's memdb namespace is: two servers in one process must use
// different roots ([NewRoot]).
package memdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver, which has the memdb VFS
)

// Prefix starts every in-memory database path.
const Prefix = "memdb:"

// NewRoot returns a fresh root for in-memory paths, to be used like a data
// directory (filepath.Join(root, "catalog.db") names an in-memory
// database).
func NewRoot() string {
	var b [8]byte
	rand.Read(b[:])
	return Prefix + "/ds-" + hex.EncodeToString(b[:])
}

// Is reports whether path names an in-memory database.
func Is(path string) bool { return strings.HasPrefix(path, Prefix) }

// URI returns the modernc.org/sqlite data source name of the database at
// path with the query q: a file: URI with the absolute path of a file
// (escaped, so that '?', '#' and '%' in directory names survive), or the
// memdb VFS for an in-memory path.
func URI(path string, q url.Values) (string, error) {
	if Is(path) {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("vfs", "memdb")
		u := url.URL{Scheme: "file", OmitHost: true, Path: name(path), RawQuery: q2.Encode()}
		return u.String(), nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String(), nil
}

// name is the memdb name of an in-memory path; it starts with '/', which
// memdb needs for a name shared by all connections of the process.
func name(path string) string {
	n := filepath.ToSlash(strings.TrimPrefix(path, Prefix))
	if !strings.HasPrefix(n, "/") {
		n = "/" + n
	}
	return n
}

// kept holds one open connection per in-memory database that exists.
var kept = struct {
	sync.Mutex
	m map[string]*sql.DB
}{m: map[string]*sql.DB{}}

// Keep makes the in-memory database at path exist (empty if it did not)
// until Drop or DropAll. Keeping a kept database is a no-op.
func Keep(ctx context.Context, path string) error {
	if !Is(path) {
		return fmt.Errorf("memdb: %s is not an in-memory path", path)
	}
	kept.Lock()
	defer kept.Unlock()
	if _, ok := kept.m[path]; ok {
		return nil
	}
	dsn, err := URI(path, url.Values{"mode": {"rwc"}})
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("memdb: keep %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	// The idle connection of the pool is what keeps the database.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("memdb: keep %s: %w", path, err)
	}
	kept.m[path] = db
	return nil
}

// Exists reports whether the in-memory database at path is kept.
func Exists(path string) bool {
	kept.Lock()
	defer kept.Unlock()
	_, ok := kept.m[path]
	return ok
}

// Drop releases the in-memory database at path: its memory is freed once
// the connections of its users are closed too. Dropping a database that is
// not kept is a no-op.
func Drop(path string) error {
	kept.Lock()
	db, ok := kept.m[path]
	delete(kept.m, path)
	kept.Unlock()
	if !ok {
		return nil
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("memdb: drop %s: %w", path, err)
	}
	return nil
}

// DropAll drops every kept database below root (as made by NewRoot).
func DropAll(root string) error {
	kept.Lock()
	var dbs []*sql.DB
	for p, db := range kept.m {
		if p == root || strings.HasPrefix(p, root+"/") {
			dbs = append(dbs, db)
			delete(kept.m, p)
		}
	}
	kept.Unlock()
	var errs []error
	for _, db := range dbs {
		errs = append(errs, db.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("memdb: drop %s: %w", root, err)
	}
	return nil
}

// Count returns how many in-memory databases below root are kept.
func Count(root string) int {
	kept.Lock()
	defer kept.Unlock()
	n := 0
	for p := range kept.m {
		if strings.HasPrefix(p, root+"/") {
			n++
		}
	}
	return n
}
