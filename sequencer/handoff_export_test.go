package sequencer

import "context"

// SetHandoffFault makes r's handoffs fail with f's error after the step f
// is called with (see handoffFault).
func SetHandoffFault(r *Registry, f func(step string) error) {
	r.mu.Lock()
	r.ho.fault = f
	r.mu.Unlock()
}

// CollectStale runs r's pass over stale hot logs (collectStale).
func CollectStale(ctx context.Context, r *Registry) (int, error) { return r.collectStale(ctx) }
