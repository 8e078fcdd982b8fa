package sequencer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamtier/durable-streams/catalog"
	"github.com/streamtier/durable-streams/hotlog"
	"github.com/streamtier/durable-streams/journal"
)

// The commit journal (package journal) makes every acknowledged change
// durable with one fsync shared by all streams; hot logs are written
// without syncs of their own (hotlog.Options.NoSync) and catch up from the
// journal after a crash.
//
// Crash safety of a change, in order:
//  1. its record is appended to the journal and durable (the actor waits);
//  2. it is applied to the actor's state in memory and the client is
//     answered;
//  3. later, with the batches after it, it is written to the hot log in
//     one transaction together with the last record's LSN
//     (meta.applied_lsn), unsynced (see writebehind.go).
//
// A checkpoint then:
//  1. asks every stream with unwritten batches to write them;
//  2. takes L, the highest LSN below which every record is written to its
//     hot log (records durable but unwritten hold it back), and the set
//     of hot logs changed since the last checkpoint;
//  3. fsyncs those hot logs (WAL, file and directory entry);
//  4. records L in the catalog (journal_nodes) with a synced commit,
//     which makes the catalog's unsynced commits before it durable too;
//  5. releases the journal files holding only records up to L.
//
// Recovery (at start, before any stream serves) replays the records after
// the catalog's checkpoint: a stream's creation rebuilds the stream in
// memory from the record, without a file (an unsynced new file may be
// missing or damaged; see writebehind.go, invariant 6), and a batch is
// added to that state or applied to a hot log whose applied_lsn is below
// it. The
// catalog's changes are redone first (replayCatalog in journalcatalog.go),
// and the catalog then says which streams exist: records of streams never
// entered (the create failed) or since deleted are skipped.

// JournalConfig configures the commit journal.
type JournalConfig struct {
	// Disabled turns the journal off: every hot log commit is synced by
	// itself, as before the journal.
	Disabled bool
	// Dir is where the journal lives (default <DataDir>/journal).
	Dir string
	// Node names this node's journal positions in a catalog that nodes
	// share (PostgreSQL); a catalog of one node (SQLite) ignores it.
	Node string
	// FileBytes, CheckpointBytes, CheckpointAge and MaxBytes bound the
	// journal's disk use, see journal.Options.
	FileBytes       int64
	CheckpointBytes int64
	CheckpointAge   time.Duration
	MaxBytes        int64
	// FlushBytes and FlushBatches bound what a stream keeps unwritten in
	// memory (see writebehind.go): its actor writes its hot log once this
	// many message bytes (default 256 KiB) or batches (default 128) are
	// waiting.
	FlushBytes   int64
	FlushBatches int
}

// streamJournal ties the registry to its commit journal.
type streamJournal struct {
	j   *journal.Journal
	dir string
	cat *catalog.Catalog
	reg *Registry
	cfg JournalConfig // with defaults

	// image is written out as the file of every new stream by its first
	// flush (see createHotLog).
	image *hotlog.Image

	mu           sync.Mutex
	checkpointed atomic.Uint64          // the position the last checkpoint recorded
	inflight     lsnSet                 // durable or queued records not yet written to their hot logs (a failed write's LSN is handed out again)
	dirty        map[int64]struct{}     // streams whose hot logs changed since the last checkpoint
	unflushed    map[int64]*Stream      // running actors with unwritten batches
	pending      map[int64]*writeBehind // unwritten batches of streams without a running actor: new streams, and actors that stopped unable to write

	// abandoned makes actors stop without writing anything, as in a
	// crash (tests).
	abandoned atomic.Bool

	ckMu sync.Mutex // serializes checkpoints

	closeOnce sync.Once
	closeErr  error
}

