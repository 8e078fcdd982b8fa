package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func write(t *testing.T, f File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func contents(t *testing.T, fsys FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMemCrashDropsUnsynced(t *testing.T) {
	tests := []struct {
		name     string
		steps    func(t *testing.T, m *MemFS)
		want     map[string]string // files after the crash
		wantList []string
	}{
		{
			name: "created file without dir sync is gone",
			steps: func(t *testing.T, m *MemFS) {
				f, _ := m.Create("/d/a")
				write(t, f, "x")
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			wantList: []string{},
		},
		{
			name: "synced data and entry survive, unsynced tail does not",
			steps: func(t *testing.T, m *MemFS) {
				f, _ := m.Create("/d/a")
				write(t, f, "abc")
				f.Sync()
				m.SyncDir("/d")
				write(t, f, "def")
			},
			want:     map[string]string{"/d/a": "abc"},
			wantList: []string{"a"},
		},
		{
			name: "unsynced remove and rename are undone",
			steps: func(t *testing.T, m *MemFS) {
				for _, n := range []string{"/d/a", "/d/b"} {
					f, _ := m.Create(n)
					write(t, f, n)
					f.Sync()
				}
				m.SyncDir("/d")
				m.Remove("/d/a")
				m.Rename("/d/b", "/d/c")
			},
			want:     map[string]string{"/d/a": "/d/a", "/d/b": "/d/b"},
			wantList: []string{"a", "b"},
		},
		{
			name: "unsynced truncate is undone",
			steps: func(t *testing.T, m *MemFS) {
				f, _ := m.Create("/d/a")
				write(t, f, "abcdef")
				f.Sync()
				m.SyncDir("/d")
				f.Close()
				g, _ := m.OpenReadWrite("/d/a")
				g.Truncate(2)
			},
			want:     map[string]string{"/d/a": "abcdef"},
			wantList: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMem()
			m.MkdirAll("/d")
			tt.steps(t, m)
			c := m.Crash(nil)
			got, err := c.List("/d")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.wantList) {
				t.Fatalf("list = %q, want %q", got, tt.wantList)
			}
			for name, want := range tt.want {
				if got := contents(t, c, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if _, err := m.Open("/d/a"); !errors.Is(err, ErrCrashed) {
				t.Errorf("crashed fs: open err = %v, want ErrCrashed", err)
			}
		})
	}
}

func TestMemCrashTornKeepsPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 200 {
		m := NewMem()
		m.MkdirAll("/d")
		f, _ := m.Create("/d/a")
		write(t, f, "abc")
		f.Sync()
		m.SyncDir("/d")
		write(t, f, "defgh")
		got := contents(t, m.Crash(rng), "/d/a")
		if len(got) < 3 || got != "abcdefgh"[:len(got)] {
			t.Fatalf("torn crash left %q, want a prefix of abcdefgh from abc on", got)
		}
		seen[len(got)] = true
	}
	if len(seen) < 4 {
		t.Errorf("torn crashes kept only lengths %v", seen)
	}
}

func TestMemOpenMissing(t *testing.T) {
	m := NewMem()
	if _, err := m.Open("/nope/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

func TestOSFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x", "y")
	if err := OS.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	f, err := OS.Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "hello")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Size(); n != 5 {
		t.Errorf("size = %d", n)
	}
	f.Close()
	if err := OS.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	g, err := OS.OpenReadWrite(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Truncate(2); err != nil {
		t.Fatal(err)
	}
	write(t, g, "y")
	g.Close()
	if got := contents(t, OS, filepath.Join(dir, "a")); got != "hey" {
		t.Errorf("contents = %q, want hey", got)
	}
	if names, _ := OS.List(dir); !slices.Equal(names, []string{"a"}) {
		t.Errorf("list = %q", names)
	}
	if err := OS.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after remove: %v", err)
	}
}
