// Package contentenc negotiates the content coding of a response
// (Accept-Encoding, RFC 9110 section 12.5.3) and compresses it with gzip
// or zstd (github.com/klauspost/compress), with pooled encoders so that a
// compressed response costs one encoder's memory, returned at its end.
//
// Brotli is not offered: the only pure-Go implementation
// (github.com/andybalholm/brotli) compresses several times slower than
// gzip at comparable ratios on stream data, and every client that accepts
// br also accepts gzip (browsers, curl, undici) or zstd (current
// browsers).
package contentenc

import (
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoding is a content coding; Identity is none.
type Encoding string

// The codings this package produces.
const (
	Identity Encoding = ""
	Gzip     Encoding = "gzip"
	Zstd     Encoding = "zstd"
)

// MinSize is the smallest body worth compressing: below it the coding's
// framing and the CPU cost outweigh what it saves.
const MinSize = 1024

// preference orders the codings this package produces, best first, for
// when a client accepts several equally.
var preference = []Encoding{Zstd, Gzip}

// Negotiate returns the coding to use for a request whose Accept-Encoding
// header is accept: the supported coding with the highest quality value
// (zstd before gzip on a tie), or Identity when the client accepts none
// of them (or sent no header). A malformed quality counts as 0 for that
// entry only.
func Negotiate(accept string) Encoding {
	if accept == "" {
		return Identity
	}
	q := map[Encoding]float64{}
	star, hasStar := 0.0, false
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		v := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				v = f
			}
		}
		switch {
		case name == "*":
			star, hasStar = v, true
		case name == "x-gzip":
			q[Gzip] = max(q[Gzip], v)
		default:
			if _, ok := q[Encoding(name)]; !ok || v > q[Encoding(name)] {
				q[Encoding(name)] = v
			}
		}
	}
	best, bestQ := Identity, 0.0
	for _, e := range preference {
		v, ok := q[e]
		if !ok && hasStar {
			v, ok = star, true
		}
		if ok && v > bestQ {
			best, bestQ = e, v
		}
	}
	return best
}

// Compressible reports whether bodies of media type contentType are worth
// compressing: text, JSON, XML, JavaScript and their structured-syntax
// variants. Everything else (application/octet-stream, images, audio,
// video, archives) is opaque or already compressed, and left alone.
func Compressible(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return true
	case strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/jsonl", "application/xml",
		"application/javascript", "application/ecmascript", "application/x-javascript",
		"application/yaml", "application/x-yaml", "application/toml", "application/graphql":
		return true
	}
	return false
}

// Writer compresses what is written to it into an underlying writer.
// Flush pushes everything written so far out as a decodable unit; Close
// ends the compressed stream and returns the encoder to its pool (the
// Writer must not be used afterwards).
type Writer interface {
	io.Writer
	Flush() error
	Close() error
}

var (
	gzipPool = sync.Pool{New: func() any {
		// BestSpeed: a streaming server is CPU-bound long before the
		// network is, and level 1 already gets most of the ratio on
		// stream data (docs/compression.md has figures).
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return w
	}}
	zstdPool = sync.Pool{New: func() any {
		// One goroutine and a 1 MiB window bound an encoder's memory to a
		// few MiB; SpeedFastest for the same reason as gzip's level.
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
			zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true))
		return w
	}}
)

// NewWriter returns a Writer that compresses into w with coding e, which
// must be Gzip or Zstd.
func NewWriter(e Encoding, w io.Writer) Writer {
	switch e {
	case Gzip:
		g := gzipPool.Get().(*gzip.Writer)
		g.Reset(w)
		return &gzipWriter{g}
	case Zstd:
		z := zstdPool.Get().(*zstd.Encoder)
		z.Reset(w)
		return &zstdWriter{z}
	}
	panic("contentenc: NewWriter with coding " + strconv.Quote(string(e)))
}

type gzipWriter struct{ *gzip.Writer }

func (g *gzipWriter) Close() error {
	err := g.Writer.Close()
	g.Writer.Reset(nil)
	gzipPool.Put(g.Writer)
	g.Writer = nil
	return err
}

type zstdWriter struct{ *zstd.Encoder }

func (z *zstdWriter) Close() error {
	err := z.Encoder.Close()
	z.Encoder.Reset(nil)
	zstdPool.Put(z.Encoder)
	z.Encoder = nil
	return err
}

// NewReader returns a reader of what r holds in coding e (Identity: r
// itself), for clients and tests that read compressed responses.
func NewReader(e Encoding, r io.Reader) (io.ReadCloser, error) {
	switch e {
	case Identity:
		return io.NopCloser(r), nil
	case Gzip:
		return gzip.NewReader(r)
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("contentenc: unknown coding %q", string(e))
}
