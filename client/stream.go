package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stream is a handle for one stream. It is cheap, does no I/O until used,
// and is safe for concurrent use.
type Stream struct {
	c    *Client
	path string
	url  string

	mu sync.Mutex
	ct string // the stream's content type once learned, for appends
}

// Path returns the stream's path, such as "logs/app".
func (s *Stream) Path() string { return s.path }

// URL returns the stream's absolute URL.
func (s *Stream) URL() string { return s.url }

func (s *Stream) setContentType(ct string) {
	if ct == "" {
		return
	}
	s.mu.Lock()
	s.ct = ct
	s.mu.Unlock()
}

// contentType returns the stream's content type, asking the server once
// if it is not known yet.
func (s *Stream) contentType(ctx context.Context) (string, error) {
	s.mu.Lock()
	ct := s.ct
	s.mu.Unlock()
	if ct != "" {
		return ct, nil
	}
	md, err := s.Head(ctx)
	if err != nil {
		return "", err
	}
	return md.ContentType, nil
}

// CreateOptions configure Stream.Create. The zero value creates an empty
// stream of the server's default content type that never expires.
type CreateOptions struct {
	// ContentType is the stream's media type, such as "application/json"
	// or "text/plain" (default: the server's, application/octet-stream).
	ContentType string
	// TTL makes the stream expire this long after its last use; 0 means
	// no TTL. Mutually exclusive with ExpiresAt.
	TTL time.Duration
	// ExpiresAt makes the stream expire at this time; zero means never.
	ExpiresAt time.Time
	// Closed creates the stream already closed (with InitialData as its
	// whole content).
	Closed bool
	// InitialData is the stream's first content. For JSON streams it is
	// one JSON value, or an array whose elements become the messages.
	InitialData []byte
	// ForkedFrom, the path of another stream, creates this stream as a
	// fork sharing that stream's data up to ForkOffset.
	ForkedFrom string
	// ForkOffset is the offset of the fork point (default: the source's
	// tail). Requires ForkedFrom.
	ForkOffset string
}

// CreateResult describes the stream after Stream.Create.
type CreateResult struct {
	// Created is true when the stream was created, false when an
	// identical stream already existed (create is idempotent).
	Created     bool
	ContentType string
	NextOffset  string // the tail offset
	Closed      bool
}

