package sequencer

import (
	"errors"
	"fmt"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hotlog"
)

// Kind classifies a failed stream operation so the HTTP layer can pick a status.
type Kind int

// Kinds of failure.
const (
	KindInternal    Kind = iota // storage failure: 5xx
	KindNotFound                // no such stream: 404
	KindGone                    // soft-deleted stream that forks still reference: 410
	KindBadRequest              // malformed or impossible request: 400
	KindConflict                // configuration or Stream-Seq conflict: 409
	KindClosed                  // append to a closed stream: 409 with Stream-Closed
	KindStaleEpoch              // producer epoch older than the stored one: 403
	KindSeqGap                  // producer sequence gap: 409 with expected/received
	KindUnavailable             // server shutting down, stream owned elsewhere, catalog unreachable: 503
	KindStorageFull             // the disk is full (ENOSPC, SQLITE_FULL): 507; nothing was written
)

// Error is the error type returned by stream operations.
type Error struct {
	Kind Kind
	Msg  string
	// Producer state reported with KindStaleEpoch and KindSeqGap.
	Epoch, ExpectedSeq, ReceivedSeq int64
	// Tail is set with KindClosed: the final offset of the stream.
	Tail string
	Err  error // underlying cause for KindInternal
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// internal wraps a storage failure; running out of space gets its own kind
// because, unlike other storage failures, it ends once space is freed.
func internal(msg string, err error) *Error {
	if hotlog.IsFull(err) {
		return &Error{Kind: KindStorageFull, Msg: msg + ": insufficient storage on the server", Err: err}
	}
	if catalog.Unavailable(err) {
		// A node cut off from a shared catalog: nothing was done, and a
		// retry may reach a node that can serve it.
		return &Error{Kind: KindUnavailable, Msg: msg + ": the catalog cannot be reached now", Err: err}
	}
	return &Error{Kind: KindInternal, Msg: msg, Err: err}
}

// KindOf returns the Kind of err, KindInternal for foreign errors.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

var (
	errNotFound = &Error{Kind: KindNotFound, Msg: "stream not found"}
	errGone     = &Error{Kind: KindGone, Msg: "stream was deleted; forks still reference its data"}
	errStopped  = &Error{Kind: KindUnavailable, Msg: "server is shutting down"}
)
