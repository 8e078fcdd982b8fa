package server

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/httpcall"
	"github.com/streamtier/durable-streams/internal/memdb"
	"github.com/streamtier/durable-streams/sequencer"
)

// TestMemoryStorage runs a stream's whole life in memory mode, with
// segments rotated to the cold store and read back, and checks that no
// file or directory appears (not in the working directory, HOME or the
// DataDir it was given) and that every in-memory database is freed.
func TestMemoryStorage(t *testing.T) {
	home, cwd := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Chdir(cwd)
	dataDir := filepath.Join(cwd, "data")
	s, hs := startServer(t, Config{Storage: StorageMemory, DataDir: dataDir,
		Rotation: sequencer.RotationPolicy{SealMessages: 2}})
	if _, ok := s.ColdStore().(*coldstore.Memory); !ok {
		t.Fatalf("cold store is %T, want *coldstore.Memory", s.ColdStore())
	}
	root := s.cfg.DataDir
	st := hs.URL + "/v1/stream/"

	httpcall.Do(t, "PUT", st+"a", "m0", "Content-Type", "text/plain").Want(t, 201)
	var want strings.Builder
	want.WriteString("m0")
	for i := 1; i < 9; i++ {
		m := "m" + string(rune('0'+i))
		httpcall.Do(t, "POST", st+"a", m, "Content-Type", "text/plain").Want(t, 204)
		want.WriteString(m)
	}
	waitColdObject(t, s)
	if got := httpcall.Do(t, "GET", st+"a?offset=-1", "").Want(t, 200).Body; got != want.String() {
		t.Fatalf("read %q, want %q", got, want.String())
	}
	httpcall.Do(t, "PUT", st+"f", "", "Stream-Forked-From", "/v1/stream/a").Want(t, 201)
	httpcall.Do(t, "POST", st+"f", "fx", "Content-Type", "text/plain", "Stream-Closed", "true").Want(t, 204)
	if got := httpcall.Do(t, "GET", st+"f?offset=-1", "").Want(t, 200).Body; got != want.String()+"fx" {
		t.Fatalf("fork read %q", got)
	}
	httpcall.Do(t, "POST", st+"f", "late", "Content-Type", "text/plain").Want(t, 409)
	httpcall.Do(t, "PUT", st+"ttl", "x", "Content-Type", "text/plain", "Stream-TTL", "1").Want(t, 201)
	if n := memdb.Count(root + "/streams"); n != 3 {
		t.Errorf("%d hot logs in memory, want 3", n)
	}

	httpcall.Do(t, "DELETE", st+"a", "").Want(t, 204) // soft: the fork keeps it
	httpcall.Do(t, "DELETE", st+"f", "").Want(t, 204) // cascades to a
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := httpcall.Do(t, "HEAD", st+"ttl", "").Status
		if code == 404 && memdb.Count(root+"/streams") == 0 && objects(t, s.ColdStore()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deletes and expiry: HEAD ttl %d, %d hot logs, %d cold objects", code,
				memdb.Count(root+"/streams"), objects(t, s.ColdStore()))
		}
		time.Sleep(50 * time.Millisecond)
	}

	hs.Close()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := memdb.Count(root); n != 0 {
		t.Errorf("%d in-memory databases left after Close", n)
	}
	for _, dir := range []string{home, cwd} {
		assertEmptyDir(t, dir)
	}
}

func waitColdObject(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for objects(t, s.ColdStore()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no segment uploaded to the memory cold store")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func objects(t *testing.T, st coldstore.Store) int {
	t.Helper()
	n := 0
	for _, err := range st.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		if p != dir {
			t.Errorf("%s was created", p)
		}
		return nil
	})
	if _, err := os.Stat(dir); err != nil {
		t.Error(err)
	}
}

func TestStorageRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Storage: "tape"}, `unknown storage "tape"`},
		{Config{Storage: StorageMemory, Cluster: Cluster{DSN: "postgres://127.0.0.1/x"}}, "cluster database"},
	} {
		tc.cfg.DataDir, tc.cfg.Logger = t.TempDir(), discard()
		if _, err := New(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Storage %q: err = %v, want %q", tc.cfg.Storage, err, tc.want)
		}
	}
}
