// Package subscriptions implements the protocol's reserved subscription
// APIs (sections 6 and 7): durable cursors over sets of streams that wake
// a worker when any of them has data past its cursor, by a signed webhook
// or by a wake event in a pull-wake stream, with generation fencing and
// leases.
//
// State lives in its own SQLite database (see store.go); only this
// package runs SQL on it. Every change is committed before it is
// acknowledged or acted on, so after a restart:
//
//  1. every subscription, link and cursor (acked_offset) is as last
//     acknowledged;
//  2. a wake that was issued but not delivered is delivered again, at its
//     persisted next_attempt_at if a retry was scheduled;
//  3. a delivered wake keeps its lease until lease_expires_at, then is
//     cleared and, if work is pending, replaced by a new generation;
//  4. idle subscriptions are checked for pending work (appends made while
//     the server was down are not notified, so the check compares tails).
//
// Delivery is at least once: a crash between a delivery and the commit of
// its outcome delivers the same wake again.
//
// The package learns of appends through Manager.Appended, which only
// records the stream's new tail and signals a dispatcher goroutine: the
// append path never waits for subscription work. Deliveries run on a
// fixed pool of workers fed by a bounded queue; retries wait with
// exponential backoff and jitter per subscription (its target).
package subscriptions

import (
	"context"
	"net/http"
)

// Type is a subscription's delivery mechanism.
type Type string

// The delivery mechanisms.
const (
	TypeWebhook  Type = "webhook"
	TypePullWake Type = "pull-wake"
)

// Paths of the control API, relative to the stream root (where streams
// live, e.g. /v1/stream): ControlPrefix is reserved for them.
const (
	ControlPrefix     = "__ds"
	SubscriptionsPath = ControlPrefix + "/subscriptions/"
	JWKSPath          = ControlPrefix + "/jwks.json"
)

// Lease bounds (lease_ttl_ms).
const (
	DefaultLeaseTTLMS = 30_000
	MinLeaseTTLMS     = 1_000
	MaxLeaseTTLMS     = 600_000
)

// Limits on requests.
const (
	maxIDLen          = 256
	maxDescriptionLen = 4096
	maxStreamsPerCall = 1000
	maxExplicitLinks  = 10000
	maxWorkerLen      = 256
)

// Streams is what the manager needs from the server's streams.
type Streams interface {
	// Tail returns the offset token of the stream's tail, or found false
	// if there is no such stream.
	Tail(ctx context.Context, path string) (tail string, found bool, err error)
	// List calls fn with the path of every live stream whose path starts
	// with prefix, in path order, until fn returns false.
	List(ctx context.Context, prefix string, fn func(path string) bool) error
	// AppendJSON appends one JSON message to an existing stream.
	AppendJSON(ctx context.Context, path string, msg []byte) error
}

// CreateRequest is the body of PUT __ds/subscriptions/:id as received.
type CreateRequest struct {
	Type    string   `json:"type"`
	Pattern string   `json:"pattern"`
	Streams []string `json:"streams"`
	Webhook *struct {
		URL string `json:"url"`
	} `json:"webhook"`
	WakeStream  string  `json:"wake_stream"`
	LeaseTTLMS  *int64  `json:"lease_ttl_ms"`
	Description *string `json:"description"`
}

// Config is a subscription's normalized configuration; its hash decides
// whether a PUT re-confirms (200) or conflicts (409).
type Config struct {
	Type        Type     `json:"type"`
	Pattern     string   `json:"pattern,omitempty"`
	Streams     []string `json:"streams,omitempty"` // sorted, without duplicates
	WebhookURL  string   `json:"webhook_url,omitempty"`
	WakeStream  string   `json:"wake_stream,omitempty"`
	LeaseTTLMS  int64    `json:"lease_ttl_ms"`
	Description *string  `json:"description,omitempty"`
}

// View is a subscription as GET and PUT answer it.
type View struct {
	ID             string       `json:"id"`
	SubscriptionID string       `json:"subscription_id"`
	Type           Type         `json:"type"`
	Pattern        string       `json:"pattern,omitempty"`
	Streams        []LinkView   `json:"streams"`
	Webhook        *WebhookView `json:"webhook,omitempty"`
	WakeStream     *string      `json:"wake_stream"`
	LeaseTTLMS     int64        `json:"lease_ttl_ms"`
	CreatedAt      string       `json:"created_at"`
	Status         string       `json:"status"`
	Description    *string      `json:"description,omitempty"`
}

