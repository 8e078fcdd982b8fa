package sequencer

import "slices"

// lsnSet is the multiset of journal records in flight
// (streamJournal.inflight): an LSN is added once per holder (the hot
// log's hold, the catalog's) and leaves when every holder is done.
//
// Every catalog change and every checkpoint asks for the lowest LSN in
// flight. With thousands of new streams each holding its creation record
// until its first write, scanning a map for it made every creation cost
// time proportional to the number of streams created before it; here
// the lowest is found at the front of a sorted slice.
//
// Invariants: keys is ascending and holds every LSN with a count above
// zero, possibly beside LSNs whose count fell to zero (removed lazily);
// keys[0], when keys is not empty, has a count above zero. live is the
// number of LSNs with a count above zero.
type lsnSet struct {
	count map[uint64]int
	keys  []uint64
	live  int
}

func newLSNSet() lsnSet { return lsnSet{count: map[uint64]int{}} }

// add takes lsn into flight once more.
func (s *lsnSet) add(lsn uint64) {
	s.count[lsn]++
	if s.count[lsn] > 1 {
		return
	}
	s.live++
	// LSNs are handed out in ascending order, so the new one nearly
	// always goes last; a failed write's LSN is handed out again and may
	// still be in keys with a count of zero.
	if n := len(s.keys); n == 0 || s.keys[n-1] < lsn {
		s.keys = append(s.keys, lsn)
		return
	}
	if i, found := slices.BinarySearch(s.keys, lsn); !found {
		s.keys = slices.Insert(s.keys, i, lsn)
	}
}

// done takes one hold of lsn out of flight.
func (s *lsnSet) done(lsn uint64) {
	n, ok := s.count[lsn]
	if !ok {
		return
	}
	if n > 1 {
		s.count[lsn] = n - 1
		return
	}
	delete(s.count, lsn)
	s.live--
	// Drop dead keys from the front (keeping keys[0] live), and compact
	// once dead keys outnumber live ones, so keys stays within twice the
	// records in flight.
	i := 0
	for i < len(s.keys) && s.count[s.keys[i]] == 0 {
		i++
	}
	s.keys = s.keys[i:]
	if len(s.keys) > 2*s.live+64 {
		s.keys = slices.DeleteFunc(s.keys, func(l uint64) bool { return s.count[l] == 0 })
	}
}

// minExcept returns the lowest LSN in flight other than except, and
// whether there is one.
func (s *lsnSet) minExcept(except uint64) (uint64, bool) {
	for _, l := range s.keys {
		if l != except && s.count[l] > 0 {
			return l, true
		}
	}
	return 0, false
}

// min returns the lowest LSN in flight, and whether there is one.
func (s *lsnSet) min() (uint64, bool) { return s.minExcept(0) }
