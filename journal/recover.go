package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// scanResult is what reading one file found.
type scanResult struct {
	last  uint64 // LSN of its last intact record (first-1 if none)
	valid int64  // bytes up to the end of that record
	torn  bool   // bytes follow that are not an intact next record
}

// scanFile reads the file holding records from first on, checking every
// record, and calls fn (unless nil) with those past after. fn's payload is
// only valid during the call.
func (j *Journal) scanFile(name string, first, after uint64, fn func(Record) error) (scanResult, error) {
	res := scanResult{last: first - 1}
	f, err := j.fs.Open(name)
	if err != nil {
		return res, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return res, err
	}
	// Sized to the file: recovery may scan many small files.
	r := bufio.NewReaderSize(f, int(min(size, 256<<10)))
	var hdr [headerSize]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				res.torn = res.valid < size
				return res, nil
			}
			return res, err
		}
		h := decodeHeader(hdr[:])
		if h.lsn != res.last+1 || h.kind == 0 || h.kind > maxKind || int64(h.n) > int64(j.opts.MaxRecordBytes) ||
			res.valid+headerSize+int64(h.n) > size {
			res.torn = true
			return res, nil
		}
		if cap(payload) < int(h.n) {
			payload = make([]byte, h.n)
		}
		payload = payload[:h.n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return res, err // the size was checked: a real read error
		}
		if !h.valid(hdr[:], payload) {
			res.torn = true
			return res, nil
		}
		if fn != nil && h.lsn > after {
			if err := fn(Record{LSN: h.lsn, Kind: h.kind, Payload: payload}); err != nil {
				return res, err
			}
		}
		res.last = h.lsn
		res.valid += headerSize + int64(h.n)
	}
}

// recover finds the journal's files, checks every record and cuts off a
// torn tail, so that the writer can continue right after the last intact
// record.
func (j *Journal) recover() error {
	if err := j.fs.MkdirAll(j.dir); err != nil {
		return err
	}
	names, err := j.fs.List(j.dir)
	if err != nil {
		return err
	}
	var files []file
	for _, n := range names {
		if first, ok := parseFileName(n); ok {
			files = append(files, file{first: first})
		}
	}
	j.next = 1
	for i := 0; i < len(files); i++ {
		f := &files[i]
		if i > 0 && f.first != j.next {
			// A gap: the previous file ended early. Only empty or torn
			// files may follow a torn end (a crash during startFile);
			// anything intact there means lost records in between.
			if err := j.dropAfter(files, i); err != nil {
				return err
			}
			files = files[:i]
			break
		}
		path := filepath.Join(j.dir, fileName(f.first))
		res, err := j.scanFile(path, f.first, 0, nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		f.size = res.valid
		j.next = res.last + 1
		if res.torn {
			// Step 1: cut the torn tail off, durably, so that it can never
			// be mistaken for records after the ones about to be written.
			if err := j.truncate(path, res.valid); err != nil {
				return err
			}
			j.lg.Warn("journal: discarded a torn tail", "file", path, "after_lsn", res.last)
			if err := j.dropAfter(files, i+1); err != nil {
				return err
			}
			files = files[:i+1]
			break
		}
	}
	j.durable = j.next - 1
	j.released = 0
	// Step 2: the file the writer continues in is a new one (startFile in
	// Open), so an old file is never written again.
	for _, f := range files {
		j.total += f.size
	}
	j.files = files
	return nil
}

// dropAfter removes files[i:], which follow the end of the log, after
// checking that none holds an intact record.
func (j *Journal) dropAfter(files []file, i int) error {
	if i >= len(files) {
		return nil
	}
	for _, f := range files[i:] {
		path := filepath.Join(j.dir, fileName(f.first))
		res, err := j.scanFile(path, f.first, 0, nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if res.last >= f.first {
			return fmt.Errorf("%w: %s holds records from %d on, but the log ends at %d", ErrCorrupt, path, f.first, j.next-1)
		}
	}
	for _, f := range files[i:] {
		if err := j.fs.Remove(filepath.Join(j.dir, fileName(f.first))); err != nil {
			return err
		}
	}
	return j.fs.SyncDir(j.dir)
}

func (j *Journal) truncate(path string, size int64) error {
	f, err := j.fs.OpenReadWrite(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Replay calls fn, in LSN order, with every durable record past after
// that the journal still holds (those up to the last Release may be gone).
// It is meant for recovery, before new records are appended, and for
// shipping records to a replica. fn's Payload is only valid during the
// call. An error from fn stops the replay and is returned.
func (j *Journal) Replay(after uint64, fn func(Record) error) error {
	j.mu.Lock()
	files := append([]file(nil), j.files...)
	limit := j.durable
	j.mu.Unlock()
	for i, f := range files {
		if i+1 < len(files) && files[i+1].first <= after+1 {
			continue // every record in f is at or before after
		}
		if f.first > limit {
			break
		}
		path := filepath.Join(j.dir, fileName(f.first))
		_, err := j.scanFile(path, f.first, after, func(r Record) error {
			if r.LSN > limit {
				return errStopReplay
			}
			return fn(r)
		})
		if errors.Is(err, errStopReplay) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal: replay %s: %w", path, err)
		}
	}
	return nil
}

var errStopReplay = errors.New("stop replay")
