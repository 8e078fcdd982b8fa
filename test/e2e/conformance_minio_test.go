package e2e

import (
	"testing"

	"github.com/streamtier/durable-streams/internal/miniotest"
)

// TestConformanceMinIO runs the conformance suite against the server backed
// by a real MinIO with aggressive rotation (a segment is sealed every 4 KiB,
// 16 messages or 2 seconds, and on close), so every protocol behaviour is
// exercised across segment boundaries and cold reads.
func TestConformanceMinIO(t *testing.T) {
	LatencyBound(t)
	script := conformancePrereqs(t)
	mio := miniotest.Start(t)
	srv := StartServer(t, BuildServer(t), WithLongPollTimeout(conformanceServerLongPoll),
		WithArgs(aggressiveRotation...), WithEnv(minioEnv(mio)...))
	runConformance(t, script, srv, "minio, aggressive rotation")
}

// aggressiveRotation seals segments very often.
var aggressiveRotation = []string{"--seal-bytes", "4096", "--seal-messages", "16", "--seal-age", "2s"}

// minioEnv configures the server's S3 cold store for mio.
func minioEnv(mio *miniotest.Server) []string {
	return []string{
		"DS_COLD_STORE=s3",
		"DS_S3_ENDPOINT=" + mio.Endpoint,
		"DS_S3_BUCKET=" + mio.Bucket,
		"DS_S3_PATH_STYLE=true",
		"DS_S3_REGION=us-east-1",
		"DS_S3_ACCESS_KEY_ID=" + mio.AccessKey,
		"DS_S3_SECRET_ACCESS_KEY=" + mio.SecretKey,
	}
}