// LinkView is a stream cursor of a subscription.
type LinkView struct {
	Path        string `json:"path"`
	LinkType    string `json:"link_type"` // "explicit" wins over "glob"
	AckedOffset string `json:"acked_offset"`
}

// WebhookView is a webhook subscription's target and signing metadata.
type WebhookView struct {
	URL     string  `json:"url"`
	Signing Signing `json:"signing"`
}

// Signing tells a receiver how to verify deliveries.
type Signing struct {
	Alg     string `json:"alg"` // "ed25519"
	Kid     string `json:"kid"`
	JWKSURL string `json:"jwks_url"`
}

// StreamInfo is a stream of a wake: its cursor and tail.
type StreamInfo struct {
	Path        string `json:"path"`
	LinkType    string `json:"link_type"`
	AckedOffset string `json:"acked_offset"`
	TailOffset  string `json:"tail_offset"`
	HasPending  bool   `json:"has_pending"`
}

// Notification is the body of a webhook delivery.
type Notification struct {
	SubscriptionID string       `json:"subscription_id"`
	WakeID         string       `json:"wake_id"`
	Generation     int64        `json:"generation"`
	Streams        []StreamInfo `json:"streams"`
	CallbackURL    string       `json:"callback_url"`
	CallbackToken  string       `json:"callback_token"`
}

// WakeEvent is the message a pull-wake subscription appends to its wake
// stream.
type WakeEvent struct {
	Type           string `json:"type"` // "wake"
	SubscriptionID string `json:"subscription_id"`
	Stream         string `json:"stream"`
	Generation     int64  `json:"generation"`
	TS             int64  `json:"ts"` // Unix milliseconds
}

// Claim is the answer to a successful pull-wake claim.
type Claim struct {
	WakeID     string       `json:"wake_id"`
	Generation int64        `json:"generation"`
	Token      string       `json:"token"`
	Streams    []StreamInfo `json:"streams"`
	LeaseTTLMS int64        `json:"lease_ttl_ms"`
}

// AckRequest is the body of callback, ack and release requests.
type AckRequest struct {
	WakeID     string `json:"wake_id"`
	Generation *int64 `json:"generation"`
	Acks       []Ack  `json:"acks"`
	Done       bool   `json:"done"`
}

// Ack advances one stream's cursor to Offset (inclusive).
type Ack struct {
	Stream string `json:"stream"`
	Path   string `json:"path"` // accepted as an alias of Stream
	Offset string `json:"offset"`
}

// AckResult answers a callback or ack.
type AckResult struct {
	OK       bool `json:"ok"`
	NextWake bool `json:"next_wake"`
}

// Error codes of the protocol.
const (
	CodeInvalidRequest  = "INVALID_REQUEST"
	CodeNotFound        = "SUBSCRIPTION_NOT_FOUND"
	CodeAlreadyExists   = "SUBSCRIPTION_ALREADY_EXISTS"
	CodeWebhookRejected = "WEBHOOK_URL_REJECTED"
	CodeTokenInvalid    = "TOKEN_INVALID"
	CodeTokenExpired    = "TOKEN_EXPIRED"
	CodeFenced          = "FENCED"
	CodeAlreadyClaimed  = "ALREADY_CLAIMED"
	CodeNoPendingWork   = "NO_PENDING_WORK"
	CodeInvalidOffset   = "INVALID_OFFSET"
	CodeInternal        = "INTERNAL"
)

// Error is a failure the client is told about, with the protocol's code.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	// CurrentHolder and Generation accompany ALREADY_CLAIMED.
	CurrentHolder string `json:"current_holder,omitempty"`
	Generation    int64  `json:"generation,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Status is the HTTP status that answers e.
func (e *Error) Status() int {
	switch e.Code {
	case CodeInvalidRequest, CodeWebhookRejected:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeTokenInvalid, CodeTokenExpired:
		return http.StatusUnauthorized
	case CodeAlreadyExists, CodeFenced, CodeAlreadyClaimed, CodeNoPendingWork, CodeInvalidOffset:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func errf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

var errNotFound = errf(CodeNotFound, "subscription not found")

// errUnavailable answers a request when a cluster's shared store cannot
// be reached.
var errUnavailable = errf(CodeInternal, "subscription store unavailable")
