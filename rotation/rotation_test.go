package rotation_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/protocol"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/server"
)

// flakyStore fails the first failPuts Put calls, like an object store that
// is down for a while.
type flakyStore struct {
	coldstore.Store
	failPuts atomic.Int64
	puts     atomic.Int64
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f.puts.Add(1)
	if f.failPuts.Add(-1) >= 0 {
		return errors.New("injected: object store unavailable")
	}
	return f.Store.Put(ctx, key, r, size)
}

func newServer(t *testing.T, store coldstore.Store) *server.Server {
	t.Helper()
	srv, err := server.New(t.Context(), server.Config{
		DataDir:  t.TempDir(),
		Store:    store,
		Rotation: sequencer.RotationPolicy{SealMessages: 4},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	return srv
}

func TestUploadTrimAndColdRead(t *testing.T) {
	for _, failures := range []int64{0, 3} {
		t.Run(fmt.Sprintf("failures=%d", failures), func(t *testing.T) {
			local, err := coldstore.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			store := &flakyStore{Store: local}
			store.failPuts.Store(failures)
			srv := newServer(t, store)
			reg := srv.Registry()
			ctx := t.Context()
			ct, _ := protocol.ParseContentType("text/plain")
			res, err := reg.Create(ctx, &sequencer.CreateRequest{Path: "s", ContentType: &ct})
			if err != nil {
				t.Fatal(err)
			}
			h := res.Handle
			defer h.Release()
			var want bytes.Buffer
			for i := range 18 { // 4 full segments and an open one
				m := fmt.Sprintf("message-%02d;", i)
				want.WriteString(m)
				if _, err := h.Append(ctx, &sequencer.AppendRequest{ContentType: ct, Messages: [][]byte{[]byte(m)}}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { return srv.Rotator().Stats().Uploaded >= 4 })
			if st := srv.Rotator().Stats(); failures > 0 && st.Failures < failures {
				t.Errorf("failures = %d, want >= %d", st.Failures, failures)
			}
			n := 0
			for _, err := range local.List(ctx, "") {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 4 {
				t.Errorf("objects = %d, want 4", n)
			}
			// Every byte reads back identically, now from the cold tier.
			var got bytes.Buffer
			snap := h.Snapshot()
			for pos := int64(0); pos < snap.Tail; {
				c, err := reg.ReadChunk(ctx, snap, pos, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range c.Messages {
					got.Write(m.Data)
				}
				pos = c.End
			}
			if got.String() != want.String() {
				t.Fatalf("read back %q, want %q", got.String(), want.String())
			}
			st, release, err := reg.AcquireID(ctx, h.ID())
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			hot, err := st.HotStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if hot.Rows != 2 {
				t.Errorf("hot rows after trim = %d, want 2 (the open segment)", hot.Rows)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1) // where is it stuck?
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
