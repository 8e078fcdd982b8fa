package segment

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestExtents: for objects of large messages the extents name exactly the
// bytes and positions the reference read returns; a read that touches a
// block of small records is refused.
func TestExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const stride = 64
	sizes := []int{100, 65, 300, 128, 200, 70}
	msgs := genMsgs(rng, 1000, sizes)
	obj := encodeT(t, headerFor(1, 2, 1000, msgs), msgs, stride)
	ix, err := ParseIndex(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	end := msgs[len(msgs)-1].End()
	for from := int64(990); from <= end; from += 7 {
		for _, limit := range []int64{from, from + 1, from + 150, end, end + 5} {
			for _, budget := range []int{0, 1, 99, 100, 165, 400, 1 << 20} {
				want := naiveRead(msgs, from, limit, budget)
				got, ok := ix.Extents(from, limit, budget)
				if !ok {
					t.Fatalf("Extents(%d, %d, %d): refused for large messages", from, limit, budget)
				}
				if len(got) != len(want) {
					t.Fatalf("Extents(%d, %d, %d): %d extents, want %d", from, limit, budget, len(got), len(want))
				}
				for i, e := range got {
					if e.Pos != want[i].Pos || !bytes.Equal(obj[e.Off:e.Off+e.Len], want[i].Data) {
						t.Fatalf("Extents(%d, %d, %d): extent %d = %+v, want position %d and its data", from, limit, budget, i, e, want[i].Pos)
					}
				}
			}
		}
	}

	small := genMsgs(rng, 0, []int{10, 10, 10, 500})
	obj = encodeT(t, headerFor(1, 3, 0, small), small, stride)
	ix, err = ParseIndex(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Extents(0, 530, 1<<20); ok {
		t.Fatal("Extents over a block of small records: ok")
	}
	if got, ok := ix.Extents(30, 530, 1<<20); !ok || len(got) != 1 || got[0].Len != 500 {
		t.Fatalf("Extents of the large message alone: %+v, %v", got, ok)
	}
}
