package coldstore_test

import (
	"cmp"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/streamtier/durable-streams/coldstore"
)

// defaultMinIOImage is the container image for TestS3TestcontainersContract,
// and docker-compose.yml's (TestComposeMinIOImages). MinIO stopped
// publishing community images in October 2025 and removed the
// docker.io/minio/* repositories in September 2026; quay.io/minio still
// serves the archived releases (minio and mc), so images are pinned there.
// Override with $DS_MINIO_IMAGE.
const defaultMinIOImage = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"

// TestComposeMinIOImages checks that docker-compose.yml runs the MinIO
// server image this test runs, and takes every MinIO image from quay.io
// pinned to a release (docker compose cannot run in the test environment,
// so this is what keeps the file from naming images that cannot be pulled).
func TestComposeMinIOImages(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, line := range strings.Split(string(b), "\n") {
		if img, ok := strings.CutPrefix(strings.TrimSpace(line), "image:"); ok && strings.Contains(img, "minio") {
			images = append(images, strings.TrimSpace(img))
		}
	}
	if !slices.Contains(images, defaultMinIOImage) {
		t.Errorf("docker-compose.yml MinIO images %q do not include %s", images, defaultMinIOImage)
	}
	for _, img := range images {
		if !strings.HasPrefix(img, "quay.io/minio/") || !strings.Contains(img, ":RELEASE.") {
			t.Errorf("docker-compose.yml image %q: want quay.io/minio/...:RELEASE.<date>", img)
		}
	}
}

// TestS3TestcontainersContract runs the contract against MinIO in a
// container. It is skipped when no Docker-compatible engine is reachable.
func TestS3TestcontainersContract(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx := t.Context()

	const user, password = "dstest", "dstest-secret-123"
	ctr, err := testcontainers.Run(ctx, cmp.Or(os.Getenv("DS_MINIO_IMAGE"), defaultMinIOImage),
		testcontainers.WithExposedPorts("9000/tcp"),
		testcontainers.WithEnv(map[string]string{
			"MINIO_ROOT_USER":     user,
			"MINIO_ROOT_PASSWORD": password,
			"MINIO_BROWSER":       "off",
		}),
		testcontainers.WithCmd("server", "/data", "--quiet"),
		testcontainers.WithWaitStrategy(
			wait.ForHTTP("/minio/health/ready").WithPort("9000/tcp").WithStartupTimeout(60*time.Second)),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("starting MinIO container: %v", err)
	}
	endpoint, err := ctr.PortEndpoint(ctx, "9000/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	s, err := coldstore.NewS3(ctx, coldstore.S3Config{
		Endpoint:        endpoint,
		Bucket:          "contract",
		PathStyle:       true,
		AccessKeyID:     user,
		SecretAccessKey: password,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	runContract(t, s)
}
