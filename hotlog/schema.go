package hotlog

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/streamtier/durable-streams/internal/memdb"
)

// schemaVersion is stored in PRAGMA user_version. Open refuses files with a
// newer version because it cannot know what an older binary would corrupt,
// and brings files of older versions up to date (see upgrade).
//
//	1 the first schema
//	2 meta.applied_lsn: the commit journal position the file has applied
const schemaVersion = 2

// schema is executed once by Create. "end" is quoted because END is an SQL
// keyword.
const schema = `
CREATE TABLE meta (
	id              INTEGER PRIMARY KEY CHECK (id = 1),
	stream_id       INTEGER NOT NULL,
	content_type    TEXT    NOT NULL,
	created_at      INTEGER,
	tail            INTEGER NOT NULL,
	open_seg        INTEGER NOT NULL,
	open_seg_start  INTEGER NOT NULL,
	open_seg_msgs   INTEGER NOT NULL,
	open_seg_bytes  INTEGER NOT NULL,
	open_seg_since  INTEGER,
	closed          INTEGER NOT NULL,
	closed_by_id    TEXT,
	closed_by_epoch INTEGER,
	closed_by_seq   INTEGER,
	stream_seq      TEXT    NOT NULL,
	fork_parent     INTEGER,
	fork_pos        INTEGER,
	fork_seg        INTEGER,
	fork_seg_start  INTEGER,
	fork_shared     INTEGER,
	applied_lsn     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
	pos   INTEGER PRIMARY KEY,
	seg   INTEGER NOT NULL,
	flags INTEGER NOT NULL,
	data  BLOB    NOT NULL
);
CREATE TABLE producers (
	id       TEXT    PRIMARY KEY,
	epoch    INTEGER NOT NULL,
	last_seq INTEGER NOT NULL,
	updated  INTEGER NOT NULL
);
CREATE TABLE segments (
	seg        INTEGER PRIMARY KEY,
	start      INTEGER NOT NULL,
	"end"      INTEGER NOT NULL,
	messages   INTEGER NOT NULL,
	bytes      INTEGER NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('sealed', 'uploaded')),
	object_key TEXT    NOT NULL DEFAULT '',
	checksum   INTEGER NOT NULL DEFAULT 0,
	sealed_at  INTEGER
);
`

// flagBatchEnd marks the last message of an append request in messages.flags.
const flagBatchEnd = 1

// metaColumns lists the meta columns in the order used by metaArgs and
// scanMeta, so the INSERT, UPDATE and SELECT statements cannot drift apart.
var metaColumns = []string{
	"stream_id", "content_type", "created_at", "tail",
	"open_seg", "open_seg_start", "open_seg_msgs", "open_seg_bytes", "open_seg_since",
	"closed", "closed_by_id", "closed_by_epoch", "closed_by_seq", "stream_seq",
	"fork_parent", "fork_pos", "fork_seg", "fork_seg_start", "fork_shared",
	"applied_lsn",
}

func metaInsertSQL() string {
	return "INSERT INTO meta (id, " + strings.Join(metaColumns, ", ") + ") VALUES (1" +
		strings.Repeat(", ?", len(metaColumns)) + ")"
}

func metaUpdateSQL() string {
	return "UPDATE meta SET " + strings.Join(metaColumns, " = ?, ") + " = ? WHERE id = 1"
}

func metaSelectSQL() string {
	return "SELECT " + strings.Join(metaColumns, ", ") + " FROM meta WHERE id = 1"
}

// rowsPerInsert is how many messages one multi-row INSERT writes (see
// Log.insertMessages): enough to make the per-statement cost small, and
// few enough arguments (4 per row) to stay far below SQLite's limit.
const rowsPerInsert = 32

// insertMessagesSQL returns an INSERT of n message rows.
func insertMessagesSQL(n int) string {
	return "INSERT INTO messages (pos, seg, flags, data) VALUES " +
		strings.Repeat("(?, ?, ?, ?), ", n-1) + "(?, ?, ?, ?)"
}

