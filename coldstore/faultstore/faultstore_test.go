package faultstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/coldstore/faultstore"
)

func newStore(t *testing.T, seed uint64) (*faultstore.Store, *coldstore.Local) {
	t.Helper()
	local, err := coldstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return faultstore.New(local, seed), local
}

func put(ctx context.Context, s coldstore.Store, key, data string) error {
	return s.Put(ctx, key, strings.NewReader(data), int64(len(data)))
}

func get(ctx context.Context, s coldstore.Store, key string, off, n int64) (string, error) {
	rc, err := s.Get(ctx, key, off, n)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

const data = "0123456789abcdef"

func TestPutFaults(t *testing.T) {
	tests := []struct {
		fault   faultstore.Fault
		wantErr error
		stored  string // "" means nothing stored
	}{
		{faultstore.None, nil, data},
		{faultstore.Unavailable, faultstore.ErrUnavailable, ""},
		{faultstore.Truncate, nil, data[:8]},
		{faultstore.Corrupt, nil, data[:8] + string([]byte{data[8] ^ 0xff}) + data[9:]},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			fs, local := newStore(t, 1)
			fs.Set(faultstore.OpPut, faultstore.Plan{Script: []faultstore.Fault{tt.fault}})
			err := put(t.Context(), fs, "a/b", data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error %v, want %v", err, tt.wantErr)
			}
			got, err := get(t.Context(), local, "a/b", 0, -1)
			switch {
			case tt.stored == "" && !errors.Is(err, coldstore.ErrNotFound):
				t.Errorf("stored %q (err %v), want nothing", got, err)
			case tt.stored != "" && (err != nil || got != tt.stored):
				t.Errorf("stored %q (err %v), want %q", got, err, tt.stored)
			}
			if n := fs.Injected(faultstore.OpPut, tt.fault); n != 1 {
				t.Errorf("Injected = %d, want 1", n)
			}
		})
	}
}

func TestGetFaults(t *testing.T) {
	fs, _ := newStore(t, 1)
	ctx := t.Context()
	if err := put(ctx, fs, "k", data); err != nil {
		t.Fatal(err)
	}
	fs.Set(faultstore.OpGet, faultstore.Plan{Script: []faultstore.Fault{
		faultstore.Truncate, faultstore.Corrupt, faultstore.None, faultstore.Unavailable}})
	if got, err := get(ctx, fs, "k", 4, 8); err != nil || got != data[4:8] {
		t.Errorf("truncated range read %q, %v; want %q", got, err, data[4:8])
	}
	got, err := get(ctx, fs, "k", 0, -1)
	if err != nil || len(got) != len(data) || got == data {
		t.Errorf("corrupt read %q, %v; want %d different bytes", got, err, len(data))
	}
	if got, err := get(ctx, fs, "k", 0, -1); err != nil || got != data {
		t.Errorf("clean read %q, %v", got, err)
	}
	if _, err := get(ctx, fs, "k", 0, -1); !errors.Is(err, faultstore.ErrUnavailable) {
		t.Errorf("unavailable read: %v", err)
	}
	if got, err := get(ctx, fs, "k", 0, -1); err != nil || got != data {
		t.Errorf("read after script %q, %v", got, err)
	}
}

func TestTimeoutBlocksUntilDeadlineOrHeal(t *testing.T) {
	fs, _ := newStore(t, 1)
	fs.Set(faultstore.OpHead, faultstore.Plan{Script: []faultstore.Fault{faultstore.Timeout, faultstore.Timeout}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := fs.Head(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Head error %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Head returned after %v, before the deadline", d)
	}
	done := make(chan error, 1)
	go func() {
		_, err := fs.Head(t.Context(), "k")
		done <- err
	}()
	for fs.Calls(faultstore.OpHead) < 2 {
		time.Sleep(time.Millisecond)
	}
	fs.Heal()
	if err := <-done; !errors.Is(err, faultstore.ErrUnavailable) {
		t.Errorf("healed Head error %v, want ErrUnavailable", err)
	}
	if _, err := fs.Head(t.Context(), "k"); !errors.Is(err, coldstore.ErrNotFound) {
		t.Errorf("Head after Heal: %v, want not found", err)
	}
}

func TestRatesAreRepeatable(t *testing.T) {
	run := func(seed uint64) string {
		fs, _ := newStore(t, seed)
		fs.Set(faultstore.OpDelete, faultstore.Plan{Rates: map[faultstore.Fault]float64{faultstore.Unavailable: 0.5}})
		var b bytes.Buffer
		for range 64 {
			if fs.Delete(t.Context(), "k") != nil {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := run(7), run(7)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < 16 || n > 48 {
		t.Errorf("%d of 64 calls failed at rate 0.5: %s", n, a)
	}
	if a == run(8) {
		t.Errorf("seeds 7 and 8 drew the same faults")
	}
}

func TestKeyPrefixAndList(t *testing.T) {
	fs, _ := newStore(t, 1)
	ctx := t.Context()
	for _, k := range []string{"1/a", "2/a"} {
		if err := put(ctx, fs, k, data); err != nil {
			t.Fatal(err)
		}
	}
	fs.Set(faultstore.OpList, faultstore.Plan{Script: []faultstore.Fault{faultstore.Unavailable}, KeyPrefix: "2/"})
	n := 0
	for _, err := range fs.List(ctx, "1/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("listed %d objects under 1/, want 1", n)
	}
	for _, err := range fs.List(ctx, "2/") {
		if !errors.Is(err, faultstore.ErrUnavailable) {
			t.Errorf("List 2/ yielded %v, want ErrUnavailable", err)
		}
	}
}
