package sequencer

// Abandon stops r the way a crash would as far as the commit journal
// goes: the actors stop (closing their hot logs) and the journal closes
// without the final checkpoint, so the next registry on the same
// directory replays it.
func Abandon(r *Registry) {
	r.BeginShutdown()
	r.bg.Wait()
	r.stopActors()
	if r.jnl != nil {
		r.jnl.j.Close()
		r.jnl = nil // Close must not checkpoint either
	}
}

// CloseHotLog closes the hot log of h's stream under its actor, so that
// its next commit fails after the journal has the batch.
func CloseHotLog(h *Handle) { h.st.log.Close() }