const (
	insertMessageSQL  = "INSERT INTO messages (pos, seg, flags, data) VALUES (?, ?, ?, ?)"
	upsertProducerSQL = `INSERT INTO producers (id, epoch, last_seq, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, last_seq = excluded.last_seq, updated = excluded.updated`
	insertSegmentSQL = `INSERT INTO segments (seg, start, "end", messages, bytes, state, object_key, checksum, sealed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	selectSegmentsSQL = `SELECT seg, start, "end", messages, bytes, state, object_key, checksum, sealed_at
		FROM segments ORDER BY seg`
	selectProducersSQL = "SELECT id, epoch, last_seq, updated FROM producers ORDER BY id"

	// readSQL selects the messages from the one containing ?1 up to,
	// excluding, ?2; see readStart. The data of a message is selected only
	// while the positions covered so far fit the byte budget ?3 (or for the
	// first message, which is always returned): otherwise the first message
	// past the budget, possibly megabytes, would be read only to be thrown
	// away. length(data) is answered from the record header without reading
	// overflow pages. Positions overstate the bytes read when trimmed
	// segments leave gaps, so the budget test here is conservative; Read
	// fetches any message it left out that does fit.
	readSQL = `SELECT pos, seg, flags, length(data),
			CASE WHEN pos + length(data) - ` + readStart + ` <= ?3 OR pos = ` + readStart + ` THEN data END
		FROM messages
		WHERE pos >= ` + readStart + ` AND pos < ?2
		ORDER BY pos`

	// readStart is the position of the message containing ?1, or ?1 if
	// there is none. Only the single nearest row at or below ?1 is looked
	// at, so this stays O(log n) even when that row ends before ?1 because
	// a segment was trimmed. SQLite evaluates this uncorrelated subquery
	// once per place it appears. The inner query must take length(data)
	// itself: only a length() applied directly to the column is answered
	// from the record header, and selecting data there would read (and
	// copy) the whole first message once per evaluation, three times per
	// read.
	readStart = `coalesce((SELECT pos FROM (SELECT pos, length(data) AS n FROM messages WHERE pos <= ?1 ORDER BY pos DESC LIMIT 1)
		WHERE pos + n > ?1), ?1)`

	// deleteSegmentSQL deletes the messages of sealed segment ?1 by their
	// position range, which the primary key serves: a segment is exactly
	// the messages in [start, end). An index on seg would serve it too,
	// but would cost every commit a b-tree insert and one more page
	// written, checksummed and synced; files made by earlier versions
	// have one, which Open drops.
	deleteSegmentSQL = `DELETE FROM messages
		WHERE pos >= (SELECT start FROM segments WHERE seg = ?1) AND pos < (SELECT "end" FROM segments WHERE seg = ?1)`

	readDataSQL    = "SELECT data FROM messages WHERE pos = ?"
	readSegmentSQL = "SELECT pos, seg, flags, data FROM messages WHERE seg = ? ORDER BY pos"
)

// busyTimeoutMillis bounds how long a connection waits for a lock.
const busyTimeoutMillis = 10000

// pragmas apply to every connection: database/sql may open a new
// connection at any time, and only the DSN reaches all of them.
// synchronous=FULL is the durability promise (an acknowledged commit
// survives power loss); journal_size_limit keeps a WAL that grew during a
// burst of large appends from staying large forever. journal_mode is
// persistent and set by Create; repeating it here is a no-op that makes
// sure no connection ever writes through a rollback journal.
var pragmas = []string{
	fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis),
	"foreign_keys(OFF)",
	"journal_size_limit(67108864)",
}

// syncLevel is how much a connection syncs: FULL makes every commit
// survive power loss by itself; NORMAL (WAL mode) keeps the file
// consistent through a crash but leaves the latest commits to a commit
// journal that covers them (Options.NoSync); OFF, for the first
// transaction of a file whose creation such a journal covers, syncs
// nothing.
type syncLevel string

const (
	syncFull   syncLevel = "FULL"
	syncNormal syncLevel = "NORMAL"
	syncOff    syncLevel = "OFF"
)

// createPragmas set up a new, still empty file, in this order: the page
// size and auto_vacuum can only change before the first table exists.
//
// Pages of 16 KiB instead of the default 4 KiB read large messages, which
// are chains of overflow pages, with a quarter of the page lookups and
// reads, at the price of writing larger (but as many) pages per commit.
//
// The first transaction writes the file without any journal: nothing
// refers to the file until Create returns (the catalog row comes after),
// so a crash in the middle leaves only an unreferenced file, and skipping
// the WAL spares a new stream a WAL and shared-memory file created,
// synced and deleted again. Create switches the file to WAL mode, for
// good, right after.
var createPragmas = []string{
	"PRAGMA page_size = 16384",
	"PRAGMA auto_vacuum = INCREMENTAL",
	"PRAGMA journal_mode = OFF",
}

// readMmapBytes bounds how much of the database file a read connection
// maps into memory. Reading a large message through the map instead of
// read(2) calls (one per 16 KiB overflow page) takes catch-up reads from
// about 0.9 to about 1.5 GB/s (BenchmarkReadChunk). It costs address space
// only: SQLite maps no more than the file, the mapped pages are the page
// cache's (they show in the process's RSS as file-backed, reclaimable
// memory), and SQLite never writes through the map. Pages past the bound,
// and pages whose latest version is in the WAL, are read as before. The
// writer maps nothing, so the file can still grow and shrink freely.
const readMmapBytes = 1 << 30

// dsnMode selects how a connection opens the file.
type dsnMode int

const (
	dsnCreate dsnMode = iota // create the file; createPragmas follow
	dsnWrite                 // open an existing file for writing
	dsnRead                  // open an existing file, refusing writes
)

// dsn returns the modernc.org/sqlite data source name for path. The path
// travels as a file: URI so that mode=rw can keep a vanished file from
// being silently recreated empty; it is escaped so that '?', '#' and '%'
// in directory names survive.
func dsn(path string, mode dsnMode, sync syncLevel) (string, error) {
	q := url.Values{}
	switch mode {
	case dsnCreate:
		q.Set("mode", "rwc")
	case dsnWrite:
		q.Set("mode", "rw")
		q.Set("_txlock", "immediate")
	case dsnRead:
		q.Set("mode", "rw")
		// Applied by the driver after every _pragma.
		q.Set("_query_only", "1")
		q.Add("_pragma", fmt.Sprintf("mmap_size(%d)", readMmapBytes))
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Add("_pragma", "synchronous("+string(sync)+")")
	// An in-memory database keeps its journal in memory; WAL needs a file.
	if mode != dsnCreate && !memdb.Is(path) {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	return memdb.URI(path, q)
}

// millis converts t for storage; the zero time is stored as NULL so that it
// round-trips exactly.
func millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

func nullInt(v int64, valid bool) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: valid} }

// metaArgs returns m as arguments in metaColumns order.
func metaArgs(m *Meta) []any {
	closedBy := m.ClosedBy != nil
	var cb ProducerKey
	if closedBy {
		cb = *m.ClosedBy
	}
	fork := m.Fork != nil
	var f ForkBase
	if fork {
		f = *m.Fork
	}
	return []any{
		m.StreamID, m.ContentType, millis(m.CreatedAt), m.Tail,
		m.OpenSeg, m.OpenSegStart, m.OpenSegMsgs, m.OpenSegBytes, millis(m.OpenSegSince),
		m.Closed, sql.NullString{String: cb.ID, Valid: closedBy}, nullInt(cb.Epoch, closedBy), nullInt(cb.Seq, closedBy), m.StreamSeq,
		nullInt(f.ParentID, fork), nullInt(f.Pos, fork), nullInt(f.Seg, fork), nullInt(f.SegStart, fork),
		sql.NullBool{Bool: f.Shared, Valid: fork},
		int64(m.AppliedLSN),
	}
}

// scanMeta scans a row selected by metaSelectSQL.
func scanMeta(row *sql.Row) (Meta, error) {
	var (
		m                              Meta
		created, since                 sql.NullInt64
		cbID                           sql.NullString
		cbEpoch, cbSeq                 sql.NullInt64
		fParent, fPos, fSeg, fSegStart sql.NullInt64
		fShared                        sql.NullBool
		applied                        int64
	)
	err := row.Scan(&m.StreamID, &m.ContentType, &created, &m.Tail,
		&m.OpenSeg, &m.OpenSegStart, &m.OpenSegMsgs, &m.OpenSegBytes, &since,
		&m.Closed, &cbID, &cbEpoch, &cbSeq, &m.StreamSeq,
		&fParent, &fPos, &fSeg, &fSegStart, &fShared, &applied)
	if err != nil {
		return Meta{}, err
	}
	m.CreatedAt, m.OpenSegSince = fromMillis(created), fromMillis(since)
	m.AppliedLSN = uint64(applied)
	if cbID.Valid {
		m.ClosedBy = &ProducerKey{ID: cbID.String, Epoch: cbEpoch.Int64, Seq: cbSeq.Int64}
	}
	if fParent.Valid {
		m.Fork = &ForkBase{ParentID: fParent.Int64, Pos: fPos.Int64, Seg: fSeg.Int64,
			SegStart: fSegStart.Int64, Shared: fShared.Bool}
	}
	return m, nil
}

func segmentArgs(s *Segment) []any {
	return []any{s.Seg, s.Start, s.End, s.Messages, s.Bytes, string(s.State), s.ObjectKey,
		int64(s.Checksum), millis(s.SealedAt)}
}

func messageFlags(m *Message) int64 {
	if m.BatchEnd {
		return flagBatchEnd
	}
	return 0
}
