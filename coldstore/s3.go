package coldstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config configures the S3 backend (AWS S3, MinIO, Cloudflare R2 or any
// S3-compatible service).
type S3Config struct {
	// Endpoint is the service URL, e.g. "http://127.0.0.1:9000" for MinIO or
	// "https://<account>.r2.cloudflarestorage.com" for R2. Empty means AWS
	// (resolved from Region). An endpoint without a scheme gets "https://".
	Endpoint string
	// Region defaults to "us-east-1". R2 uses "auto".
	Region string
	// Bucket is required.
	Bucket string
	// Prefix is prepended to every key, joined with "/" ("cold" stores key
	// "a/b" as object "cold/a/b"). Leading and trailing slashes are ignored.
	Prefix string
	// PathStyle addresses buckets as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>/<key>. MinIO needs it.
	PathStyle bool
	// Static credentials. If all three are empty, the default AWS credential
	// chain is used (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment
	// variables, shared config and credentials files and AWS_PROFILE, web
	// identity, container and instance roles).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// HTTPClient replaces the SDK's HTTP client (timeouts, TLS, proxies).
	HTTPClient *http.Client
	// MaxRetries is the number of retries after a failed attempt: 0 keeps the
	// SDK default (3 attempts in all), a negative value disables retries.
	MaxRetries int
	// ListPageSize is the number of keys asked for per ListObjectsV2 page;
	// 0 means the service default (1000).
	ListPageSize int32
}

func (c S3Config) staticCredentials() bool {
	return c.AccessKeyID != "" || c.SecretAccessKey != "" || c.SessionToken != ""
}

// String describes the configuration for logs. It never includes secrets.
func (c S3Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "s3://%s", c.Bucket)
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		b.WriteString("/" + p)
	}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "aws"
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	fmt.Fprintf(&b, " (endpoint %s, region %s", endpoint, region)
	if c.PathStyle {
		b.WriteString(", path-style")
	}
	if c.staticCredentials() {
		b.WriteString(", static credentials")
	} else {
		b.WriteString(", default credential chain")
	}
	b.WriteString(")")
	return b.String()
}

// GoString is like String so that %#v does not print secrets either.
func (c S3Config) GoString() string { return "coldstore.S3Config{" + c.String() + "}" }

// LogValue keeps secrets out of slog output.
func (c S3Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// S3 is a Store on an S3-compatible bucket.
type S3 struct {
	client *s3.Client
	cfg    S3Config
	prefix string // "" or "<prefix>/"
}

var _ Store = (*S3)(nil)

// NewS3 returns an S3 backend. It does not contact the service; see
// EnsureBucket.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("coldstore: s3 backend needs a bucket")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Endpoint != "" && !strings.Contains(cfg.Endpoint, "://") {
		cfg.Endpoint = "https://" + cfg.Endpoint
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.staticCredentials() {
		if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
			return nil, errors.New("coldstore: s3 static credentials need both an access key id and a secret access key")
		}
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("coldstore: s3 config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Ranged GETs carry no whole-object checksum; with the default
		// ResponseChecksumValidation=WhenSupported the SDK would log
		// "Response has no supported checksum" to stderr for each of them.
		// Whole-object GETs of objects stored with a checksum are still
		// validated.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		switch {
		case cfg.MaxRetries > 0:
			o.RetryMaxAttempts = cfg.MaxRetries + 1
		case cfg.MaxRetries < 0:
			o.RetryMaxAttempts = 1
		}
	})
	s := &S3{client: client, cfg: cfg}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	return s, nil
}

// String describes the store for logs, without secrets.
func (s *S3) String() string { return s.cfg.String() }

// Client returns the underlying SDK client.
func (s *S3) Client() *s3.Client { return s.client }

func (s *S3) objectKey(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// isS3NotFound reports whether err means that the object (not the bucket)
// does not exist: a NoSuchKey/NotFound error or an HTTP 404 (HeadObject has
// no body, so its 404 carries no error code).
func isS3NotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket" {
		return false // misconfiguration, not a missing object
	}
	var nk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nk) || errors.As(err, &nf) {
		return true
	}
	return httpStatus(err) == http.StatusNotFound
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// maxBufferedPut is the largest non-seekable Put body buffered in memory;
// larger ones are spooled to a temporary file. A variable for tests.
var maxBufferedPut int64 = 16 << 20

// Put implements Store with a single PutObject, which S3 applies atomically.
// The SDK needs a seekable body (to sign the payload over plain HTTP and to
// rewind on retries): an io.ReadSeeker is sent as is from its current
// position, any other reader is first buffered in memory or, above 16 MiB, in
// a temporary file.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	okey, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("coldstore: put %q: negative size %d", key, size)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("coldstore: put %q: %w", key, err)
		}
	}()
	body, cleanup, err := seekableBody(ctx, r, size)
	if err != nil {
		return err
	}
	defer cleanup()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(okey),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	return err
}

