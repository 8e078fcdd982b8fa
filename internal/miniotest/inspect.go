package miniotest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The harness sees buckets through minio-go, MinIO's own S3 client, not
// through the aws-sdk-go-v2 backend under test (coldstore.S3): what a test
// asserts about the bucket is checked by a second implementation, so a bug
// shared by the backend's writes and reads (a wrong key, a mangled body)
// cannot hide itself.

// Object is one object as the server lists it.
type Object struct {
	Key  string
	Size int64
	ETag string
}

// Client returns a minio-go client for the server (path-style, static
// credentials, no proxy).
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.newClient()
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	return c
}

func (s *Server) newClient() (*minio.Client, error) {
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		Transport:    &http.Transport{Proxy: nil},
	})
	if err != nil {
		return nil, fmt.Errorf("minio-go client for %s: %w", s.Endpoint, err)
	}
	return c, nil
}

// MakeBucket creates bucket (an existing one is fine).
func (s *Server) MakeBucket(ctx context.Context, bucket string) error {
	c, err := s.newClient()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		if ok, e := c.BucketExists(ctx, bucket); e == nil && ok {
			return nil
		}
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	return nil
}

// Objects lists every object of bucket whose key starts with prefix, in
// key order.
func (s *Server) Objects(ctx context.Context, bucket, prefix string) ([]Object, error) {
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	var out []Object
	for info := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, fmt.Errorf("listing %s/%s: %w", bucket, prefix, info.Err)
		}
		out = append(out, Object{Key: info.Key, Size: info.Size, ETag: info.ETag})
	}
	return out, nil
}

// ReadObject returns the whole object bucket/key.
func (s *Server) ReadObject(ctx context.Context, bucket, key string) ([]byte, error) {
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("getting %s/%s: %w", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", bucket, key, err)
	}
	return b, nil
}

// WriteObject stores data as bucket/key.
func (s *Server) WriteObject(ctx context.Context, bucket, key string, data []byte) error {
	c, err := s.newClient()
	if err != nil {
		return err
	}
	if _, err := c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("putting %s/%s: %w", bucket, key, err)
	}
	return nil
}
