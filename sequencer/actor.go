package sequencer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/internal/offset"
	"github.com/streamtier/durable-streams/internal/protocol"
)

// AppendRequest is one POST to a stream, already validated syntactically.
type AppendRequest struct {
	// ContentType of the request body; ignored for close-only requests.
	ContentType protocol.ContentType
	// Messages to append; empty for a close-only request.
	Messages [][]byte
	// Close closes the stream after the messages (atomically).
	Close     bool
	Producer  *protocol.Producer
	StreamSeq string // "" when absent
}

// Outcome says what an accepted append did.
type Outcome int

// Outcomes of an accepted append.
const (
	Appended  Outcome = iota // new data (or a close) was committed
	Duplicate                // idempotent retry of an already committed producer request
)

// AppendResult reports an accepted append.
type AppendResult struct {
	Outcome Outcome
	Tail    offset.Token
	// Start is the stream position of the append's first byte; Tail's
	// position minus Start is the number of bytes it added.
	Start  int64
	Closed bool
	// Producer state to echo (valid when the request had producer headers).
	Epoch, Seq int64
}

// op is a message to a stream's actor. Appends are applied as they are
// drained and answered once their batch is committed; the other ops
// (afterCommitOp) run after that commit, in mailbox order.
type op interface {
	// fail answers the op's caller with err without running it: the actor
	// stopped before it got to the op.
	fail(err error)
}

// afterCommitOp is an op that the actor runs once the appends drained
// before it are committed.
type afterCommitOp interface {
	op
	afterCommit(s *Stream)
}

type appendOp struct {
	req   *AppendRequest
	reply chan appendReply
}

func (o appendOp) fail(err error) { o.reply <- appendReply{err: err} }

type appendReply struct {
	res AppendResult
	err error
}

// forkPointOp asks a source stream where a fork at (tok, sub) starts.
type forkPointOp struct {
	tok   *offset.Token
	sub   int64
	reply chan forkPointReply
}

func (o forkPointOp) fail(err error) { o.reply <- forkPointReply{err: err} }

func (o forkPointOp) afterCommit(s *Stream) {
	base, prefix, err := s.forkPoint(o.tok, o.sub)
	o.reply <- forkPointReply{base: base, prefix: prefix, err: err}
}

type forkPointReply struct {
	base   hotlog.ForkBase
	prefix []hotlog.Message // materialized partial message, positions from base.Pos
	err    error
}

// Stream is an open stream: its actor goroutine (the only writer of its hot
// log) and the latest published Snapshot that readers use.
type Stream struct {
	id   int64
	path string
	reg  *Registry
	log  *hotlog.Log
	lg   *slog.Logger

	snap    atomic.Pointer[Snapshot]
	mailbox chan op
	done    chan struct{} // closed when the actor has exited for good

	actMu sync.Mutex
	act   int // actNew, actRunning or actParked (see start)

	// Registry bookkeeping, guarded by reg.mu.
	refs     int
	lastUsed time.Time
	closing  bool

	// Actor-owned state; only the actor goroutine touches these.
	meta      hotlog.Meta
	producers map[string]hotlog.Producer
	// prodUpd holds the producer states that the batch being processed
	// changes. It lives here, made on the first producer append and
	// cleared per batch, rather than in process's frame: a map literal
	// there puts its buckets on the stack, and a new actor's first batch
	// then grows its goroutine's stack (copying it) once more.
	prodUpd  map[string]hotlog.Producer
	undo     undoState // what a failed commit of that batch restores (checkpoint)
	segments []hotlog.Segment
	recent   []hotlog.Message
	recentSz int
	// sealTimer sends sealAgeOp{sealGen} at sealAt, when the open
	// segment is SealAge old; sealGen tells a timer stopped too late.
	sealTimer *time.Timer
	sealAt    time.Time
	sealGen   uint64
	stopOnce  sync.Once

	deleted, softDeleted bool
	// wb holds the batches durable in the journal that the hot log lacks,
	// and flushErr why the last write of them failed (see writebehind.go).
	wb       writeBehind
	flushErr error
	// frozen, while the stream is being handed off, refuses appends
	// (handoff.go).
	frozen error
}

// Snapshot returns the latest published view of the stream.
func (s *Stream) Snapshot() *Snapshot { return s.snap.Load() }

// ID returns the stream's internal id.
func (s *Stream) ID() int64 { return s.id }

// Actor goroutines. A stream's actor runs on a goroutine only while it
// has ops: once its mailbox is empty it parks, and the goroutine exits;
// the next op starts a new one. Most streams are idle most of the time
// (under create-64, each takes one append), and an idle goroutine is not
// free: the garbage collector scans its stack at every cycle and shrinks
// it, copying it. Invariants:
//
//  1. At most one goroutine runs the actor at a time: it is the one that
//     moved the state to actRunning (run, or wake from actParked), and
//     the actor-owned fields pass from one to the next through actMu.
//  2. No op waits in a parked actor's mailbox: senders queue first and
//     wake second, and park gives up under actMu when it finds an op.
//  3. Nothing starts a goroutine before the registry's start (the stream
//     may be reachable, e.g. by a checkpoint, while startActor still
//     sets it up) or after the actor exited (it stays actRunning).
//  4. Timers do not keep a goroutine: the seal by age is an op that a
//     timer sends (sealAgeOp).
const (
	actNew     = iota // start not called yet
	actRunning        // a goroutine runs the actor (or it exited)
	actParked         // no goroutine; the next op starts one
)

