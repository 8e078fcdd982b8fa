// Package hooks defines the callbacks an embedding application can attach
// to a Durable Streams server (see server.Config.Hooks) and the values they
// receive.
//
// BeforeAppend runs on the request goroutine before anything is written
// and can veto the append; AfterAppend runs after an append is durable,
// on a separate goroutine per stream; OnStreamCreated and OnStreamDeleted
// run after a create or delete is committed to the catalog, on one
// goroutine for the whole server, in commit order. No hook can make a
// committed operation fail.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Hooks are the optional callbacks of a server; nil fields are skipped at
// no cost.
type Hooks struct {
	// BeforeAppend is called for every POST to a stream (data, close or
	// both) and for every PUT that carries initial data, after the
	// request has been validated and before anything is written. A
	// non-nil error rejects the request: nothing is written and the
	// client gets the status and reason of a [Rejection] (see [Reject]),
	// or 403 with the error's text for any other error.
	//
	// It runs on the request goroutine, so it delays only its own
	// request, and it sees the request's context (authentication and
	// other values included).
	BeforeAppend func(ctx context.Context, a *AppendInfo) error

	// AfterAppend is called once for every request that appended data
	// (a POST with a body, a PUT that created a stream with initial
	// data), after the data is durable and the append acknowledged.
	// Idempotent-producer duplicates (204 without new data) and close-only
	// POSTs append nothing and are not reported; a POST with data that
	// also closes the stream is, with Closed set.
	//
	// Calls for one stream never overlap and follow the order in which
	// the appends were acknowledged, so appends that a client makes one
	// after another arrive in offset order; concurrent appends to the same
	// stream may be reported in either order (compare their EndByte).
	// Calls for different streams run concurrently. The response does not
	// wait for the hook; panics are recovered and logged. The context
	// carries the request's values but is never canceled.
	AfterAppend func(ctx context.Context, r AppendResult)

	// OnStreamCreated is called after a new stream is committed (not for
	// an idempotent PUT of an existing one).
	OnStreamCreated func(ctx context.Context, s StreamInfo)

	// OnStreamDeleted is called after a stream is deleted, by a DELETE or
	// because its TTL or expiry time passed (StreamInfo.Expired).
	OnStreamDeleted func(ctx context.Context, s StreamInfo)
}

// Producer identifies an idempotent producer's request.
type Producer struct {
	ID    string
	Epoch int64
	Seq   int64
}

// AppendInfo describes an append about to be made.
type AppendInfo struct {
	// Path is the stream's path (the part of the URL after /v1/stream/).
	Path string
	// ContentType is the request's content type ("" for a close-only
	// POST).
	ContentType string
	// Data is the request body as received; the hook must not modify or
	// retain it.
	Data []byte
	// Messages is the number of messages the body holds (the elements of
	// a JSON array body, else 1; 0 without a body).
	Messages int
	// Close reports that the request also closes the stream.
	Close bool
	// Create reports a PUT that creates the stream with Data as its
	// initial content.
	Create bool
	// Producer is set when the request carries producer headers.
	Producer *Producer
	// Header is the request's header, for application-specific checks.
	Header http.Header
}

// Size is the length of the request body.
func (a *AppendInfo) Size() int { return len(a.Data) }

// AppendResult describes an acknowledged append.
type AppendResult struct {
	Path        string
	ContentType string
	// StartByte and EndByte delimit the appended data in the stream's
	// logical byte space (for JSON streams, the stored compact messages);
	// they are equal for a close without data.
	StartByte, EndByte int64
	// NextOffset is the Stream-Next-Offset the client received.
	NextOffset string
	// Messages is the number of messages appended.
	Messages int
	// Closed reports that the stream is closed after this append.
	Closed bool
	// Create reports the initial data of a PUT.
	Create   bool
	Producer *Producer
}

// StreamInfo describes a stream that was created or deleted.
type StreamInfo struct {
	Path        string
	ContentType string
	CreatedAt   time.Time
	// Time is when the create or delete was committed.
	Time time.Time
	// TTL and ExpiresAt are the stream's expiry settings (zero: none).
	TTL       time.Duration
	ExpiresAt time.Time
	// Expired reports a delete caused by the stream's TTL or expiry time.
	Expired bool
}

// Rejection is the error a BeforeAppend hook returns to answer with a
// specific status and reason.
type Rejection struct {
	Status int    // a 4xx status; anything else is answered as 403
	Code   string // the JSON "error" code; default derived from Status
	Reason string // the JSON "message"
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("append rejected (%d): %s", r.Status, r.Reason)
}

// Reject returns a [Rejection] with status and reason.
func Reject(status int, reason string) error {
	return &Rejection{Status: status, Reason: reason}
}

// AsRejection turns any error from a BeforeAppend hook into the rejection
// sent to the client: a [Rejection] found with errors.As keeps its status
// (if it is a 4xx) and reason; any other error becomes a 403 with the
// error's text.
func AsRejection(err error) *Rejection {
	out := Rejection{Status: http.StatusForbidden, Reason: err.Error()}
	var r *Rejection
	if errors.As(err, &r) {
		out = *r
		if out.Status < 400 || out.Status > 499 {
			out.Status = http.StatusForbidden
		}
	}
	if out.Code == "" {
		out.Code = codeFor(out.Status)
	}
	if out.Reason == "" {
		out.Reason = "append rejected"
	}
	return &out
}

func codeFor(status int) string {
	b := []byte(http.StatusText(status))
	if len(b) == 0 {
		return "REJECTED"
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c == ' ' || c == '-':
			b[i] = '_'
		}
	}
	return string(b)
}
