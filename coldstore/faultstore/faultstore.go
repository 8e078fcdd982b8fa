// Package faultstore is a testing aid: a coldstore.Store that wraps another
// one and injects the failures real object stores show, so that tests can
// check that uploads retry, that verification catches bad objects and that
// cold reads never hand wrong bytes to a client.
//
// Faults are planned per operation (see [Plan]): a script of faults for the
// next calls, then a probability for each fault on every later call, drawn
// from a generator seeded by the caller so that a failing run can be
// repeated. It is not meant for production servers.
//
// The faults:
//
//   - [Unavailable]: the call fails at once with an error wrapping
//     [ErrUnavailable], like an HTTP 503 from S3; nothing is stored.
//   - [Timeout]: the call blocks until its context ends (or [Store.Heal]
//     releases it), like a store that accepts the connection and never
//     answers.
//   - [Truncate]: Put stores only the first half of the object and reports
//     success; Get returns only the first half of the requested bytes and
//     then a clean io.EOF, like a proxy that drops the end of a body.
//   - [Corrupt]: Put stores the object with one byte flipped and reports
//     success; Get flips one byte of the body. Sizes are unchanged, so only
//     a checksum notices.
//
// Truncate and Corrupt apply to Put and Get only; on other operations they
// are ignored and the call passes through.
package faultstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/streamtier/durable-streams/coldstore"
)

// Op names a coldstore.Store method.
type Op int

// The operations of coldstore.Store.
const (
	OpPut Op = iota
	OpGet
	OpHead
	OpList
	OpDelete
	numOps
)

var opNames = [numOps]string{"put", "get", "head", "list", "delete"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Fault is a kind of injected failure.
type Fault int

// The faults; see the package documentation for what each one does.
const (
	None Fault = iota // the call passes through unchanged
	Unavailable
	Timeout
	Truncate
	Corrupt
	numFaults
)

var faultNames = [numFaults]string{"none", "unavailable", "timeout", "truncate", "corrupt"}

func (f Fault) String() string {
	if f < 0 || f >= numFaults {
		return fmt.Sprintf("Fault(%d)", int(f))
	}
	return faultNames[f]
}

// ErrUnavailable is wrapped by the errors of [Unavailable] faults.
var ErrUnavailable = errors.New("faultstore: injected 503 Service Unavailable")

// Plan says which faults the calls of one operation meet.
type Plan struct {
	// Script lists the faults of the next calls in order; None lets a call
	// through. Once it is used up, Rates applies.
	Script []Fault
	// Rates is the probability of each fault on a call after the script;
	// their sum should not exceed 1. Nil means no more faults.
	Rates map[Fault]float64
	// KeyPrefix limits the plan to keys (List: prefixes) starting with it;
	// other calls pass through and do not use up the script.
	KeyPrefix string
}

// Store is a coldstore.Store injecting planned faults into the calls it
// passes to the wrapped store. It is safe for concurrent use.
type Store struct {
	inner coldstore.Store

	mu       sync.Mutex
	rng      *rand.Rand
	plans    [numOps]*planState
	injected [numOps][numFaults]int
	calls    [numOps]int
	healed   chan struct{} // closed by Heal to release blocked calls
}

type planState struct {
	Plan
	next int // index into Script
}

var _ coldstore.Store = (*Store)(nil)

// New wraps inner; seed makes the random draws of Plan.Rates repeatable.
func New(inner coldstore.Store, seed uint64) *Store {
	return &Store{inner: inner, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), healed: make(chan struct{})}
}

// Set replaces the plan of op; the zero Plan removes it.
func (s *Store) Set(op Op, p Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p.Script) == 0 && len(p.Rates) == 0 {
		s.plans[op] = nil
		return
	}
	p.Script = append([]Fault(nil), p.Script...)
	s.plans[op] = &planState{Plan: p}
}

// Heal removes every plan and releases the calls blocked by Timeout faults,
// which then fail with ErrUnavailable.
func (s *Store) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans = [numOps]*planState{}
	close(s.healed)
	s.healed = make(chan struct{})
}

