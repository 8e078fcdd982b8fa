package coldstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/miniotest"
)

// runContract checks the behaviour every Store must have. It only uses keys
// under a few top-level prefixes, one per subtest, so the store may be shared
// with other data as long as those prefixes are unused.
func runContract(t *testing.T, s coldstore.Store) {
	ctx := t.Context()

	t.Run("RoundTrip", func(t *testing.T) {
		big := randomBytes(5 << 20)
		cases := []struct {
			name string
			data []byte
			// reader wraps the data; nil means a *bytes.Reader (seekable).
			reader func([]byte) io.Reader
		}{
			{"empty", nil, nil},
			{"one-byte", []byte{0x7f}, nil},
			{"5MiB-seekable", big, nil},
			{"5MiB-unseekable", big, func(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }},
			{"1KiB-unseekable-empty-reads", randomBytes(1024), func(b []byte) io.Reader { return &stutterReader{b: b} }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				key := "roundtrip/" + c.name
				var r io.Reader = bytes.NewReader(c.data)
				if c.reader != nil {
					r = c.reader(c.data)
				}
				if err := s.Put(ctx, key, r, int64(len(c.data))); err != nil {
					t.Fatalf("Put: %v", err)
				}
				if got := get(t, s, key, 0, -1); !bytes.Equal(got, c.data) {
					t.Fatalf("Get: got %d bytes, want %d (equal prefix: %v)", len(got), len(c.data), bytes.HasPrefix(c.data, got))
				}
				info, err := s.Head(ctx, key)
				if err != nil {
					t.Fatalf("Head: %v", err)
				}
				if info.Key != key || info.Size != int64(len(c.data)) {
					t.Fatalf("Head = %+v, want key %q size %d", info, key, len(c.data))
				}
			})
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		data := randomBytes(1000)
		put(t, s, "ranges/obj", data)
		put(t, s, "ranges/empty", nil)
		for _, c := range []struct {
			off, length int64
			want        []byte
		}{
			{0, 10, data[:10]},        // start
			{500, 100, data[500:600]}, // middle
			{990, -1, data[990:]},     // to the end
			{0, -1, data},             // whole
			{0, 1000, data},           // whole, explicit
			{999, 1, data[999:]},      // last byte
			{995, 100, data[995:]},    // cut at the end
			{0, 0, []byte{}},          // zero-length at start
			{500, 0, []byte{}},        // zero-length in the middle
			{1000, -1, []byte{}},      // from exactly the end
			{1000, 0, []byte{}},       // zero-length at the end
			{1000, 10, []byte{}},      // from the end, explicit length
			{1, 1<<63 - 1, data[1:]},  // huge length
		} {
			if got := get(t, s, "ranges/obj", c.off, c.length); !bytes.Equal(got, c.want) {
				t.Errorf("Get(%d, %d): got %d bytes, want %d (data[%d:%d])", c.off, c.length, len(got), len(c.want), c.off, c.off+int64(len(c.want)))
			}
		}
		for _, c := range []struct{ off, length int64 }{{0, -1}, {0, 0}, {0, 5}} {
			if got := get(t, s, "ranges/empty", c.off, c.length); len(got) != 0 {
				t.Errorf("Get(empty, %d, %d) = %d bytes, want none", c.off, c.length, len(got))
			}
		}
		for _, c := range []struct {
			key         string
			off, length int64
		}{
			{"ranges/obj", 1001, -1},
			{"ranges/obj", 1001, 0},
			{"ranges/obj", 5000, 10},
			{"ranges/obj", -1, 5},
			{"ranges/empty", 1, -1},
		} {
			rc, err := s.Get(ctx, c.key, c.off, c.length)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, coldstore.ErrInvalidRange) {
				t.Errorf("Get(%s, %d, %d): err = %v, want ErrInvalidRange", c.key, c.off, c.length, err)
			}
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		v1, v2 := randomBytes(100), randomBytes(50)
		put(t, s, "overwrite/obj", v1)
		put(t, s, "overwrite/obj", v2)
		if got := get(t, s, "overwrite/obj", 0, -1); !bytes.Equal(got, v2) {
			t.Fatalf("after overwrite got %d bytes, want the 50 of v2", len(got))
		}
		if info := head(t, s, "overwrite/obj"); info.Size != 50 {
			t.Fatalf("Head size = %d, want 50", info.Size)
		}
		put(t, s, "overwrite/obj", v2) // identical re-upload
		if got := get(t, s, "overwrite/obj", 0, -1); !bytes.Equal(got, v2) {
			t.Fatal("identical re-upload changed the object")
		}
		if n := len(list(t, s, "overwrite/")); n != 1 {
			t.Fatalf("List after overwrites: %d objects, want 1", n)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		put(t, s, "missing/present", []byte("x"))
		for _, key := range []string{"missing/absent", "missing/present/below", "missing", "missing-nothing/at/all"} {
			if _, err := s.Head(ctx, key); !errors.Is(err, coldstore.ErrNotFound) {
				t.Errorf("Head(%q): err = %v, want ErrNotFound", key, err)
			}
			for _, r := range [][2]int64{{0, -1}, {0, 0}, {3, 10}} {
				rc, err := s.Get(ctx, key, r[0], r[1])
				if err == nil {
					rc.Close()
				}
				if !errors.Is(err, coldstore.ErrNotFound) {
					t.Errorf("Get(%q, %d, %d): err = %v, want ErrNotFound", key, r[0], r[1], err)
				}
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		put(t, s, "delete/a", []byte("a"))
		put(t, s, "delete/b", []byte("b"))
		put(t, s, "delete/sub/c", []byte("c"))
		for range 2 { // the second time the object is already gone
			if err := s.Delete(ctx, "delete/a"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		if err := s.Delete(ctx, "delete/never-existed/x"); err != nil {
			t.Fatalf("Delete of a never-existing key: %v", err)
		}
		if err := s.Delete(ctx, "delete/sub"); err != nil {
			t.Fatalf("Delete of a key that is only a prefix of others: %v", err)
		}
		if _, err := s.Head(ctx, "delete/a"); !errors.Is(err, coldstore.ErrNotFound) {
			t.Fatalf("Head after Delete: err = %v, want ErrNotFound", err)
		}
		if got := keys(list(t, s, "delete/")); !slices.Equal(got, []string{"delete/b", "delete/sub/c"}) {
			t.Fatalf("List after Delete = %q", got)
		}
		if err := s.Delete(ctx, "delete/sub/c"); err != nil {
			t.Fatal(err)
		}
		put(t, s, "delete/sub/c", []byte("again")) // the parent "directory" is usable again
		if got := get(t, s, "delete/sub/c", 0, -1); string(got) != "again" {
			t.Fatalf("re-Put after Delete: got %q", got)
		}
	})

	t.Run("List", func(t *testing.T) {
		all := []string{
			"list/a/1", "list/a/10", "list/a/2", "list/a/1x/deep",
			"list/a-b", "list/a.c", "list/a0", "list/ab", "list/b/x/y",
		}
		for i, k := range all {
			put(t, s, k, bytes.Repeat([]byte{'x'}, i))
		}
		put(t, s, "list-other/z", []byte("z")) // shares the string prefix "list"
		sorted := slices.Sorted(slices.Values(all))
		for _, c := range []struct {
			prefix string
			want   []string
		}{
			{"list/", sorted},
			{"list/a/1", []string{"list/a/1", "list/a/10", "list/a/1x/deep"}},
			{"list/a/", []string{"list/a/1", "list/a/10", "list/a/1x/deep", "list/a/2"}},
			// '-' < '.' < '/' < '0' < 'b': directory "a" sorts between its siblings.
			{"list/a", []string{"list/a-b", "list/a.c", "list/a/1", "list/a/10", "list/a/1x/deep", "list/a/2", "list/a0", "list/ab"}},
			{"list/b/x/y", []string{"list/b/x/y"}},
			{"list", append([]string{"list-other/z"}, sorted...)}, // '-' < '/'
			{"list/a/3", nil},
			{"list/zzz", nil},
			{"list//", nil},
			{"list/../", nil},
			{"no-such-prefix/", nil},
		} {
			got := list(t, s, c.prefix)
			if !slices.Equal(keys(got), c.want) {
				t.Errorf("List(%q) = %q, want %q", c.prefix, keys(got), c.want)
			}
		}
		// Sizes and times come with the listing.
		before := time.Now().Add(-time.Hour)
		for _, info := range list(t, s, "list/") {
			i := slices.Index(all, info.Key)
			if info.Size != int64(i) {
				t.Errorf("List: %s has size %d, want %d", info.Key, info.Size, i)
			}
			if info.Modified.Before(before) || info.Modified.After(time.Now().Add(time.Hour)) {
				t.Errorf("List: %s modified at %v", info.Key, info.Modified)
			}
		}
		// Stopping early is allowed (yield must not be called again).
		n := 0
		for _, err := range s.List(ctx, "list/") {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
	})

	t.Run("Nested", func(t *testing.T) {
		key := "nested/stream-ü/deep/er/and/deeper/0000000000000042.seg"
		data := randomBytes(4096)
		put(t, s, key, data)
		if got := get(t, s, key, 4000, -1); !bytes.Equal(got, data[4000:]) {
			t.Fatal("nested Get mismatch")
		}
		if got := keys(list(t, s, "nested/stream-ü/")); !slices.Equal(got, []string{key}) {
			t.Fatalf("List = %q", got)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if got := list(t, s, "nested/"); len(got) != 0 {
			t.Fatalf("List after Delete = %q", keys(got))
		}
	})

	t.Run("Modified", func(t *testing.T) {
		before := time.Now().Truncate(time.Second).Add(-2 * time.Second)
		put(t, s, "modified/obj", []byte("m"))
		after := time.Now().Add(2 * time.Second)
		info := head(t, s, "modified/obj")
		if info.Modified.Before(before) || info.Modified.After(after) {
			t.Fatalf("Modified = %v, want within [%v, %v]", info.Modified, before, after)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		for _, key := range []string{"", "/abs", "a//b", "a/../b", "..", "../x", "./a", "a/.", "a/", "a\x00b", `a\b`, "x/.coldstore-tmp-1"} {
			errs := map[string]error{
				"Put":    s.Put(ctx, key, strings.NewReader("x"), 1),
				"Delete": s.Delete(ctx, key),
			}
			_, errs["Head"] = s.Head(ctx, key)
			var rc io.ReadCloser
			rc, errs["Get"] = s.Get(ctx, key, 0, -1)
			if rc != nil {
				rc.Close()
			}
			for op, err := range errs {
				if !errors.Is(err, coldstore.ErrInvalidKey) {
					t.Errorf("%s(%q): err = %v, want ErrInvalidKey", op, key, err)
				}
			}
		}
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		data := randomBytes(100)
		readers := map[string]func() io.Reader{
			"seekable":   func() io.Reader { return bytes.NewReader(data) },
			"unseekable": func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} },
		}
		for name, r := range readers {
			for _, size := range []int64{0, 99, 101, 1000} {
				key := fmt.Sprintf("mismatch/%s-%d", name, size)
				err := s.Put(ctx, key, r(), size)
				if !errors.Is(err, coldstore.ErrSizeMismatch) {
					t.Errorf("Put(%s, size %d) of 100 bytes: err = %v, want ErrSizeMismatch", name, size, err)
				}
				if _, err := s.Head(ctx, key); !errors.Is(err, coldstore.ErrNotFound) {
					t.Errorf("after failed Put(%s, size %d): Head err = %v, want ErrNotFound", name, size, err)
				}
			}
		}
		// A failed overwrite keeps the old object.
		put(t, s, "mismatch/keep", data)
		if err := s.Put(ctx, "mismatch/keep", bytes.NewReader(data[:10]), 100); err == nil {
			t.Fatal("short Put succeeded")
		}
		if got := get(t, s, "mismatch/keep", 0, -1); !bytes.Equal(got, data) {
			t.Fatal("failed overwrite damaged the object")
		}
		// A seekable reader is read from its current position.
		r := bytes.NewReader(data)
		r.Seek(30, io.SeekStart)
		if err := s.Put(ctx, "mismatch/tail", r, 70); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, "mismatch/tail", 0, -1); !bytes.Equal(got, data[30:]) {
			t.Fatal("Put from a positioned reader stored the wrong bytes")
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		const n = 16
		blobs := make([][]byte, n)
		for i := range blobs {
			blobs[i] = randomBytes(64<<10 + i)
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				// Half share a directory, half get their own.
				key := fmt.Sprintf("concurrent/shared/k%02d", i)
				if i%2 == 1 {
					key = fmt.Sprintf("concurrent/own%02d/k", i)
				}
				if err := s.Put(ctx, key, bytes.NewReader(blobs[i]), int64(len(blobs[i]))); err != nil {
					t.Errorf("Put(%s): %v", key, err)
				}
			})
		}
		wg.Wait()
		got := list(t, s, "concurrent/")
		if len(got) != n {
			t.Fatalf("List: %d objects, want %d", len(got), n)
		}
		for _, info := range got {
			var i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(strings.TrimPrefix(info.Key, "concurrent/shared/k"), "concurrent/own"), "%d", &i); err != nil {
				t.Fatalf("unexpected key %q", info.Key)
			}
			if !bytes.Equal(get(t, s, info.Key, 0, -1), blobs[i]) {
				t.Errorf("%s: content mismatch", info.Key)
			}
		}
	})

	t.Run("AtomicOverwrite", func(t *testing.T) {
		// Readers racing with overwrites see one whole version or the other.
		a, b := bytes.Repeat([]byte{'a'}, 256<<10), bytes.Repeat([]byte{'b'}, 128<<10)
		const key = "atomic/obj"
		put(t, s, key, a)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			defer close(stop)
			for i := range 20 {
				v := a
				if i%2 == 0 {
					v = b
				}
				if err := s.Put(ctx, key, bytes.NewReader(v), int64(len(v))); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					rc, err := s.Get(ctx, key, 0, -1)
					if err != nil {
						t.Errorf("Get during overwrite: %v", err)
						return
					}
					got, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						t.Errorf("reading during overwrite: %v", err)
						return
					}
					if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
						t.Errorf("read a mixed or partial object of %d bytes", len(got))
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("CancelledContext", func(t *testing.T) {
		put(t, s, "cancel/obj", []byte("data"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", op, err)
			}
		}
		check("Put", s.Put(cctx, "cancel/new", strings.NewReader("x"), 1))
		rc, err := s.Get(cctx, "cancel/obj", 0, -1)
		if rc != nil {
			rc.Close()
		}
		check("Get", err)
		_, err = s.Head(cctx, "cancel/obj")
		check("Head", err)
		check("Delete", s.Delete(cctx, "cancel/obj"))
		err = nil
		for _, e := range s.List(cctx, "cancel/") {
			if e != nil {
				err = e
			}
		}
		check("List", err)
		if _, err := s.Head(ctx, "cancel/new"); !errors.Is(err, coldstore.ErrNotFound) {
			t.Errorf("a cancelled Put stored the object (Head err = %v)", err)
		}
		head(t, s, "cancel/obj") // a cancelled Delete deleted nothing
	})
}

// TestLocalContract runs the contract against the local directory backend.
func TestLocalContract(t *testing.T) {
	s, err := coldstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	runContract(t, s)
}

// TestMemoryContract runs the contract against the in-memory backend.
func TestMemoryContract(t *testing.T) { runContract(t, coldstore.NewMemory()) }

// TestLocalSpecifics covers behaviour of the local backend beyond the
// contract.
func TestLocalSpecifics(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s, err := coldstore.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}

	put(t, s, "seg/stream1/0001", []byte("one"))
	// Leftovers of a crashed Put are neither listed nor addressable.
	if err := os.WriteFile(filepath.Join(root, "seg", "stream1", ".coldstore-tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := keys(list(t, s, "")); !slices.Equal(got, []string{"seg/stream1/0001"}) {
		t.Fatalf("List = %q", got)
	}
	// Files are where the key says, with the data only.
	if b, err := os.ReadFile(filepath.Join(root, "seg", "stream1", "0001")); err != nil || string(b) != "one" {
		t.Fatalf("file content %q, %v", b, err)
	}
	// A Put never leaves temp files behind on success or failure.
	if err := s.Put(ctx, "seg/stream1/0002", strings.NewReader("short"), 10); err == nil {
		t.Fatal("short Put succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "seg", "stream1"))
	if len(ents) != 2 { // 0001 and the planted temp file
		t.Fatalf("directory holds %d entries after a failed Put", len(ents))
	}
	// Delete prunes directories it empties, but never the root.
	os.Remove(filepath.Join(root, "seg", "stream1", ".coldstore-tmp-123"))
	if err := s.Delete(ctx, "seg/stream1/0001"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "seg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directories left after Delete: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root removed: %v", err)
	}
	// A key whose parent is an object cannot be stored locally.
	put(t, s, "file", []byte("f"))
	if err := s.Put(ctx, "file/child", strings.NewReader("c"), 1); err == nil {
		t.Fatal("Put under an object succeeded")
	}
	if _, err := s.Head(ctx, "file/child"); !errors.Is(err, coldstore.ErrNotFound) {
		t.Fatalf("Head under an object: %v", err)
	}
}

// TestS3MinIOContract runs the contract against a real MinIO server.
func TestS3MinIOContract(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := t.Context()

	t.Run("Plain", func(t *testing.T) {
		s, err := coldstore.NewS3(ctx, srv.S3Config())
		if err != nil {
			t.Fatal(err)
		}
		runContract(t, s)
	})

	t.Run("PrefixedPaginated", func(t *testing.T) {
		cfg := srv.S3Config()
		cfg.Bucket = "prefixed"
		cfg.Prefix = "/tenant-a/cold/"
		cfg.ListPageSize = 2 // exercise the paginator
		s, err := coldstore.NewS3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx); err != nil { // idempotent
			t.Fatal(err)
		}
		runContract(t, s)

		// Objects really live under the prefix, as another S3 client
		// (minio-go) lists the whole bucket.
		all, err := srv.Objects(ctx, cfg.Bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) == 0 {
			t.Fatal("bucket is empty")
		}
		for _, obj := range all {
			if !strings.HasPrefix(obj.Key, "tenant-a/cold/") {
				t.Fatalf("object %q outside the prefix", obj.Key)
			}
		}
	})

	t.Run("SecondClient", func(t *testing.T) {
		// What the backend writes, minio-go reads back exactly, and the
		// other way round: keys, sizes, bodies and listings agree between
		// the two implementations.
		cfg := srv.S3Config()
		cfg.Bucket = "second-client"
		cfg.Prefix = "p"
		s, err := coldstore.NewS3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx); err != nil {
			t.Fatal(err)
		}
		ours := map[string][]byte{"a/1.seg": []byte("first"), "a/2.seg": bytes.Repeat([]byte{0, 0xff}, 70_000), "b": {}}
		for k, v := range ours {
			put(t, s, k, v)
		}
		theirs := map[string][]byte{"c/3.seg": []byte("written by minio-go")}
		for k, v := range theirs {
			if err := srv.WriteObject(ctx, cfg.Bucket, "p/"+k, v); err != nil {
				t.Fatal(err)
			}
		}
		objs, err := srv.Objects(ctx, cfg.Bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != len(ours)+len(theirs) {
			t.Fatalf("minio-go lists %d objects, want %d: %+v", len(objs), len(ours)+len(theirs), objs)
		}
		for _, obj := range objs {
			key := strings.TrimPrefix(obj.Key, "p/")
			want, mine := ours[key]
			if !mine {
				want = theirs[key]
			}
			if obj.Size != int64(len(want)) {
				t.Errorf("%s: minio-go lists %d bytes, want %d", obj.Key, obj.Size, len(want))
			}
			got, err := srv.ReadObject(ctx, cfg.Bucket, obj.Key)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s through minio-go: %d bytes, %v; want the %d bytes written", obj.Key, len(got), err, len(want))
			}
			if got := get(t, s, key, 0, -1); !bytes.Equal(got, want) {
				t.Errorf("%s through the backend: %d bytes, want %d", key, len(got), len(want))
			}
		}
		if got := list(t, s, ""); len(got) != len(objs) {
			t.Errorf("the backend lists %d objects, minio-go %d", len(got), len(objs))
		}
	})

	t.Run("MissingBucketIsNotNotFound", func(t *testing.T) {
		cfg := srv.S3Config()
		cfg.Bucket = "no-such-bucket"
		s, err := coldstore.NewS3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Get(ctx, "k", 0, -1)
		if err == nil || errors.Is(err, coldstore.ErrNotFound) {
			t.Fatalf("Get from a missing bucket: err = %v, want an error other than ErrNotFound", err)
		}
		for _, err := range s.List(ctx, "") {
			if err == nil {
				t.Fatal("List of a missing bucket succeeded")
			}
		}
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		cfg := srv.S3Config()
		cfg.SecretAccessKey = "wrong-secret"
		cfg.MaxRetries = -1
		s, err := coldstore.NewS3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, "k"); err == nil || errors.Is(err, coldstore.ErrNotFound) {
			t.Fatalf("Head with a wrong secret: err = %v, want a non-NotFound error", err)
		}
	})

	t.Run("OpenAndDescribe", func(t *testing.T) {
		cfg := coldstore.Config{Kind: "s3", S3: srv.S3Config()}
		s, err := coldstore.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		put(t, s, "open/x", []byte("x"))
		checkNoSecret(t, srv.SecretKey, cfg, s)
	})
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, kind := range []string{"", "local"} {
		s, err := coldstore.Open(ctx, coldstore.Config{Kind: kind, Dir: dir})
		if err != nil {
			t.Fatalf("Open(%q): %v", kind, err)
		}
		if _, ok := s.(*coldstore.Local); !ok {
			t.Fatalf("Open(%q) = %T", kind, s)
		}
		if d := coldstore.Describe(s); !strings.Contains(d, dir) {
			t.Fatalf("Describe = %q", d)
		}
	}
	if _, err := coldstore.Open(ctx, coldstore.Config{Kind: "local"}); err == nil {
		t.Fatal("local without a directory accepted")
	}
	if _, err := coldstore.Open(ctx, coldstore.Config{Kind: "gcs"}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := coldstore.Open(ctx, coldstore.Config{Kind: "s3"}); err == nil {
		t.Fatal("s3 without a bucket accepted")
	}
	if _, err := coldstore.Open(ctx, coldstore.Config{Kind: "s3", S3: coldstore.S3Config{Bucket: "b", AccessKeyID: "id"}}); err == nil {
		t.Fatal("s3 with an access key but no secret accepted")
	}
	cfg := coldstore.Config{Kind: "s3", S3: coldstore.S3Config{
		Endpoint: "acct.r2.cloudflarestorage.com", Region: "auto", Bucket: "segs", Prefix: "p",
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI-secret", SessionToken: "token-secret",
	}}
	s, err := coldstore.Open(ctx, cfg) // does not contact the service
	if err != nil {
		t.Fatal(err)
	}
	if d := coldstore.Describe(s); !strings.Contains(d, "s3://segs/p") || !strings.Contains(d, "https://acct.r2.cloudflarestorage.com") {
		t.Fatalf("Describe = %q", d)
	}
	checkNoSecret(t, "wJalrXUtnFEMI-secret", cfg, s)
	checkNoSecret(t, "token-secret", cfg, s)
}

// checkNoSecret fails if any usual way of logging cfg or s shows secret.
func checkNoSecret(t *testing.T, secret string, cfg coldstore.Config, s coldstore.Store) {
	t.Helper()
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cold store", "cfg", cfg, "s3", cfg.S3)
	for _, out := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprint(cfg.S3), fmt.Sprintf("%+v", cfg.S3), fmt.Sprintf("%#v", cfg.S3),
		fmt.Sprint(s), fmt.Sprintf("%+v", s), coldstore.Describe(s), logged.String(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func put(t *testing.T, s coldstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, s coldstore.Store, key string, off, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): reading: %v", key, off, length, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

func head(t *testing.T, s coldstore.Store, key string) coldstore.ObjectInfo {
	t.Helper()
	info, err := s.Head(t.Context(), key)
	if err != nil {
		t.Fatalf("Head(%q): %v", key, err)
	}
	return info
}

func list(t *testing.T, s coldstore.Store, prefix string) []coldstore.ObjectInfo {
	t.Helper()
	var out []coldstore.ObjectInfo
	for info, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		out = append(out, info)
	}
	return out
}

func keys(infos []coldstore.ObjectInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// stutterReader returns its data in small pieces, with (0, nil) reads in
// between, as some network readers do.
type stutterReader struct {
	b    []byte
	flip bool
}

func (r *stutterReader) Read(p []byte) (int, error) {
	r.flip = !r.flip
	if r.flip {
		return 0, nil
	}
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7)], r.b)
	r.b = r.b[n:]
	return n, nil
}
