package sequencer

import (
	"math/rand/v2"
	"testing"
)

// TestLSNSet checks lsnSet against a plain map under random holds and
// releases, LSNs handed out again included.
func TestLSNSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newLSNSet()
	model := map[uint64]int{}
	next := uint64(1)
	modelMin := func(except uint64) (uint64, bool) {
		var m uint64
		ok := false
		for l, n := range model {
			if n > 0 && l != except && (!ok || l < m) {
				m, ok = l, true
			}
		}
		return m, ok
	}
	for i := range 20000 {
		switch r := rng.IntN(10); {
		case r < 4: // a new record
			s.add(next)
			model[next]++
			next++
		case r < 5 && len(model) > 0: // a second hold, or an LSN handed out again
			l := next - 1 - uint64(rng.IntN(int(min(next-1, 50))))
			if l == 0 {
				continue
			}
			s.add(l)
			model[l]++
		default: // a release, mostly of the oldest records
			if len(model) == 0 {
				continue
			}
			var l uint64
			if m, ok := modelMin(0); ok && rng.IntN(2) == 0 {
				l = m
			} else {
				for k := range model {
					l = k
					break
				}
			}
			s.done(l)
			if model[l]--; model[l] <= 0 {
				delete(model, l)
			}
		}
		for _, except := range []uint64{0, next - 1} {
			want, wok := modelMin(except)
			got, gok := s.minExcept(except)
			if got != want || gok != wok {
				t.Fatalf("step %d: minExcept(%d) = %d, %v; want %d, %v", i, except, got, gok, want, wok)
			}
		}
		if len(s.keys) > 2*s.live+64 {
			t.Fatalf("step %d: %d keys for %d live LSNs", i, len(s.keys), s.live)
		}
	}
}