func openStreamJournal(r *Registry) (*streamJournal, error) {
	c := r.cfg.Journal
	dir := c.Dir
	if dir == "" {
		dir = filepath.Join(r.cfg.DataDir, "journal")
	}
	im, err := hotlog.NewImage(context.Background(), r.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(dir, journal.Options{FileBytes: c.FileBytes, CheckpointBytes: c.CheckpointBytes,
		CheckpointAge: c.CheckpointAge, MaxBytes: c.MaxBytes, Logger: r.lg, MaxRecordBytes: 1 << 30})
	if err != nil {
		return nil, err
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 256 << 10
	}
	if c.FlushBatches <= 0 {
		c.FlushBatches = 128
	}
	return &streamJournal{j: j, dir: dir, cat: r.cat, reg: r, cfg: c, image: im, inflight: newLSNSet(), dirty: map[int64]struct{}{},
		unflushed: map[int64]*Stream{}, pending: map[int64]*writeBehind{}}, nil
}

// write appends a record and waits until it is durable. The caller must
// then apply the change and call applied, or leave the record in flight
// (holding checkpoints back) if it cannot.
func (sj *streamJournal) write(kind journal.Kind, payload []byte) (uint64, error) {
	sj.mu.Lock()
	t, err := sj.j.Enqueue(kind, payload)
	if err == nil {
		sj.inflight.add(t.LSN)
	}
	sj.mu.Unlock()
	if err != nil {
		return 0, err
	}
	// Not the client's context: once queued, the outcome decides what the
	// actor's state is.
	if err := t.Wait(context.Background()); err != nil {
		// The journal has failed for good (see journal.Journal): nothing
		// after this record can be durable either, so it holds nothing
		// back.
		sj.mu.Lock()
		sj.done(t.LSN)
		sj.mu.Unlock()
		return 0, err
	}
	return t.LSN, nil
}

// applied records that a replayed record is written to stream id's hot
// log.
func (sj *streamJournal) applied(id int64) {
	sj.mu.Lock()
	sj.dirty[id] = struct{}{}
	sj.mu.Unlock()
}

// track notes that s has unwritten batches, for checkpoints to flush.
func (sj *streamJournal) track(s *Stream) {
	sj.mu.Lock()
	sj.unflushed[s.id] = s
	sj.mu.Unlock()
}

// flushed records that records lsns of s are written to its hot log (or
// will never be: the stream is gone).
func (sj *streamJournal) flushed(s *Stream, lsns []uint64) {
	sj.mu.Lock()
	for _, lsn := range lsns {
		sj.done(lsn)
	}
	sj.dirty[s.id] = struct{}{}
	if sj.unflushed[s.id] == s {
		delete(sj.unflushed, s.id)
	}
	sj.mu.Unlock()
}

// handOver keeps the unwritten batches of a stream whose actor stopped
// without writing them, for its next actor (their LSNs stay in flight).
func (sj *streamJournal) handOver(id int64, wb *writeBehind) {
	sj.mu.Lock()
	sj.pending[id] = wb
	delete(sj.unflushed, id)
	sj.mu.Unlock()
}

// done takes lsn out of flight. The caller holds sj.mu.
func (sj *streamJournal) done(lsn uint64) {
	sj.inflight.done(lsn)
}

// checkpoint makes every applied record durable outside the journal and
// releases the journal files that hold nothing else (see the steps above).
func (sj *streamJournal) checkpoint(ctx context.Context) error {
	return sj.checkpointPast(ctx, math.MaxUint64)
}

// checkpointPast runs a checkpoint unless one that completed while this
// call waited for its turn already recorded a position at or past lsn
// (math.MaxUint64: always run): handoffs that each need the journal
// checkpointed past their stream's last record share checkpoints.
func (sj *streamJournal) checkpointPast(ctx context.Context, lsn uint64) error {
	sj.ckMu.Lock()
	defer sj.ckMu.Unlock()
	if lsn != math.MaxUint64 && sj.checkpointed.Load() >= lsn {
		return nil
	}
	sj.flushAll(ctx)
	sj.mu.Lock()
	upto := sj.j.DurableLSN()
	if lsn, ok := sj.inflight.min(); ok {
		upto = min(upto, lsn-1)
	}
	dirty := sj.dirty
	sj.dirty = map[int64]struct{}{}
	sj.mu.Unlock()
	for id := range dirty {
		err := hotlog.SyncFiles(sj.reg.StreamPath(id))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			sj.mu.Lock()
			for id := range dirty {
				sj.dirty[id] = struct{}{}
			}
			sj.mu.Unlock()
			return fmt.Errorf("journal checkpoint: %w", err)
		}
	}
	if err := sj.cat.SetJournalCheckpoint(ctx, sj.reg.cfg.Journal.Node, upto); err != nil {
		return fmt.Errorf("journal checkpoint: %w", err)
	}
	sj.checkpointed.Store(upto)
	return sj.j.Release(upto)
}

