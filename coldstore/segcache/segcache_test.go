package segcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/segcache"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// putSegment stores a segment of n 100-byte messages and returns its key
// and CRC32C.
func putSegment(t *testing.T, store coldstore.Store, stream int64, n int) (string, uint32) {
	t.Helper()
	var msgs []segment.Message
	for i := range n {
		msgs = append(msgs, segment.Message{Pos: int64(i * 100), Data: bytes.Repeat([]byte{byte('a' + i%26)}, 100), BatchEnd: true})
	}
	h := segment.Header{StreamID: stream, Start: 0, End: int64(n * 100), Count: int64(n), ContentType: "text/plain"}
	var buf bytes.Buffer
	size, crc, err := segment.Encode(&buf, h, msgs)
	if err != nil {
		t.Fatal(err)
	}
	key := segment.ObjectKey(stream, 0)
	if err := store.Put(context.Background(), key, &buf, size); err != nil {
		t.Fatal(err)
	}
	return key, crc
}

func TestReadSegment(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk cache %t", cached), func(t *testing.T) {
			ctx := context.Background()
			store, err := coldstore.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg := segcache.Config{Store: store}
			if cached {
				cfg.Dir = filepath.Join(t.TempDir(), "cache")
			}
			c, err := segcache.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			key, crc := putSegment(t, store, 1, 50)
			for range 2 {
				msgs, err := c.ReadSegment(ctx, key, crc, 250, 1000, 300)
				if err != nil {
					t.Fatal(err)
				}
				// From the message holding 250 on, whole messages within 300 bytes.
				if len(msgs) != 3 || msgs[0].Pos != 200 || msgs[2].End() != 500 || msgs[1].Data[0] != 'd' {
					t.Fatalf("read [250, 1000) within 300: %d messages from %d", len(msgs), msgs[0].Pos)
				}
			}
			if st := c.Stats(); cached && (st.Misses != 1 || st.Hits == 0) {
				t.Fatalf("stats after two reads: %+v", st)
			}
			// A download that does not match the recorded checksum fails and
			// is not kept.
			bad, _ := putSegment(t, store, 2, 3)
			if _, err := c.ReadSegment(ctx, bad, 0xdeadbeef, 0, 300, 1000); cached && !errors.Is(err, segment.ErrCorrupt) {
				t.Fatalf("read with a wrong checksum: %v, want ErrCorrupt", err)
			}
			c.Forget(key)
			if _, err := c.ReadSegment(ctx, key, crc, 0, 100, 100); err != nil {
				t.Fatalf("read after Forget: %v", err)
			}
		})
	}
}