// Injected returns how many calls of op met fault f so far.
func (s *Store) Injected(op Op, f Fault) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injected[op][f]
}

// Calls returns how many calls of op were made so far.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// String describes the store for logs.
func (s *Store) String() string { return "faultstore(" + coldstore.Describe(s.inner) + ")" }

// draw decides the fault of one call of op on key.
func (s *Store) draw(op Op, key string) (Fault, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	p := s.plans[op]
	f := None
	switch {
	case p == nil || !strings.HasPrefix(key, p.KeyPrefix):
	case p.next < len(p.Script):
		f = p.Script[p.next]
		p.next++
	case len(p.Rates) > 0:
		x := s.rng.Float64()
		// Fixed order, so that a seed always means the same draws.
		for k := Unavailable; k < numFaults; k++ {
			if x < p.Rates[k] {
				f = k
				break
			}
			x -= p.Rates[k]
		}
	}
	if (f == Truncate || f == Corrupt) && op != OpPut && op != OpGet {
		f = None
	}
	s.injected[op][f]++
	return f, s.healed
}

// fail returns the error of an Unavailable or Timeout fault, nil otherwise.
func fail(ctx context.Context, op Op, key string, f Fault, healed <-chan struct{}) error {
	switch f {
	case Unavailable:
		return fmt.Errorf("%s %q: %w", op, key, ErrUnavailable)
	case Timeout:
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %q: injected hang: %w", op, key, ctx.Err())
		case <-healed:
			return fmt.Errorf("%s %q: injected hang released: %w", op, key, ErrUnavailable)
		}
	}
	return nil
}

// Put implements coldstore.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f, healed := s.draw(OpPut, key)
	if err := fail(ctx, OpPut, key, f, healed); err != nil {
		return err
	}
	if f != Truncate && f != Corrupt {
		return s.inner.Put(ctx, key, r, size)
	}
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if int64(len(data)) != size {
		return fmt.Errorf("put %q: %w", key, coldstore.ErrSizeMismatch)
	}
	data = damage(f, data)
	return s.inner.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// damage returns data truncated to half or with its middle byte flipped.
// Data of length 0 cannot be damaged.
func damage(f Fault, data []byte) []byte {
	if len(data) == 0 {
		return data
	}
	if f == Truncate {
		return data[:len(data)/2]
	}
	out := bytes.Clone(data)
	out[len(out)/2] ^= 0xff
	return out
}

// Get implements coldstore.Store.
func (s *Store) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	f, healed := s.draw(OpGet, key)
	if err := fail(ctx, OpGet, key, f, healed); err != nil {
		return nil, err
	}
	rc, err := s.inner.Get(ctx, key, off, length)
	if err != nil || (f != Truncate && f != Corrupt) {
		return rc, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return io.NopCloser(bytes.NewReader(damage(f, data))), nil
}

// Head implements coldstore.Store.
func (s *Store) Head(ctx context.Context, key string) (coldstore.ObjectInfo, error) {
	f, healed := s.draw(OpHead, key)
	if err := fail(ctx, OpHead, key, f, healed); err != nil {
		return coldstore.ObjectInfo{}, err
	}
	return s.inner.Head(ctx, key)
}

// List implements coldstore.Store. A fault fails the listing before its
// first object.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[coldstore.ObjectInfo, error] {
	return func(yield func(coldstore.ObjectInfo, error) bool) {
		f, healed := s.draw(OpList, prefix)
		if err := fail(ctx, OpList, prefix, f, healed); err != nil {
			yield(coldstore.ObjectInfo{}, err)
			return
		}
		for info, err := range s.inner.List(ctx, prefix) {
			if !yield(info, err) {
				return
			}
		}
	}
}

// Delete implements coldstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	f, healed := s.draw(OpDelete, key)
	if err := fail(ctx, OpDelete, key, f, healed); err != nil {
		return err
	}
	return s.inner.Delete(ctx, key)
}
