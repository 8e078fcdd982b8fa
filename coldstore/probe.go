package coldstore

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Prober is implemented by stores that can check cheaply that they are
// reachable, without reading or listing objects.
type Prober interface {
	// Probe returns nil when the store answers requests.
	Probe(ctx context.Context) error
}

// Probe reports whether s is reachable. Stores implementing Prober are asked
// directly; for others it lists at most one object, which costs a single
// request on any backend.
func Probe(ctx context.Context, s Store) error {
	if p, ok := s.(Prober); ok {
		return p.Probe(ctx)
	}
	for _, err := range s.List(ctx, "") {
		return err // the first object (or error) is enough
	}
	return ctx.Err()
}

// Probe implements Prober: the root directory must exist and be a
// directory.
func (l *Local) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(l.root)
	if err != nil {
		return fmt.Errorf("coldstore: probe %s: %w", l.root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("coldstore: probe %s: %w", l.root, errors.New("not a directory"))
	}
	return nil
}

// Probe implements Prober with one HeadBucket request, which checks the
// endpoint, the credentials and that the bucket exists.
func (s *S3) Probe(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		return fmt.Errorf("coldstore: probe bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}
