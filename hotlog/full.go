package hotlog

import (
	"errors"
	"syscall"

	"modernc.org/sqlite"
)

// sqliteFull is SQLite's primary result code SQLITE_FULL: a write failed
// because the disk (or the database's size limit) is full.
const sqliteFull = 13

// IsFull reports whether err comes from a write that failed for lack of
// space: ENOSPC from the file system, or SQLITE_FULL, which is what SQLite
// makes of ENOSPC. Callers answer such failures differently from other
// storage errors because they end once space is freed.
func IsFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	// The driver reports the extended result code, whose low byte is the
	// primary one.
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteFull
}