// mailboxSize is how many ops wait in an actor's mailbox before senders
// block. Blocked senders are still taken into the batch being drained,
// so this bounds memory per open stream (16 bytes a slot), not batching.
const mailboxSize = 32

// start starts the actor; the registry calls it once. A new stream's
// actor starts parked: most get their first op later or never, and a
// goroutine started for nothing grows and parks at once. Ops queued
// before start (invariant 3) wake it here.
func (s *Stream) start() {
	if s.reg.cfg.Rotation.Enabled && s.meta.Closed && s.meta.OpenSegMsgs > 0 {
		// A stream created closed, or closed before a crash, seals first.
		s.actMu.Lock()
		s.act = actRunning
		s.actMu.Unlock()
		go func() {
			s.sealByAge()
			s.loop()
		}()
		return
	}
	s.actMu.Lock()
	s.act = actParked
	s.actMu.Unlock()
	if len(s.mailbox) > 0 {
		s.wake()
	}
}

// wake starts a goroutine for a parked actor; senders call it after
// queuing an op (invariant 2).
func (s *Stream) wake() {
	s.actMu.Lock()
	parked := s.act == actParked
	if parked {
		s.act = actRunning
	}
	s.actMu.Unlock()
	if parked {
		go s.loop()
	}
}

// park lets the goroutine exit when no op is queued; it reports whether
// it must.
func (s *Stream) park() bool {
	s.actMu.Lock()
	defer s.actMu.Unlock()
	if len(s.mailbox) > 0 {
		return false
	}
	s.act = actParked
	return true
}

// loop runs the actor's ops until its mailbox is empty or it stops.
func (s *Stream) loop() {
	batchMax := s.reg.cfg.MaxBatch
	for {
		var first op
		select {
		case first = <-s.mailbox:
		default:
			if s.park() {
				return
			}
			continue
		}
		if _, ok := first.(stopOp); ok {
			s.exit()
			return
		}
		ops := []op{first}
		stop := false
	drain:
		for len(ops) < batchMax {
			select {
			case o := <-s.mailbox:
				if _, ok := o.(stopOp); ok {
					stop = true
					break drain
				}
				ops = append(ops, o)
			default:
				break drain
			}
		}
		s.process(ops)
		if stop {
			s.exit()
			return
		}
	}
}

// exit ends the actor for good after a stop: it fails what is still
// queued, writes what is unwritten and closes the hot log.
func (s *Stream) exit() {
	s.drainStopped()
	s.stopSealTimer()
	s.flushAtStop()
	s.compact()
	s.log.Close()
	close(s.done)
}

// stopOp asks the actor to exit after the ops queued before it.
type stopOp struct{}

func (stopOp) fail(error) {}

// drainStopped fails whatever is still queued after a stop.
func (s *Stream) drainStopped() {
	for {
		select {
		case o := <-s.mailbox:
			o.fail(errStopped)
		default:
			return
		}
	}
}

// send delivers op to the actor unless it has stopped or ctx ends.
func (s *Stream) send(ctx context.Context, o op) error {
	select {
	case <-s.done: // checked first: a stopped actor's mailbox still has room
		return s.goneErr()
	default:
	}
	select {
	case s.mailbox <- o:
		s.wake()
		return nil
	case <-s.done:
		return s.goneErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append validates and commits req; it returns after the commit is durable.
func (s *Stream) Append(ctx context.Context, req *AppendRequest) (AppendResult, error) {
	reply := make(chan appendReply, 1)
	if err := s.send(ctx, appendOp{req: req, reply: reply}); err != nil {
		return AppendResult{}, err
	}
	// Once queued, the outcome must be reported even if the client left:
	// the append may commit, so wait for it rather than ctx.
	select {
	case r := <-reply:
		return r.res, r.err
	case <-s.done:
		// The actor replies before it exits, so a reply may be waiting.
		select {
		case r := <-reply:
			return r.res, r.err
		default:
			return AppendResult{}, s.goneErr()
		}
	}
}

// goneErr explains why a stopped actor did not answer.
func (s *Stream) goneErr() error {
	if snap := s.Snapshot(); snap.Deleted {
		if snap.Soft {
			return errGone
		}
		return errNotFound
	}
	return errStopped
}

// publish builds and publishes a snapshot from the actor state and wakes
// everyone waiting on the previous one.
func (s *Stream) publish() {
	n := &Snapshot{
		ID:           s.id,
		ContentType:  s.meta.ContentType,
		Tail:         s.meta.Tail,
		Closed:       s.meta.Closed,
		Deleted:      s.deleted,
		Soft:         s.softDeleted,
		OpenSeg:      s.meta.OpenSeg,
		OpenSegStart: s.meta.OpenSegStart,
		Segments:     s.segments,
		Fork:         s.meta.Fork,
		recent:       s.recent,
		reg:          s.reg,
	}
	if old := s.snap.Swap(n); old != nil {
		old.supersede()
	}
}

// compact returns the hot log's free space, left there by trims for later
// appends to reuse, to the file system as the actor stops: an evicted
// stream is idle, so the copying is on no append's path. The files of a
// deleted stream are about to go, so they are left alone.
func (s *Stream) compact() {
	if s.deleted {
		return
	}
	if err := s.log.Compact(context.Background()); err != nil {
		s.lg.Warn("compact hot log", "id", s.id, "err", err)
	}
}

// stop asks the actor to exit after the queued operations and waits.
func (s *Stream) stop() {
	s.stopOnce.Do(func() {
		select {
		case s.mailbox <- stopOp{}:
			s.wake()
		case <-s.done:
		}
	})
	<-s.done
}
