package e2e

import (
	"os/exec"
	"testing"

	"github.com/streamtier/durable-streams/internal/miniotest"
	"github.com/streamtier/durable-streams/internal/pgtest"
)

// TestConformancePostgres runs the conformance suite against a node in
// cluster mode: the catalog (stream directory, segment index, GC queue) in
// a real PostgreSQL, sealed segments in a real MinIO, with aggressive
// rotation so that the segment index on PostgreSQL is written throughout.
func TestConformancePostgres(t *testing.T) {
	LatencyBound(t)
	if testing.Short() {
		t.Skip("conformance suite runs for minutes against the real server; skipped with -short")
	}
	script := conformanceScript(t)
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFatal(t, "node is not on PATH; the conformance suite needs Node.js (%v)", err)
	}
	pg := pgtest.Start(t)
	mio := miniotest.Start(t)
	// DS_DRAIN_TIMEOUT=0: the harness stops the node with SIGTERM, which in
	// cluster mode would otherwise hand off every stream first.
	env := append(minioEnv(mio), "DS_CLUSTER_DSN="+pg.NewDatabase(t), "DS_NODE_ID=e2e", "DS_DRAIN_TIMEOUT=0")
	srv := StartServer(t, BuildServer(t), WithLongPollTimeout(conformanceServerLongPoll),
		WithArgs(aggressiveRotation...), WithEnv(env...))
	runConformance(t, script, srv, "postgres catalog, minio, aggressive rotation")
}
