package sequencer

import "context"

// Abandon stops r the way a crash would as far as the commit journal
// goes: the actors stop (closing their hot logs) and the journal closes
// without the final checkpoint, so the next registry on the same
// directory replays it.
func Abandon(r *Registry) {
	r.BeginShutdown()
	r.bg.Wait()
	if r.jnl != nil {
		r.jnl.abandoned.Store(true) // the actors write nothing more
	}
	r.stopActors()
	if r.jnl != nil {
		r.jnl.j.Close()
		r.jnl = nil // Close must not checkpoint either
	}
}

// CloseHotLog closes the hot log of h's stream under its actor, so that
// its next write fails after the journal has the batches.
func CloseHotLog(h *Handle) { h.st.log.Close() }

// FlushHotLog has the actor of h's stream write what it has not written.
func FlushHotLog(h *Handle) error { return h.st.requestFlush(context.Background()) }

// Checkpoint runs a journal checkpoint now.
func Checkpoint(r *Registry) error { return r.jnl.checkpoint(context.Background()) }

// DurableLSN returns the LSN of the last durable journal record.
func DurableLSN(r *Registry) uint64 { return r.jnl.j.DurableLSN() }
