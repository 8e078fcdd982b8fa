package sequencer

import (
	"errors"
	"testing"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/coldstore/segment"
)

// TestSealedView checks which reads a node that does not own a stream may
// answer from the segment index: only a position the rows locate the way
// the owner does, in an uploaded segment that is not the last row.
func TestSealedView(t *testing.T) {
	up := func(seg, first, end int64) catalog.Segment {
		return catalog.Segment{Seg: seg, FirstPos: first, EndPos: end, State: segment.Uploaded, ObjectKey: "k"}
	}
	sealed := func(seg, first, end int64) catalog.Segment {
		g := up(seg, first, end)
		g.State = segment.Sealed
		return g
	}
	three := []catalog.Segment{up(0, 0, 10), up(1, 10, 20), up(2, 20, 30)}
	for _, tt := range []struct {
		name       string
		rows       []catalog.Segment
		pos, first int64
		ok         bool
	}{
		{"start", three, 0, 0, true},
		{"inside the first", three, 5, 0, true},
		{"boundary: token names the segment before", three, 10, 0, true},
		{"boundary: token names the segment itself", three[1:], 10, 1, false},
		{"last row", three[1:], 25, 2, false},
		{"end of the next to last row", three[1:], 20, 1, false},
		{"position outside the token's segment", three, 15, 0, false},
		{"no rows", nil, 5, 0, false},
		{"rows start elsewhere", three[1:], 5, 0, false},
		{"first row not at 0", []catalog.Segment{up(0, 3, 10), up(1, 10, 20)}, 0, 0, false},
		{"not uploaded", []catalog.Segment{sealed(0, 0, 10), up(1, 10, 20)}, 5, 0, false},
		{"next row only sealed", []catalog.Segment{up(0, 0, 10), sealed(1, 10, 20)}, 5, 0, true},
		{"gap after the segment", []catalog.Segment{up(0, 0, 10), up(1, 12, 20)}, 5, 0, false},
		{"empty row", []catalog.Segment{up(0, 0, 0), up(1, 0, 20)}, 0, 0, false},
	} {
		snap, err := sealedView(catalog.Stream{ID: 7, ContentType: "text/plain"}, tt.rows, tt.pos, tt.first)
		if (err == nil) != tt.ok {
			t.Errorf("%s: sealedView = %v; want ok %v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrNotSealed) {
				t.Errorf("%s: error %v does not wrap ErrNotSealed", tt.name, err)
			}
			continue
		}
		if sv := snap.ownSegmentAt(tt.pos); !sv.Sealed || sv.End >= snap.Tail {
			t.Errorf("%s: position %d in %+v, tail %d", tt.name, tt.pos, sv, snap.Tail)
		}
	}
}
