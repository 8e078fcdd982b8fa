package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClusterNode(t *testing.T) {
	m := NewNode("n1")
	if err := m.Watch(Sources{Cluster: func() ClusterStats {
		return ClusterStats{LiveNodes: 3, LeasesHeld: 42, LeaseRenewalFailures: 2}
	}}); err != nil {
		t.Fatal(err)
	}
	m.Forwarded("n2:4437")
	m.Forwarded("n2:4437")
	m.Forwarded("n3:4437")
	m.ForwardFailed("n3:4437")
	m.SealedReadLocal()
	m.EndRequest(Request{Route: "/v1/stream/*", Method: "GET", Code: 200})

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			var node string
			for _, l := range s.GetLabel() {
				if l.GetName() == NodeLabel {
					node = l.GetValue()
				}
			}
			if node != "n1" {
				t.Errorf("%s %v: node label %q, want n1", f.GetName(), s.GetLabel(), node)
			}
		}
	}
	want := `
# HELP durable_streams_cluster_lease_renewal_failures_total Lease renewals that failed (lease lost or catalog unreachable); the stream stops acknowledging writes here.
# TYPE durable_streams_cluster_lease_renewal_failures_total counter
durable_streams_cluster_lease_renewal_failures_total{node="n1"} 2
# HELP durable_streams_cluster_leases_held Stream leases this node holds.
# TYPE durable_streams_cluster_leases_held gauge
durable_streams_cluster_leases_held{node="n1"} 42
# HELP durable_streams_cluster_live_nodes Cluster nodes this node sees as live (heartbeat within the node TTL), itself included.
# TYPE durable_streams_cluster_live_nodes gauge
durable_streams_cluster_live_nodes{node="n1"} 3
# HELP durable_streams_forwarded_requests_total Requests this node forwarded to the owner of their stream, by owner (to: the host:port of its advertise URL).
# TYPE durable_streams_forwarded_requests_total counter
durable_streams_forwarded_requests_total{node="n1",to="n2:4437"} 2
durable_streams_forwarded_requests_total{node="n1",to="n3:4437"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"durable_streams_cluster_lease_renewal_failures_total", "durable_streams_cluster_leases_held",
		"durable_streams_cluster_live_nodes", "durable_streams_forwarded_requests_total"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.forwardErrors.WithLabelValues("n3:4437")); v != 1 {
		t.Errorf("forward errors to n3: %v", v)
	}
	if v := testutil.ToFloat64(m.sealedLocal); v != 1 {
		t.Errorf("sealed reads served locally: %v", v)
	}
}

// TestSingleNodeHasNoNodeLabel: one node's series keep their labels as
// they were.
func TestSingleNodeHasNoNodeLabel(t *testing.T) {
	m := New()
	m.Forwarded("n2:4437")
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == NodeLabel {
					t.Errorf("%s has a node label", f.GetName())
				}
			}
		}
	}
}
