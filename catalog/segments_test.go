package catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore/segment"
)

// seal records segment seg of stream in state sealed.
func seal(t *testing.T, c *Catalog, stream, seg int64) {
	t.Helper()
	g := Segment{StreamID: stream, Seg: seg, FirstPos: seg * 10, EndPos: seg*10 + 10, Bytes: 10, Messages: 2,
		ObjectKey: segment.ObjectKey(stream, seg), CreatedAt: t0.Add(time.Duration(seg) * time.Second)}
	if err := c.RecordSealed(context.Background(), g); err != nil {
		t.Fatalf("RecordSealed(%d, %d): %v", stream, seg, err)
	}
}

func segKeys(gs []Segment) [][2]int64 {
	var out [][2]int64
	for _, g := range gs {
		out = append(out, [2]int64{g.StreamID, g.Seg})
	}
	return out
}

func testSegmentIndex(t *testing.T, open opener) {
	c := open(t)
	ctx := context.Background()
	a := create(t, c, Stream{Path: "logs/a"})
	b := create(t, c, Stream{Path: "logs/b"})
	o := create(t, c, Stream{Path: "other"})
	for _, s := range [][2]int64{{a, 0}, {a, 1}, {a, 2}, {b, 0}, {o, 0}} {
		seal(t, c, s[0], s[1])
	}
	// Recording a segment again changes nothing.
	if err := c.RecordSealed(ctx, Segment{StreamID: a, Seg: 0, ObjectKey: "x", Bytes: 99}); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][2]int64{{a, 0}, {a, 1}, {b, 0}} {
		if err := c.MarkUploaded(ctx, s[0], s[1], 100+s[1], 0xabcd0000|uint32(s[1]), 2); err != nil {
			t.Fatal(err)
		}
	}

	sealed, err := c.SealedSegments(ctx)
	if err != nil || !slices.Equal(segKeys(sealed), [][2]int64{{a, 2}, {o, 0}}) {
		t.Fatalf("SealedSegments = %v, %v", segKeys(sealed), err)
	}
	if g := sealed[0]; g.State != segment.Sealed || g.FirstPos != 20 || g.EndPos != 30 || g.Bytes != 10 ||
		g.ObjectKey != segment.ObjectKey(a, 2) || !g.CreatedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("sealed row: %+v", g)
	}

	list := func(f SegmentFilter) [][2]int64 {
		t.Helper()
		es, err := c.ListSegments(ctx, f)
		if err != nil {
			t.Fatalf("ListSegments(%+v): %v", f, err)
		}
		var gs []Segment
		for _, e := range es {
			gs = append(gs, e.Segment)
		}
		return segKeys(gs)
	}
	for _, tt := range []struct {
		name string
		f    SegmentFilter
		want [][2]int64
	}{
		{"all", SegmentFilter{}, [][2]int64{{a, 0}, {a, 1}, {a, 2}, {b, 0}, {o, 0}}},
		{"stream", SegmentFilter{StreamPath: "logs/a"}, [][2]int64{{a, 0}, {a, 1}, {a, 2}}},
		{"prefix", SegmentFilter{Prefix: "logs/"}, [][2]int64{{a, 0}, {a, 1}, {a, 2}, {b, 0}}},
		{"state", SegmentFilter{State: segment.Uploaded}, [][2]int64{{a, 0}, {a, 1}, {b, 0}}},
		{"page", SegmentFilter{After: &[2]int64{a, 1}, Limit: 2}, [][2]int64{{a, 2}, {b, 0}}},
	} {
		if got := list(tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("%s: ListSegments = %v, want %v", tt.name, got, tt.want)
		}
	}
	es, err := c.ListSegments(ctx, SegmentFilter{StreamPath: "logs/b"})
	if err != nil || len(es) != 1 || es[0].Path != "logs/b" || !es[0].StreamExists || es[0].SoftDeleted ||
		es[0].State != segment.Uploaded || es[0].Bytes != 100 || es[0].Checksum != 0xabcd0000 {
		t.Fatalf("entry of logs/b: %+v, %v", es, err)
	}

	byKey, err := c.SegmentsByKey(ctx, KeyCursor{}, 3)
	if err != nil || len(byKey) != 3 || !slices.IsSortedFunc(byKey, func(x, y Segment) int {
		return strings.Compare(x.ObjectKey, y.ObjectKey)
	}) {
		t.Fatalf("SegmentsByKey: %v, %v", segKeys(byKey), err)
	}
	last := byKey[2]
	rest, err := c.SegmentsByKey(ctx, KeyCursor{Key: last.ObjectKey, Stream: last.StreamID, Seg: last.Seg}, 0)
	if err != nil || len(rest) != 2 {
		t.Fatalf("SegmentsByKey after %s: %v, %v", last.ObjectKey, segKeys(rest), err)
	}
	if g, ok, err := c.SegmentFor(ctx, segment.ObjectKey(b, 0), -1, -1); err != nil || !ok || g.StreamID != b {
		t.Fatalf("SegmentFor(key) = %+v, %t, %v", g, ok, err)
	}
	if g, ok, err := c.SegmentFor(ctx, "other-key", a, 1); err != nil || !ok || g.Seg != 1 {
		t.Fatalf("SegmentFor(stream, seg) = %+v, %t, %v", g, ok, err)
	}
	if _, ok, err := c.SegmentFor(ctx, "nope", a, 9); err != nil || ok {
		t.Fatalf("SegmentFor(missing) = %t, %v", ok, err)
	}

	for _, tt := range []struct {
		seg   int64
		limit int
		want  [][2]int64
	}{
		{0, 2, [][2]int64{{a, 0}, {a, 1}}},
		{1, 3, [][2]int64{{a, 1}, {a, 2}}},
		{2, 0, [][2]int64{{a, 2}}},
		{3, 3, nil},
	} {
		st, got, err := c.StreamSegmentsFrom(ctx, "logs/a", tt.seg, tt.limit)
		if tt.want == nil {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("StreamSegmentsFrom(logs/a, %d) = %v, %v; want ErrNotFound", tt.seg, segKeys(got), err)
			}
			continue
		}
		if err != nil || st.ID != a || st.Path != "logs/a" || !slices.Equal(segKeys(got), tt.want) || got[0].ObjectKey != segment.ObjectKey(a, tt.seg) {
			t.Errorf("StreamSegmentsFrom(logs/a, %d, %d) = %+v, %v, %v; want %v", tt.seg, tt.limit, st, segKeys(got), err, tt.want)
		}
	}
	if _, _, err := c.StreamSegmentsFrom(ctx, "missing", 0, 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("StreamSegmentsFrom(missing) = %v, want ErrNotFound", err)
	}

	stats, err := c.SegmentStats(ctx, a)
	if err != nil || stats[segment.Uploaded] != (SegmentCount{Segments: 2, Bytes: 201}) ||
		stats[segment.Sealed] != (SegmentCount{Segments: 1, Bytes: 10}) {
		t.Fatalf("SegmentStats(a) = %v, %v", stats, err)
	}
	if all, err := c.SegmentStats(ctx, 0); err != nil || all[segment.Uploaded].Segments != 3 || all[segment.Sealed].Segments != 2 {
		t.Fatalf("SegmentStats(all) = %v, %v", all, err)
	}

	// Delete stream a for real: its rows stay until collected.
	if _, err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if tot, err := c.Totals(ctx); err != nil || tot != (Totals{Streams: 2, DeletedStreams: 1, PendingGC: 1}) {
		t.Fatalf("Totals = %+v, %v", tot, err)
	}
	if ow, err := c.OwnerOf(ctx, a); err != nil || ow.Exists || ow.QueuedAt.IsZero() {
		t.Fatalf("OwnerOf(deleted) = %+v, %v", ow, err)
	}
	if ow, err := c.OwnerOf(ctx, b); err != nil || !ow.Exists || !ow.QueuedAt.IsZero() {
		t.Fatalf("OwnerOf(live) = %+v, %v", ow, err)
	}
	del, err := c.SegmentsOfDeleted(ctx, 0, 0)
	if err != nil || len(del) != 1 || del[0].StreamID != a || del[0].Rows != 3 || del[0].QueuedAt.IsZero() {
		t.Fatalf("SegmentsOfDeleted = %+v, %v", del, err)
	}
	q, err := c.GCQueue(ctx, time.Now().Add(time.Hour), GCEntry{}, 0)
	if err != nil || len(q) != 1 || q[0].StreamID != a {
		t.Fatalf("GCQueue = %+v, %v", q, err)
	}
	if q, err := c.GCQueue(ctx, time.Now().Add(time.Hour), q[0], 0); err != nil || len(q) != 0 {
		t.Fatalf("GCQueue after the last entry = %+v, %v", q, err)
	}
	if n, err := c.DeleteSegments(ctx, b, true); err != nil || n != 0 {
		t.Fatalf("DeleteSegments(live, onlyDeleted) = %d, %v", n, err)
	}
	if n, err := c.DeleteSegments(ctx, a, true); err != nil || n != 3 {
		t.Fatalf("DeleteSegments(deleted, onlyDeleted) = %d, %v", n, err)
	}
	if left, err := c.HasSegments(ctx, a); err != nil || left {
		t.Fatalf("HasSegments after delete = %t, %v", left, err)
	}
	if n, err := c.DeleteSegments(ctx, o, false); err != nil || n != 1 {
		t.Fatalf("DeleteSegments(live) = %d, %v", n, err)
	}
	if got := list(SegmentFilter{}); !slices.Equal(got, [][2]int64{{b, 0}}) {
		t.Fatalf("rows left: %v", got)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
