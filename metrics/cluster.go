package metrics

import "github.com/prometheus/client_golang/prometheus"

// ClusterStats is a cluster node's view of membership and of its own
// leases (package cluster keeps them).
type ClusterStats struct {
	// LiveNodes counts the nodes this node sees as live (heartbeat within
	// the node TTL), itself included.
	LiveNodes int64
	// LeasesHeld counts the stream leases this node holds now.
	LeasesHeld int64
	// LeaseRenewalFailures counts lease renewals that failed: the lease
	// was lost to another node or the catalog could not be reached in
	// time. Each one stops the node acknowledging writes of that stream
	// until it holds the lease again.
	LeaseRenewalFailures uint64
}

func clusterCollector(stats func() ClusterStats) prometheus.Collector {
	type S = ClusterStats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			gauge("cluster_live_nodes", "Cluster nodes this node sees as live (heartbeat within the node TTL), itself included.", func(s S) float64 { return float64(s.LiveNodes) }),
			gauge("cluster_leases_held", "Stream leases this node holds.", func(s S) float64 { return float64(s.LeasesHeld) }),
			counter("cluster_lease_renewal_failures_total", "Lease renewals that failed (lease lost or catalog unreachable); the stream stops acknowledging writes here.", func(s S) float64 { return float64(s.LeaseRenewalFailures) }),
		},
	}
}

func forwardCounters() (forwarded, failed *prometheus.CounterVec, sealedLocal prometheus.Counter) {
	forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "forwarded_requests_total",
		Help: "Requests this node forwarded to the owner of their stream, by owner (to: the host:port of its advertise URL).",
	}, []string{"to"})
	failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "forward_errors_total",
		Help: "Requests this node could not forward to the owner of their stream (owner unreachable or the connection broke before the answer began), by owner (to: the host:port of its advertise URL).",
	}, []string{"to"})
	sealedLocal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "sealed_reads_local_total",
		Help: "Catch-up reads of streams another node owns that this node answered itself, from sealed segments in the cold tier, instead of forwarding them.",
	})
	return forwarded, failed, sealedLocal
}

// Forwarded counts a request forwarded to the owner of its stream; to
// names the owner by the host:port of its advertise URL (what the
// router returns). The cluster's nodes are few, so the label stays
// bounded; never pass anything a client chose.
func (m *Metrics) Forwarded(to string) { m.forwarded.WithLabelValues(to).Inc() }

// ForwardFailed counts a request that could not be forwarded to to:
// the owner did not answer or the connection broke before the answer
// began. The request is counted by Forwarded too.
func (m *Metrics) ForwardFailed(to string) { m.forwardErrors.WithLabelValues(to).Inc() }

// SealedReadLocal counts a catch-up read of a stream another node owns
// that this node answered from the cold tier instead of forwarding it.
func (m *Metrics) SealedReadLocal() { m.sealedLocal.Inc() }
