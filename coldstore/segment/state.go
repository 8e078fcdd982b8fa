package segment

// State is where a sealed segment is in its way to the cold store. The hot
// log (package hotlog), the catalog's segment index (package catalog) and
// the admin surface (package admin) all record it, and they share this one
// type: it lives with the object format because it is the lifecycle of the
// segment's object, and this package imports nothing of the project, so
// every layer, hot or cold, can use it without depending on another.
type State string

// States of a sealed segment; the values are stored in the hot log and the
// catalog and shown by the admin API.
const (
	// Sealed: the range is closed and its rows are still in the hot log;
	// the upload is pending or running.
	Sealed State = "sealed"
	// Uploaded: the object is stored and verified, and the rows are
	// trimmed (or about to be) from the hot log.
	Uploaded State = "uploaded"
)

// Valid reports whether s is one of the states above.
func (s State) Valid() bool { return s == Sealed || s == Uploaded }
