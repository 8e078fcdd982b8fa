package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors. Every error the server answers with is an *HTTPError
// (possibly wrapped in a *StaleEpochError or *SequenceGapError); these
// sentinels match it with errors.Is by status and code, so callers need not
// look at status numbers.
var (
	// ErrNotFound: the stream does not exist (404).
	ErrNotFound = errors.New("stream not found")
	// ErrGone: the stream was deleted, or the offset is before the
	// earliest retained data (410).
	ErrGone = errors.New("stream gone")
	// ErrClosed: the stream is closed and accepts no more data (409 with
	// Stream-Closed: true).
	ErrClosed = errors.New("stream closed")
	// ErrConflict: the request conflicts with the stream's state (409):
	// a different configuration on create, a content type mismatch, a
	// Stream-Seq regression, a closed stream or a producer sequence gap.
	ErrConflict = errors.New("conflict")
)

// HTTPError is a response the client did not expect, usually an error
// answer of the server. Code and Message come from the server's JSON body
// {"error": CODE, "message": ...} when it has one.
type HTTPError struct {
	Status  int         // HTTP status code
	Code    string      // machine-readable code, such as "NOT_FOUND" or "STREAM_CLOSED"
	Message string      // human-readable reason
	Header  http.Header // the response headers
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and its siblings work.
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrGone:
		return e.Status == http.StatusGone
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrClosed:
		return e.Status == http.StatusConflict &&
			(e.Code == "STREAM_CLOSED" || strings.EqualFold(e.Header.Get(hdrStreamClosed), "true"))
	}
	return false
}

// StaleEpochError reports that a newer producer epoch has claimed the
// producer id (403): this producer is fenced.
type StaleEpochError struct {
	Epoch        int64 // the epoch this producer sent
	CurrentEpoch int64 // the server's current epoch for the producer id
	Err          *HTTPError
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("producer epoch %d is stale: the server's epoch is %d", e.Epoch, e.CurrentEpoch)
}

// Unwrap returns the underlying *HTTPError.
func (e *StaleEpochError) Unwrap() error { return e.Err }

// SequenceGapError reports that the server expected a different producer
// sequence number (409).
type SequenceGapError struct {
	Expected int64 // Producer-Expected-Seq
	Received int64 // Producer-Received-Seq
	Err      *HTTPError
}

func (e *SequenceGapError) Error() string {
	return fmt.Sprintf("producer sequence gap: server expected seq %d, received %d", e.Expected, e.Received)
}

// Unwrap returns the underlying *HTTPError.
func (e *SequenceGapError) Unwrap() error { return e.Err }

// maxErrorBody bounds how much of an error response is read: enough for
// any JSON error the protocol produces, not enough to be a memory risk.
const maxErrorBody = 64 << 10

// responseError builds the error for an unexpected response and closes its
// body.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	he := &HTTPError{Status: resp.StatusCode, Header: resp.Header}
	var js struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &js); err == nil && (js.Error != "" || js.Message != "") {
		he.Code, he.Message = js.Error, js.Message
	} else {
		he.Message = strings.TrimSpace(string(body))
		if len(he.Message) > 200 {
			he.Message = he.Message[:200] + "..."
		}
	}
	return classify(he)
}

// classify wraps producer-specific answers in their typed errors.
func classify(he *HTTPError) error {
	switch {
	case he.Status == http.StatusForbidden && he.Header.Get(hdrProducerEpoch) != "":
		cur, err := strconv.ParseInt(he.Header.Get(hdrProducerEpoch), 10, 64)
		if err == nil {
			return &StaleEpochError{CurrentEpoch: cur, Err: he}
		}
	case he.Status == http.StatusConflict && he.Header.Get(hdrProducerExpectedSeq) != "":
		exp, err1 := strconv.ParseInt(he.Header.Get(hdrProducerExpectedSeq), 10, 64)
		rec, err2 := strconv.ParseInt(he.Header.Get(hdrProducerReceivedSeq), 10, 64)
		if err1 == nil && err2 == nil {
			return &SequenceGapError{Expected: exp, Received: rec, Err: he}
		}
	}
	return he
}