// checkpointer runs checkpoints when the journal's size or age asks for
// them.
func (sj *streamJournal) checkpointer() {
	defer sj.reg.bg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-sj.reg.closing:
			return
		case <-sj.j.CheckpointWanted():
		case <-t.C:
			if !sj.j.NeedsCheckpoint() {
				continue
			}
		}
		if err := sj.checkpoint(context.Background()); err != nil {
			sj.reg.lg.Warn("journal checkpoint failed", "err", err)
		}
	}
}

// close checkpoints everything (the actors have stopped) and closes the
// journal; calls after the first return the first's outcome.
func (sj *streamJournal) close(ctx context.Context) error {
	sj.closeOnce.Do(func() {
		err := sj.checkpoint(ctx)
		sj.closeErr = errors.Join(err, sj.j.Close())
	})
	return sj.closeErr
}

// commitBatch makes b durable in the journal and takes it for a later
// write to the hot log (see writebehind.go). A stream whose hot log
// cannot take data refuses new batches: they would pile up in memory
// behind the ones it cannot write.
func (s *Stream) commitBatch(b *hotlog.Batch) error {
	sj := s.reg.jnl
	if sj == nil {
		return s.log.Commit(context.Background(), b)
	}
	if s.flushErr != nil && s.flush() != nil {
		return s.flushErr
	}
	rec := streamBatch{id: s.id, batch: *b}
	lsn, err := sj.write(journal.KindStreamBatch, rec.encode())
	if err != nil {
		return err
	}
	b.Meta.AppliedLSN = lsn
	s.meta.AppliedLSN = lsn
	s.commitLater(b, lsn)
	return nil
}

// createHotLog creates the hot log of a new stream. With the journal, a
// new stream is one journal record and unwritten state for its first
// actor; its file is written from the image by the actor's first flush.
// Should the catalog entry not follow, abandonCreate undoes this.
func (r *Registry) createHotLog(ctx context.Context, row catalog.Stream, meta hotlog.Meta, msgs []hotlog.Message) error {
	path := r.StreamPath(row.ID)
	sj := r.jnl
	if sj == nil {
		return hotlog.Create(ctx, path, meta, msgs)
	}
	rec := streamCreate{row: row, meta: meta, msgs: msgs}
	lsn, err := sj.write(journal.KindStreamCreate, rec.encode())
	if err != nil {
		return err
	}
	meta.AppliedLSN = lsn
	wb := &writeBehind{fresh: true}
	wb.add(&hotlog.Batch{Messages: msgs, Meta: meta}, lsn)
	sj.mu.Lock()
	sj.pending[row.ID] = wb
	sj.mu.Unlock()
	return nil
}

// abandonCreate removes what a stream whose catalog entry failed left.
func (r *Registry) abandonCreate(id int64) {
	r.dropPending([]int64{id}) // without a catalog entry, a replay skips its record
	_ = hotlog.Remove(r.StreamPath(id))
}

// openHotLog opens stream id's hot log for a new actor, with the state
// its file lacks: a new stream's file is not written yet, and an actor
// may have stopped unable to write its last batches (see writebehind.go).
func (r *Registry) openHotLog(ctx context.Context, id int64) (*hotlog.Log, hotlog.Meta, map[string]hotlog.Producer, []hotlog.Segment, *writeBehind, error) {
	var wb *writeBehind
	if sj := r.jnl; sj != nil {
		sj.mu.Lock()
		wb = sj.pending[id]
		delete(sj.pending, id)
		sj.mu.Unlock()
	}
	var meta hotlog.Meta
	prods := map[string]hotlog.Producer{}
	if wb != nil && wb.fresh {
		wb.overlay(&meta, prods, nil)
		return r.jnl.image.OpenNew(r.StreamPath(id), r.hotlogOptions()), meta, prods, nil, wb, nil
	}
	l, err := hotlog.Open(ctx, r.StreamPath(id), r.hotlogOptions())
	if err != nil {
		r.pendingBack(id, wb)
		return nil, meta, nil, nil, nil, err
	}
	meta, ps, segs, err := l.Load(ctx)
	if err != nil {
		l.Close()
		r.pendingBack(id, wb)
		return nil, meta, nil, nil, nil, err
	}
	for _, p := range ps {
		prods[p.ID] = p
	}
	if wb != nil {
		segs = wb.overlay(&meta, prods, segs)
	}
	return l, meta, prods, segs, wb, nil
}

