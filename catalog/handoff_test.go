package catalog

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
)

func testHandoff(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	id := create(t, c, Stream{Path: "handed"})
	parent := create(t, c, Stream{Path: "parent"})
	fork := create(t, c, Stream{Path: "fork", ParentID: parent})

	if _, err := c.GetHandoff(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetHandoff before any save = %v, want ErrNotFound", err)
	}
	if err := c.SaveHandoff(ctx, Handoff{StreamID: 999_999, Node: "a"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SaveHandoff of a missing stream = %v, want ErrNotFound", err)
	}
	cases := []Handoff{
		{StreamID: id, Node: "a", Tail: 4096, OpenSeg: 3, OpenSegStart: 4096, StreamSeq: "0007", Closed: true,
			ClosedBy:  &ProducerTuple{ID: "p1", Epoch: 2, Seq: 9},
			Producers: []HandoffProducer{{ID: "p1", Epoch: 2, LastSeq: 9, Updated: t0}, {ID: "p2", Epoch: 0, LastSeq: 0, Updated: t0.Add(time.Second)}},
			CreatedAt: t0, SavedAt: t0.Add(time.Minute)},
		// Saving again replaces the state, producers included.
		{StreamID: id, Node: "b", Tail: 5000, OpenSeg: 4, OpenSegStart: 5000, CreatedAt: t0, SavedAt: t0.Add(2 * time.Minute)},
		{StreamID: fork, Node: "a", Tail: 10, OpenSeg: 0, OpenSegStart: 0, Fork: &ForkBase{ParentID: parent, Pos: 7, Seg: 0, SegStart: 0, Shared: true},
			Producers: []HandoffProducer{{ID: "p", Epoch: 1, LastSeq: 3, Updated: t0}}, CreatedAt: t0, SavedAt: t0},
	}
	for i, h := range cases {
		if err := c.SaveHandoff(ctx, h); err != nil {
			t.Fatalf("case %d: SaveHandoff: %v", i, err)
		}
		got, err := c.GetHandoff(ctx, h.StreamID)
		if err != nil {
			t.Fatalf("case %d: GetHandoff: %v", i, err)
		}
		if !reflect.DeepEqual(normalizeHandoff(got), normalizeHandoff(h)) {
			t.Errorf("case %d: GetHandoff = %+v, want %+v", i, got, h)
		}
	}
	if ids, err := c.IncompleteHandoffs(ctx, "b"); err != nil || len(ids) != 1 || ids[0] != id {
		t.Errorf("IncompleteHandoffs(b) = %v, %v, want [%d]", ids, err, id)
	}
	if err := c.CompleteHandoff(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ids, err := c.IncompleteHandoffs(ctx, "b"); err != nil || len(ids) != 0 {
		t.Errorf("IncompleteHandoffs(b) after completing = %v, %v, want none", ids, err)
	}
	if got, err := c.GetHandoff(ctx, id); err != nil || !got.Complete {
		t.Errorf("GetHandoff after CompleteHandoff = %+v, %v, want complete", got, err)
	}
	if err := c.CompleteHandoff(ctx, 999_999); !errors.Is(err, ErrNotFound) {
		t.Errorf("CompleteHandoff without a state = %v, want ErrNotFound", err)
	}
	if err := c.ClearHandoff(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.ClearHandoff(ctx, id); err != nil {
		t.Errorf("ClearHandoff again = %v, want nil", err)
	}
	if _, err := c.GetHandoff(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetHandoff after clear = %v, want ErrNotFound", err)
	}
	// The state goes with its stream.
	if _, err := c.Delete(ctx, fork); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetHandoff(ctx, fork); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetHandoff of a deleted stream = %v, want ErrNotFound", err)
	}
}

// normalizeHandoff makes times comparable with DeepEqual.
func normalizeHandoff(h Handoff) Handoff {
	h.CreatedAt, h.SavedAt = h.CreatedAt.UTC(), h.SavedAt.UTC()
	ps := make([]HandoffProducer, len(h.Producers))
	for i, p := range h.Producers {
		p.Updated = p.Updated.UTC()
		ps[i] = p
	}
	h.Producers = ps
	return h
}

func testStreamSegments(t *testing.T, open opener) {
	ctx := context.Background()
	c := open(t)
	id := create(t, c, Stream{Path: "segs"})
	other := create(t, c, Stream{Path: "other"})
	for _, g := range []Segment{
		{StreamID: id, Seg: 1, FirstPos: 10, EndPos: 20, Bytes: 10, Messages: 1, ObjectKey: "k1"},
		{StreamID: other, Seg: 0, FirstPos: 0, EndPos: 5, Bytes: 5, Messages: 1, ObjectKey: "o0"},
		{StreamID: id, Seg: 0, FirstPos: 0, EndPos: 10, Bytes: 10, Messages: 2, ObjectKey: "k0"},
	} {
		if err := c.RecordSealed(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.MarkUploaded(ctx, id, 0, 40, 77, 2); err != nil {
		t.Fatal(err)
	}
	got, err := c.StreamSegments(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seg != 0 || got[1].Seg != 1 || got[0].State != segment.Uploaded || got[0].Checksum != 77 ||
		got[1].State != segment.Sealed || got[1].FirstPos != 10 || got[1].EndPos != 20 || got[0].ObjectKey != "k0" {
		t.Errorf("StreamSegments = %+v", got)
	}
}