// seekableBody returns a seekable reader over exactly size bytes of r, or an
// error wrapping ErrSizeMismatch if r does not hold exactly size bytes.
func seekableBody(ctx context.Context, r io.Reader, size int64) (io.ReadSeeker, func(), error) {
	nop := func() {}
	if rs, ok := r.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil { // pipes fail here
			end, err := rs.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, nop, err
			}
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, nop, err
			}
			if end-start != size {
				return nil, nop, fmt.Errorf("%w: reader holds %d bytes, want %d", ErrSizeMismatch, end-start, size)
			}
			// Hide other interfaces (io.WriterTo, ...) from the SDK.
			return struct{ io.ReadSeeker }{rs}, nop, nil
		}
	}
	src := io.LimitReader(ctxReader{ctx, r}, size+1)
	if size <= maxBufferedPut {
		var buf bytes.Buffer
		buf.Grow(int(size) + 1)
		n, err := buf.ReadFrom(src)
		if err != nil {
			return nil, nop, err
		}
		if n != size {
			return nil, nop, fmt.Errorf("%w: got %s, want %d bytes", ErrSizeMismatch, describeLen(n, size), size)
		}
		return bytes.NewReader(buf.Bytes()), nop, nil
	}
	f, err := os.CreateTemp("", "coldstore-put-*")
	if err != nil {
		return nil, nop, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, src)
	if err == nil && n != size {
		err = fmt.Errorf("%w: got %s, want %d bytes", ErrSizeMismatch, describeLen(n, size), size)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, nop, err
	}
	return struct{ io.ReadSeeker }{f}, cleanup, nil
}

// Get implements Store with a ranged GetObject ("Range: bytes=off-end").
func (s *S3) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	okey, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if err := checkRange(off); err != nil {
		return nil, err
	}
	if length == 0 {
		// HTTP cannot express an empty range; check existence and offset.
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, err
		}
		if off > info.Size {
			return nil, fmt.Errorf("%w: offset %d beyond size %d of %q", ErrInvalidRange, off, info.Size, key)
		}
		return emptyBody(), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(okey)}
	switch {
	case length > 0 && length <= math.MaxInt64-off:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isS3NotFound(err) {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotFound, key, err)
		}
		if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
			// The range starts at or after the end. Reading from exactly
			// the end (or anything from an empty object) is an empty read.
			info, herr := s.Head(ctx, key)
			if herr != nil {
				return nil, herr
			}
			if off >= info.Size {
				if off == info.Size {
					return emptyBody(), nil
				}
				return nil, fmt.Errorf("%w: offset %d beyond size %d of %q", ErrInvalidRange, off, info.Size, key)
			}
		}
		return nil, fmt.Errorf("coldstore: get %q: %w", key, err)
	}
	return out.Body, nil
}

// Head implements Store.
func (s *S3) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	okey, err := s.objectKey(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(okey)})
	if err != nil {
		if isS3NotFound(err) {
			return ObjectInfo{}, fmt.Errorf("%w: %q: %w", ErrNotFound, key, err)
		}
		return ObjectInfo{}, fmt.Errorf("coldstore: head %q: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

// List implements Store with ListObjectsV2, whose results are in UTF-8 binary
// (byte-wise) key order.
func (s *S3) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(ObjectInfo{}, err)
			return
		}
		if !prefixCanMatch(prefix) {
			return
		}
		in := &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.prefix + prefix)}
		if s.cfg.ListPageSize > 0 {
			in.MaxKeys = aws.Int32(s.cfg.ListPageSize)
		}
		pages := s3.NewListObjectsV2Paginator(s.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(ObjectInfo{}, fmt.Errorf("coldstore: list %q: %w", prefix, err))
				return
			}
			for _, o := range page.Contents {
				info := ObjectInfo{
					Key:      strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
					Size:     aws.ToInt64(o.Size),
					Modified: aws.ToTime(o.LastModified),
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Delete implements Store. S3 answers 204 for missing keys too.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	okey, err := s.objectKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(okey)})
	if err != nil && !isS3NotFound(err) {
		return fmt.Errorf("coldstore: delete %q: %w", key, err)
	}
	return nil
}

// EnsureBucket creates the bucket unless it exists already (and is ours).
func (s *S3) EnsureBucket(ctx context.Context) error {
	bucket := aws.String(s.cfg.Bucket)
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	if !errors.As(err, &nf) && httpStatus(err) != http.StatusNotFound {
		return fmt.Errorf("coldstore: head bucket %q: %w", s.cfg.Bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: bucket}
	if r := s.cfg.Region; r != "us-east-1" && r != "auto" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(r),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("coldstore: create bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}