// dropPending forgets the unwritten state of streams deleted for real
// that have no running actor: the replay skips their records.
func (r *Registry) dropPending(ids []int64) {
	sj := r.jnl
	if sj == nil {
		return
	}
	sj.mu.Lock()
	defer sj.mu.Unlock()
	for _, id := range ids {
		if wb := sj.pending[id]; wb != nil {
			delete(sj.pending, id)
			for _, lsn := range wb.lsns {
				sj.done(lsn)
			}
		}
	}
}

// pendingBack returns unwritten state an actor failed to start with.
func (r *Registry) pendingBack(id int64, wb *writeBehind) {
	if wb != nil {
		r.jnl.handOver(id, wb)
	}
}

// hotlogOptions are the options actors open hot logs with.
func (r *Registry) hotlogOptions() hotlog.Options {
	return hotlog.Options{NoSync: r.jnl != nil}
}

// recoverJournal replays the journal past the catalog's checkpoint into
// the hot logs, makes them durable and checkpoints, before any actor
// starts.
func (sj *streamJournal) recover(ctx context.Context) error {
	from, err := sj.cat.JournalCheckpoint(ctx, sj.reg.cfg.Journal.Node)
	if err != nil {
		return err
	}
	rp := &replayer{sj: sj, ctx: ctx, live: map[int64]bool{}, logs: map[int64]*replayLog{}, aborted: map[uint64]bool{},
		fresh: map[int64]*writeBehind{}, sameBoot: sj.sameBoot()}
	start := time.Now()
	err = sj.j.Replay(from, rp.collectAborts)
	catalogN := 0
	if err == nil {
		catalogN, err = sj.replayCatalog(ctx, rp.aborted)
	}
	if err == nil {
		err = sj.j.Replay(from, rp.apply)
	}
	err = errors.Join(err, rp.closeAll())
	if err != nil {
		return fmt.Errorf("journal recovery: %w", err)
	}
	// Streams rebuilt in memory keep their records in flight, so this
	// checkpoint stays below them; they become pending only after it, so
	// that it does not write their files (the first checkpoint after the
	// start does, in the background: invariant 6 of writebehind.go).
	sj.mu.Lock()
	for _, wb := range rp.fresh {
		for _, lsn := range wb.lsns {
			sj.inflight.add(lsn)
		}
	}
	sj.mu.Unlock()
	if err := sj.checkpoint(ctx); err != nil {
		return err
	}
	sj.mu.Lock()
	for id, wb := range rp.fresh {
		wb.orphan = true
		sj.pending[id] = wb
	}
	sj.mu.Unlock()
	sj.recordBoot()
	if rp.records > 0 {
		sj.reg.lg.Info("journal replayed", "from_lsn", from, "records", rp.records, "applied", rp.appliedN,
			"created", rp.created, "in_memory", len(rp.fresh), "streams", len(rp.live), "catalog_changes", catalogN,
			"took", time.Since(start))
	}
	return nil
}

// replayer applies journal records during recovery.
type replayer struct {
	sj      *streamJournal
	ctx     context.Context
	live    map[int64]bool // stream id -> has a catalog row
	logs    map[int64]*replayLog
	aborted map[uint64]bool // records voided by a stream-abort record
	// fresh holds the streams whose creation is in the tail and that have
	// no file that has it: their state is rebuilt in memory from their
	// records, as their actor had it, and written only once it is due
	// (see writeFresh).
	fresh map[int64]*writeBehind
	// sameBoot: the machine has not restarted since the last run, so
	// nothing written then was lost, synced or not (see sameBoot).
	sameBoot bool

	records, appliedN, created int
}

type replayLog struct {
	id      int64
	log     *hotlog.Log
	applied uint64 // including wb
	// wb gathers consecutive batch records for one transaction: replaying
	// a journal tail costs a transaction per stream, not per record.
	wb writeBehind
}

// replayWriteBytes bounds the messages a replayed stream gathers before
// they are written.
const replayWriteBytes = 4 << 20