// Create creates the stream. Creating a stream that exists with the same
// configuration succeeds with Created false; with a different one it fails
// with ErrConflict.
func (s *Stream) Create(ctx context.Context, opts CreateOptions) (CreateResult, error) {
	if opts.TTL > 0 && !opts.ExpiresAt.IsZero() {
		return CreateResult{}, errors.New("create: TTL and ExpiresAt are mutually exclusive")
	}
	if opts.ForkOffset != "" && opts.ForkedFrom == "" {
		return CreateResult{}, errors.New("create: ForkOffset requires ForkedFrom")
	}
	if opts.TTL < 0 {
		return CreateResult{}, errors.New("create: TTL must not be negative")
	}
	h := http.Header{}
	if opts.ContentType != "" {
		h.Set("Content-Type", opts.ContentType)
	}
	if opts.TTL > 0 {
		// The protocol counts whole seconds; round up so that a short TTL
		// does not become "expires now".
		h.Set(hdrStreamTTL, strconv.FormatInt(int64((opts.TTL+time.Second-1)/time.Second), 10))
	}
	if !opts.ExpiresAt.IsZero() {
		h.Set(hdrStreamExpiresAt, opts.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	if opts.Closed {
		h.Set(hdrStreamClosed, "true")
	}
	if opts.ForkedFrom != "" {
		h.Set(hdrForkedFrom, s.c.Stream(opts.ForkedFrom).url)
		if opts.ForkOffset != "" {
			h.Set(hdrForkOffset, opts.ForkOffset)
		}
	}
	resp, err := s.c.do(ctx, &request{method: http.MethodPut, url: s.url, header: h, body: opts.InitialData, idempotent: true})
	if err != nil {
		return CreateResult{}, fmt.Errorf("create %s: %w", s.path, err)
	}
	drain(resp)
	res := CreateResult{
		Created:     resp.StatusCode == http.StatusCreated,
		ContentType: resp.Header.Get("Content-Type"),
		NextOffset:  resp.Header.Get(hdrStreamNextOffset),
		Closed:      isTrue(resp.Header.Get(hdrStreamClosed)),
	}
	s.setContentType(res.ContentType)
	return res, nil
}

// AppendOptions configure Stream.Append.
type AppendOptions struct {
	// ContentType of the data; it must match the stream's media type
	// (default: the stream's own, learned from the server).
	ContentType string
	// Seq, if set, is sent as Stream-Seq: the server rejects the append
	// with ErrConflict unless Seq is byte-wise greater than the last one
	// it accepted, which lets writers coordinate.
	Seq string
	// Close closes the stream atomically with this append.
	Close bool
	// Producer, if set, sends the idempotent producer headers
	// (Producer-Id, Producer-Epoch, Producer-Seq): the server stores each
	// (id, epoch, seq) at most once, so the append is retried after any
	// transient failure. The caller numbers its appends: Seq starts at 0
	// in each epoch and grows by one per append. A Producer does this
	// bookkeeping, with batching and pipelining; this is for callers that
	// keep the state themselves. A newer epoch on the server is a
	// *StaleEpochError, a seq out of order a *SequenceGapError.
	Producer *ProducerState
}

// ProducerState identifies one append of an idempotent producer: its id,
// epoch and sequence number.
type ProducerState struct {
	ID    string
	Epoch int64
	Seq   int64
}

// AppendResult describes the stream after an append or close.
type AppendResult struct {
	NextOffset string // the tail offset after the append
	Closed     bool   // the stream is closed
	// Duplicate is true, for an append with producer headers, when the
	// server had already stored this seq (204 No Content): nothing new
	// was appended. This happens when an earlier attempt's answer was
	// lost, and when another writer uses the same id and epoch.
	Duplicate bool
	// Producer echoes the producer state the server answered with
	// (Producer-Epoch and Producer-Seq) for appends with producer
	// headers; nil otherwise.
	Producer *ProducerState
}

// Append appends data to the stream. For JSON streams data is one JSON
// value, or an array whose elements become separate messages.
//
// A plain append is not idempotent: it is retried only when the server
// certainly did not apply it (connection refused, 429, 503). Use a
// Producer for exactly-once appends that survive any failure.
func (s *Stream) Append(ctx context.Context, data []byte, opts AppendOptions) (AppendResult, error) {
	if len(data) == 0 {
		return AppendResult{}, fmt.Errorf("append %s: empty data", s.path)
	}
	ct := opts.ContentType
	if ct == "" {
		var err error
		if ct, err = s.contentType(ctx); err != nil {
			return AppendResult{}, fmt.Errorf("append %s: %w", s.path, err)
		}
	}
	return s.post(ctx, data, ct, opts)
}

// AppendJSON appends v, encoded as JSON, as exactly one message of a JSON
// stream (even when v is itself an array).
func (s *Stream) AppendJSON(ctx context.Context, v any, opts AppendOptions) (AppendResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append %s: encoding JSON: %w", s.path, err)
	}
	// The server flattens one level of a top-level array, so the value is
	// wrapped in one to be stored as a single message.
	body := make([]byte, 0, len(b)+2)
	body = append(append(append(body, '['), b...), ']')
	if opts.ContentType == "" {
		opts.ContentType = "application/json"
	}
	return s.post(ctx, body, opts.ContentType, opts)
}

// Close closes the stream: it accepts no more appends, and readers that
// reach its end see EOF. Closing a closed stream succeeds.
func (s *Stream) Close(ctx context.Context) (AppendResult, error) {
	return s.post(ctx, nil, "", AppendOptions{Close: true})
}

func (s *Stream) post(ctx context.Context, body []byte, ct string, opts AppendOptions) (AppendResult, error) {
	op := "append to"
	if len(body) == 0 {
		op = "close"
	}
	h := http.Header{}
	if len(body) > 0 {
		h.Set("Content-Type", ct)
	}
	if opts.Seq != "" {
		h.Set(hdrStreamSeq, opts.Seq)
	}
	if opts.Close {
		h.Set(hdrStreamClosed, "true")
	}
	if p := opts.Producer; p != nil {
		if p.ID == "" || p.Epoch < 0 || p.Seq < 0 {
			return AppendResult{}, fmt.Errorf("%s %s: producer needs an ID and a non-negative epoch and seq", op, s.path)
		}
		h.Set(hdrProducerID, p.ID)
		h.Set(hdrProducerEpoch, strconv.FormatInt(p.Epoch, 10))
		h.Set(hdrProducerSeq, strconv.FormatInt(p.Seq, 10))
	}
	// A bare close is idempotent on the server, and so is an append the
	// server deduplicates by producer seq: both may be retried after any
	// failure.
	idem := len(body) == 0 || opts.Producer != nil
	resp, err := s.c.do(ctx, &request{method: http.MethodPost, url: s.url, header: h, body: body, idempotent: idem})
	if err != nil {
		var se *StaleEpochError
		if opts.Producer != nil && errors.As(err, &se) {
			se.Epoch = opts.Producer.Epoch
		}
		return AppendResult{}, fmt.Errorf("%s %s: %w", op, s.path, err)
	}
	drain(resp)
	res := AppendResult{NextOffset: resp.Header.Get(hdrStreamNextOffset), Closed: isTrue(resp.Header.Get(hdrStreamClosed))}
	if opts.Producer != nil {
		res.Duplicate = resp.StatusCode == http.StatusNoContent
		res.Producer = echoedProducer(resp.Header, *opts.Producer)
	}
	return res, nil
}

// echoedProducer reads the producer state a server answered with; a
// server that echoes nothing leaves the state that was sent.
func echoedProducer(h http.Header, sent ProducerState) *ProducerState {
	st := sent
	if n, err := strconv.ParseInt(h.Get(hdrProducerEpoch), 10, 64); err == nil {
		st.Epoch = n
	}
	if n, err := strconv.ParseInt(h.Get(hdrProducerSeq), 10, 64); err == nil {
		st.Seq = n
	}
	return &st
}

// Metadata describes a stream, as answered by Stream.Head.
type Metadata struct {
	ContentType string
	NextOffset  string        // the tail offset: where the next append lands
	Closed      bool          // the stream is closed
	TTL         time.Duration // the stream's TTL, 0 if none
	ExpiresAt   time.Time     // the stream's absolute expiry, zero if none
}

// Head returns the stream's metadata; ErrNotFound if it does not exist.
func (s *Stream) Head(ctx context.Context) (Metadata, error) {
	resp, err := s.c.do(ctx, &request{method: http.MethodHead, url: s.url, idempotent: true})
	if err != nil {
		return Metadata{}, fmt.Errorf("head %s: %w", s.path, err)
	}
	drain(resp)
	md := Metadata{
		ContentType: resp.Header.Get("Content-Type"),
		NextOffset:  resp.Header.Get(hdrStreamNextOffset),
		Closed:      isTrue(resp.Header.Get(hdrStreamClosed)),
	}
	if v := resp.Header.Get(hdrStreamTTL); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < int64(1<<63-1)/int64(time.Second) {
			md.TTL = time.Duration(n) * time.Second
		}
	}
	if v := resp.Header.Get(hdrStreamExpiresAt); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			md.ExpiresAt = t
		}
	}
	s.setContentType(md.ContentType)
	return md, nil
}

// Delete deletes the stream and its data. Delete is retried after network
// errors, so a delete whose first answer was lost reports ErrNotFound.
func (s *Stream) Delete(ctx context.Context) error {
	resp, err := s.c.do(ctx, &request{method: http.MethodDelete, url: s.url, idempotent: true})
	if err != nil {
		return fmt.Errorf("delete %s: %w", s.path, err)
	}
	drain(resp)
	return nil
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// isJSONType reports whether a content type is application/json (the
// protocol's JSON mode, with message boundaries).
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

