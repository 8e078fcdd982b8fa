package catalog

import (
	"context"
	"testing"

	"github.com/streamtier/durable-streams/internal/pgtest"
)

func TestJournalCheckpoint(t *testing.T) {
	c, _ := openTemp(t)
	ctx := context.Background()
	for _, step := range []struct{ set, want uint64 }{{0, 0}, {17, 17}, {9, 17}, {40, 40}} {
		if err := c.SetJournalCheckpoint(ctx, step.set); err != nil {
			t.Fatal(err)
		}
		if got, err := c.JournalCheckpoint(ctx); err != nil || got != step.want {
			t.Errorf("after set %d: checkpoint %d (%v), want %d", step.set, got, err, step.want)
		}
	}
}

func TestJournalCheckpointPostgres(t *testing.T) {
	c := openPostgresTemp(t, pgtest.Start(t).NewDatabase(t))
	ctx := context.Background()
	if err := c.SetJournalCheckpoint(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if got, err := c.JournalCheckpoint(ctx); err != nil || got != 12 {
		t.Errorf("checkpoint %d (%v), want 12", got, err)
	}
}