// write writes what l has gathered.
func (rp *replayer) write(l *replayLog) error {
	if l.wb.empty() {
		return nil
	}
	if err := l.log.Commit(rp.ctx, &l.wb.batch); err != nil {
		return fmt.Errorf("lsns %d-%d: %w", l.wb.lsns[0], l.wb.lsns[len(l.wb.lsns)-1], err)
	}
	l.wb = writeBehind{}
	rp.sj.applied(l.id)
	return nil
}

// exists reports whether stream id has a catalog row, live or
// soft-deleted.
func (rp *replayer) exists(id int64) (bool, error) {
	if v, ok := rp.live[id]; ok {
		return v, nil
	}
	_, err := rp.sj.cat.GetByID(rp.ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		rp.live[id] = false
	case err != nil:
		return false, err
	default:
		rp.live[id] = true
	}
	return rp.live[id], nil
}

// open returns stream id's hot log, opened for replay.
func (rp *replayer) open(id int64) (*replayLog, error) {
	if l := rp.logs[id]; l != nil {
		return l, nil
	}
	// Bounded: close the logs opened so far rather than hold thousands.
	if len(rp.logs) >= 256 {
		if err := rp.closeAll(); err != nil {
			return nil, err
		}
	}
	l, err := hotlog.Open(rp.ctx, rp.sj.reg.StreamPath(id), replayOptions)
	if err != nil {
		return nil, err
	}
	meta, _, _, err := l.Load(rp.ctx)
	if err != nil {
		l.Close()
		return nil, err
	}
	rl := &replayLog{id: id, log: l, applied: meta.AppliedLSN}
	rp.logs[id] = rl
	return rl, nil
}

// replayOptions are the options replay opens hot logs with.
var replayOptions = hotlog.Options{NoSync: true, ReadConns: 1}

// writeFresh writes the file of stream id, rebuilt in memory so far, once
// its state is due as an actor's would be (a seal, FlushBytes,
// FlushBatches): from the image, as the actor's first flush does. The
// stream's later records then go to the file.
func (rp *replayer) writeFresh(id int64) error {
	wb := rp.fresh[id]
	if !wb.due(&rp.sj.cfg) {
		return nil
	}
	if len(rp.logs) >= 256 {
		if err := rp.closeAll(); err != nil {
			return err
		}
	}
	l := rp.sj.image.OpenNew(rp.sj.reg.StreamPath(id), replayOptions)
	if err := l.Commit(rp.ctx, &wb.batch); err != nil {
		l.Close()
		return fmt.Errorf("stream %d: lsns %d-%d: %w", id, wb.lsns[0], wb.lsns[len(wb.lsns)-1], err)
	}
	delete(rp.fresh, id)
	rp.logs[id] = &replayLog{id: id, log: l, applied: wb.lsns[len(wb.lsns)-1]}
	rp.sj.applied(id)
	return nil
}

func (rp *replayer) closeAll() error {
	var errs []error
	for id, l := range rp.logs {
		errs = append(errs, rp.write(l), l.log.Close())
		delete(rp.logs, id)
	}
	return errors.Join(errs...)
}

// collectAborts is the first pass: an abort follows the record it voids.
func (rp *replayer) collectAborts(rec journal.Record) error {
	if rec.Kind != journal.KindStreamAbort {
		return nil
	}
	d := &decoder{b: rec.Payload}
	d.version()
	d.int() // stream id
	lsn := d.uint()
	if err := d.done("stream abort"); err != nil {
		return fmt.Errorf("lsn %d: %w", rec.LSN, err)
	}
	rp.aborted[lsn] = true
	return nil
}

