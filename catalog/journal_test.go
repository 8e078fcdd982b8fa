package catalog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

func TestJournalCheckpoint(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	for _, step := range []struct{ set, want uint64 }{{0, 0}, {17, 17}, {9, 17}, {40, 40}} {
		if err := c.SetJournalCheckpoint(ctx, "", step.set); err != nil {
			t.Fatal(err)
		}
		p, err := c.JournalPositions(ctx, "")
		if err != nil || p.Checkpoint != step.want || p.Catalog != step.want {
			t.Errorf("after set %d: positions %+v (%v), want both %d", step.set, p, err, step.want)
		}
	}
	// One node on SQLite: every id names the same row.
	if got, err := c.JournalCheckpoint(ctx, "node-b"); err != nil || got != 40 {
		t.Errorf("checkpoint of another id %d (%v), want 40", got, err)
	}
}

func TestJournalCheckpointPostgres(t *testing.T) {
	c := openPostgresTemp(t, pgtest.Start(t).NewDatabase(t))
	ctx := context.Background()
	if err := c.SetJournalCheckpoint(ctx, "a", 12); err != nil {
		t.Fatal(err)
	}
	if got, err := c.JournalCheckpoint(ctx, "a"); err != nil || got != 12 {
		t.Errorf("checkpoint of a %d (%v), want 12", got, err)
	}
	// Nodes sharing the database keep their own positions.
	if got, err := c.JournalCheckpoint(ctx, "b"); err != nil || got != 0 {
		t.Errorf("checkpoint of b %d (%v), want 0", got, err)
	}
	if err := c.SetJournalCheckpoint(ctx, "b", 5); err != nil {
		t.Fatal(err)
	}
	if got, err := c.JournalCheckpoint(ctx, "a"); err != nil || got != 12 {
		t.Errorf("checkpoint of a after b's %d (%v), want 12", got, err)
	}
}

// TestJournaledWrites checks which group commits sync and that the applied
// position moves with the writes that reach it, and only with them.
func TestJournaledWrites(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	id := create(t, c, Stream{Path: "/a"})
	catalogLSN := func() uint64 {
		t.Helper()
		p, err := c.JournalPositions(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return p.Catalog
	}
	if err := c.SetClosedJournaled(ctx, id, Journaled{LSN: 10, Applied: 9}); err != nil {
		t.Fatal(err)
	}
	if c.wsync != "NORMAL" || catalogLSN() != 9 {
		t.Errorf("journaled write: synchronous %s, catalog position %d; want NORMAL, 9", c.wsync, catalogLSN())
	}
	// A failed write leaves the position alone.
	if err := c.SetClosedJournaled(ctx, 999, Journaled{LSN: 11, Applied: 11}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("close of a missing stream: %v", err)
	}
	if got := catalogLSN(); got != 9 {
		t.Errorf("after a failed write: catalog position %d, want 9", got)
	}
	if err := c.TouchMany(ctx, map[int64]time.Time{id: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if c.wsync != "FULL" {
		t.Errorf("write without a record: synchronous %s, want FULL", c.wsync)
	}
	if err := c.SetJournalCheckpoint(ctx, "", 20); err != nil {
		t.Fatal(err)
	}
	// A record the checkpoint covers is not redone by a recovery: synced.
	if err := c.TouchManyJournaled(ctx, map[int64]time.Time{id: t0.Add(2 * time.Hour)}, Journaled{LSN: 15, Applied: 15}); err != nil {
		t.Fatal(err)
	}
	if c.wsync != "FULL" || catalogLSN() != 20 {
		t.Errorf("journaled write below the checkpoint: synchronous %s, catalog position %d; want FULL, 20", c.wsync, catalogLSN())
	}
	if _, err := c.DeleteJournaled(ctx, id, t0, Journaled{LSN: 21, Applied: 21}); err != nil {
		t.Fatal(err)
	}
	if c.wsync != "NORMAL" || catalogLSN() != 21 {
		t.Errorf("journaled delete: synchronous %s, catalog position %d; want NORMAL, 21", c.wsync, catalogLSN())
	}
	// Reopened: the positions were committed (a clean close loses nothing).
	if _, err := c.GetByID(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted stream: %v", err)
	}
}
