package server

import (
	"fmt"
	"path/filepath"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/memdb"
)

// Storage selects where a server keeps its data.
type Storage string

const (
	// StorageDisk keeps everything under Config.DataDir (the default).
	StorageDisk Storage = "disk"
	// StorageMemory keeps everything in the process's memory, for tests
	// and development: the catalog, the hot logs and the subscriptions
	// database are in-memory SQLite databases, the cold store (unless
	// Config.ColdStore or Config.Store names another) is a
	// coldstore.Memory (the local kind counts as unnamed without a Dir),
	// and cold reads go to it without a disk cache. No
	// file or directory is created, DataDir is ignored, and the commit
	// journal is off (durability is moot). Everything is gone after Close.
	// It cannot be combined with Cluster.
	StorageMemory Storage = "memory"
)

// layout is where a server's data lives: the one place that decides it.
type layout struct {
	root     string // DataDir, or an in-memory root (memdb.NewRoot)
	memory   bool
	cacheDir string // disk cache of cold objects; "" reads the store directly
	hotDir   string // measured for metrics; "" in memory
}

// resolveStorage fills cfg's storage defaults and returns its layout.
func resolveStorage(cfg *Config) (layout, error) {
	switch cfg.Storage {
	case "", StorageDisk:
		if cfg.DataDir == "" {
			cfg.DataDir = "./data"
		}
		if cfg.ColdStore.Kind == "" {
			cfg.ColdStore.Kind = coldstore.KindLocal
		}
		if cfg.ColdStore.Kind == coldstore.KindLocal && cfg.ColdStore.Dir == "" {
			cfg.ColdStore.Dir = filepath.Join(cfg.DataDir, "cold")
		}
		return layout{root: cfg.DataDir, cacheDir: filepath.Join(cfg.DataDir, "cache"),
			hotDir: filepath.Join(cfg.DataDir, "streams")}, nil
	case StorageMemory:
		// A shared catalog would outlive the hot logs it points to.
		if cfg.Cluster.DSN != "" {
			return layout{}, fmt.Errorf("storage %q cannot keep its catalog in a cluster database", StorageMemory)
		}
		cfg.DataDir = memdb.NewRoot()
		cfg.Journal.Disabled = true
		// A local cold store without a directory would default to one
		// under DataDir, which memory mode does not have.
		if cfg.ColdStore.Kind == "" || cfg.ColdStore.Kind == coldstore.KindLocal && cfg.ColdStore.Dir == "" {
			cfg.ColdStore.Kind = coldstore.KindMemory
		}
		return layout{root: cfg.DataDir, memory: true}, nil
	default:
		return layout{}, fmt.Errorf("unknown storage %q (want %q or %q)", cfg.Storage, StorageDisk, StorageMemory)
	}
}

// release frees what the layout holds once the server is closed: the
// in-memory databases of a memory server.
func (l layout) release() error {
	if !l.memory {
		return nil
	}
	return memdb.DropAll(l.root)
}