func (rp *replayer) apply(rec journal.Record) error {
	rp.records++
	if rp.aborted[rec.LSN] {
		return nil
	}
	switch rec.Kind {
	case journal.KindStreamAbort, journal.KindStreamDelete, journal.KindStreamTouch:
		// Nothing for a hot log; the catalog's were redone first
		// (replayCatalog).
	case journal.KindStreamCreate:
		c, err := decodeStreamCreate(rec.Payload)
		if err != nil {
			return fmt.Errorf("lsn %d: %w", rec.LSN, err)
		}
		id := c.row.ID
		ok, err := rp.exists(id)
		if err != nil || !ok {
			return err
		}
		// Never checkpointed, so made without syncs: after a crash of the
		// machine whatever is on disk may be partial, and everything
		// since is in the journal. After a crash of the process alone
		// the file is whole, and has the record if its actor started.
		if rp.sameBoot {
			if l, err := rp.open(id); err == nil && l.applied >= rec.LSN {
				return nil
			}
		}
		if l := rp.logs[id]; l != nil {
			l.log.Close()
			delete(rp.logs, id)
		}
		// Whatever file there is lacks the record: it goes, and the
		// stream is rebuilt in memory, as its actor had it before its
		// first flush.
		if err := hotlog.Remove(rp.sj.reg.StreamPath(id)); err != nil {
			return fmt.Errorf("lsn %d: %w", rec.LSN, err)
		}
		c.meta.AppliedLSN = rec.LSN
		wb := &writeBehind{fresh: true}
		wb.add(&hotlog.Batch{Messages: c.msgs, Meta: c.meta}, rec.LSN)
		rp.fresh[id] = wb
		rp.created++
		if err := rp.writeFresh(id); err != nil {
			return fmt.Errorf("lsn %d: %w", rec.LSN, err)
		}
	case journal.KindStreamBatch:
		// The stream id first: after a clean stop or a process crash
		// (not of the machine) nearly every record is applied already,
		// and decoding its messages would be wasted.
		d := &decoder{b: rec.Payload}
		d.version()
		id := d.int()
		if d.err != nil {
			return fmt.Errorf("lsn %d: %w", rec.LSN, d.err)
		}
		ok, err := rp.exists(id)
		if err != nil || !ok {
			return err
		}
		if wb := rp.fresh[id]; wb != nil {
			b, err := decodeStreamBatch(rec.Payload)
			if err != nil {
				return fmt.Errorf("lsn %d: %w", rec.LSN, err)
			}
			b.batch.Meta.AppliedLSN = rec.LSN
			wb.add(&b.batch, rec.LSN)
			rp.appliedN++
			if err := rp.writeFresh(id); err != nil {
				return fmt.Errorf("lsn %d: %w", rec.LSN, err)
			}
			return nil
		}
		l, err := rp.open(id)
		if err != nil {
			return fmt.Errorf("lsn %d: stream %d: %w", rec.LSN, id, err)
		}
		if l.applied >= rec.LSN {
			return nil
		}
		b, err := decodeStreamBatch(rec.Payload)
		if err != nil {
			return fmt.Errorf("lsn %d: %w", rec.LSN, err)
		}
		b.batch.Meta.AppliedLSN = rec.LSN
		l.wb.add(&b.batch, rec.LSN)
		l.applied = rec.LSN
		rp.appliedN++
		// A seal is written at once: a second one would replace it.
		if l.wb.batch.Seal != nil || l.wb.bytes >= replayWriteBytes {
			return rp.write(l)
		}
	default:
		return fmt.Errorf("lsn %d: unexpected record kind %v", rec.LSN, rec.Kind)
	}
	return nil
}

// bootIDPath is where Linux names the running boot; it changes with every
// start of the machine.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// bootFile is the file in the journal directory that records the boot the
// server last ran in.
func (sj *streamJournal) bootFile() string { return filepath.Join(sj.dir, "boot_id") }

// sameBoot reports whether the server last ran in the running boot of the
// machine: then only the process crashed (or stopped), the kernel kept
// every write, synced or not, and a file the journal would otherwise
// rebuild from scratch is whole. Without a boot id (not Linux) it reports
// false, which is always safe.
func (sj *streamJournal) sameBoot() bool {
	cur, err := os.ReadFile(bootIDPath)
	if err != nil || len(cur) == 0 {
		return false
	}
	last, err := os.ReadFile(sj.bootFile())
	return err == nil && string(last) == string(cur)
}

// recordBoot notes the running boot for the next start. It needs no sync:
// after a crash of the machine the boot differs whatever the file holds.
func (sj *streamJournal) recordBoot() {
	cur, err := os.ReadFile(bootIDPath)
	if err != nil {
		return
	}
	if err := os.WriteFile(sj.bootFile(), cur, 0o644); err != nil {
		sj.reg.lg.Warn("journal: record boot id", "err", err)
	}
}
