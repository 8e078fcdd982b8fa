package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamtier/durable-streams/coldstore/segcache"
	"github.com/streamtier/durable-streams/reclaim"
	"github.com/streamtier/durable-streams/rotation"
	"github.com/streamtier/durable-streams/sequencer"
	"github.com/streamtier/durable-streams/subscriptions"
)

// ReadStats are the counters of the read path (see api.ReadStats).
type ReadStats struct {
	// StorageReads counts chunk reads that went to storage (memory tail,
	// hot log or cold store).
	StorageReads uint64
	// CollapsedReads counts reads answered by another request's storage
	// read of the same stream, offset and snapshot.
	CollapsedReads uint64
	// LiveWaiters is the number of long-poll and SSE reads waiting for
	// data now.
	LiveWaiters int64
	// KeptReads and KeptReadBytes are the read results kept now for
	// requests still to come.
	KeptReads, KeptReadBytes int64
}

// Sources are the components whose counters are exported; nil fields are
// skipped.
type Sources struct {
	Streams  interface{ Stats() sequencer.Stats }
	Rotation interface{ Stats() rotation.Stats }
	Cache    interface{ Stats() segcache.Stats }
	Reclaim  interface{ Stats() reclaim.Stats }
	Reads    func() ReadStats
	// Subscriptions are the subscription APIs' deliveries.
	Subscriptions interface{ Stats() subscriptions.Stats }
	// HotDir is the directory holding the per-stream hot logs; its size is
	// measured at most once per HotDirInterval (default 1 minute), because
	// walking a large tree on every scrape would be costly.
	HotDir         string
	HotDirInterval time.Duration
	// Limits reports the connection and body byte bounds' use.
	Limits func() LimitStats
	// Cluster reports this node's view of cluster membership and its
	// leases; set in cluster mode only.
	Cluster func() ClusterStats
	// Now is the clock (default time.Now), for the rotation lag.
	Now func() time.Time
}

// Watch registers collectors for the sources.
func (m *Metrics) Watch(src Sources) error {
	if src.Now == nil {
		src.Now = time.Now
	}
	var cs []prometheus.Collector
	if s := src.Streams; s != nil {
		cs = append(cs, streamsCollector(s.Stats))
	}
	if r := src.Rotation; r != nil {
		cs = append(cs, rotationCollector(r.Stats, src.Now))
	}
	if c := src.Reclaim; c != nil {
		cs = append(cs, reclaimCollector(c.Stats))
	}
	if c := src.Cache; c != nil {
		cs = append(cs, coldCacheCollector(c.Stats))
	}
	if src.Reads != nil {
		cs = append(cs, readsCollector(src.Reads))
	}
	if sub := src.Subscriptions; sub != nil {
		cs = append(cs, subscriptionsCollector(sub.Stats))
	}
	if src.HotDir != "" {
		cs = append(cs, newDirCollector(src.HotDir, src.HotDirInterval, src.Now))
	}
	if src.Limits != nil {
		cs = append(cs, limitsCollector(src.Limits))
	}
	if src.Cluster != nil {
		cs = append(cs, clusterCollector(src.Cluster))
	}
	for _, c := range cs {
		if err := m.rr.Register(c); err != nil {
			return fmt.Errorf("metrics: register: %w", err)
		}
	}
	return nil
}

// statsCollector exports values of a Stats snapshot taken once per scrape.
type statsCollector[S any] struct {
	stats  func() S
	values []statValue[S]
	// extra exports what does not fit a single value (histograms).
	extraDescs []*prometheus.Desc
	extra      func(S, chan<- prometheus.Metric)
}

type statValue[S any] struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(S) float64
}

func counter[S any](name, help string, v func(S) float64) statValue[S] {
	return statValue[S]{prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, nil), prometheus.CounterValue, v}
}

func gauge[S any](name, help string, v func(S) float64) statValue[S] {
	return statValue[S]{prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, nil), prometheus.GaugeValue, v}
}

func (c *statsCollector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.values {
		ch <- v.desc
	}
	for _, d := range c.extraDescs {
		ch <- d
	}
}

func (c *statsCollector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, v := range c.values {
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, v.value(s))
	}
	if c.extra != nil {
		c.extra(s, ch)
	}
}

func streamsCollector(stats func() sequencer.Stats) prometheus.Collector {
	type S = sequencer.Stats
	commitSizes := prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "group_commit_appends"),
		"Append requests written per group commit (one transaction and fsync of a stream's hot log).", nil, nil)
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			gauge("open_streams", "Stream actors running (streams used recently).", func(s S) float64 { return float64(s.OpenStreams) }),
			counter("appends_total", "Append requests written (producer duplicates excluded).", func(s S) float64 { return float64(s.Appends) }),
			counter("appended_messages_total", "Messages written by appends.", func(s S) float64 { return float64(s.AppendedMessages) }),
			counter("appended_bytes_total", "Data bytes written by appends.", func(s S) float64 { return float64(s.AppendedBytes) }),
			counter("producer_duplicates_total", "Producer retries answered as duplicates without writing.", func(s S) float64 { return float64(s.Duplicates) }),
			counter("streams_created_total", "Streams created, forks included.", func(s S) float64 { return float64(s.StreamsCreated) }),
			counter("streams_deleted_total", "Streams deleted, by DELETE or by expiry.", func(s S) float64 { return float64(s.StreamsDeleted) }),
			counter("streams_expired_total", "Streams deleted because their TTL or expiry time passed.", func(s S) float64 { return float64(s.StreamsExpired) }),
		},
		extraDescs: []*prometheus.Desc{commitSizes},
		extra: func(s S, ch chan<- prometheus.Metric) {
			buckets := make(map[float64]uint64, len(s.CommitSizes)-1)
			var cum uint64
			for i, n := range s.CommitSizes[:len(s.CommitSizes)-1] {
				cum += uint64(n)
				buckets[float64(int64(1)<<i)] = cum
			}
			ch <- prometheus.MustNewConstHistogram(commitSizes, uint64(s.Commits), float64(s.CommitAppends), buckets)
		},
	}
}

func rotationCollector(stats func() rotation.Stats, now func() time.Time) prometheus.Collector {
	type S = rotation.Stats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			gauge("rotation_queue_length", "Sealed segments waiting for (or in) their upload to the cold store.", func(s S) float64 { return float64(s.Queued) }),
			gauge("rotation_lag_seconds", "Age of the oldest sealed segment not uploaded yet (0 when none waits).", func(s S) float64 {
				if s.OldestQueued.IsZero() {
					return 0
				}
				return max(now().Sub(s.OldestQueued).Seconds(), 0)
			}),
			counter("rotation_uploads_total", "Segments uploaded to the cold store and verified.", func(s S) float64 { return float64(s.Uploaded) }),
			counter("rotation_uploaded_bytes_total", "Object bytes of verified uploads.", func(s S) float64 { return float64(s.UploadedBytes) }),
			counter("rotation_failures_total", "Failed upload attempts (each is retried).", func(s S) float64 { return float64(s.Failures) }),
		},
	}
}

func reclaimCollector(stats func() reclaim.Stats) prometheus.Collector {
	type S = reclaim.Stats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			counter("rotation_collected_streams_total", "Deleted streams whose cold objects were collected.", func(s S) float64 { return float64(s.Collected) }),
			counter("collection_failures_total", "Failed attempts to collect a deleted stream's cold objects (each is retried).", func(s S) float64 { return float64(s.Failures) }),
		},
	}
}

func coldCacheCollector(stats func() segcache.Stats) prometheus.Collector {
	type S = segcache.Stats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			counter("cold_cache_hits_total", "Cold segment reads served from the local disk cache.", func(s S) float64 { return float64(s.Hits) }),
			counter("cold_cache_misses_total", "Cold segment reads that fetched the object from the cold store.", func(s S) float64 { return float64(s.Misses) }),
		},
	}
}

func readsCollector(stats func() ReadStats) prometheus.Collector {
	type S = ReadStats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			counter("storage_reads_total", "Chunk reads that went to storage (memory tail, hot log or cold store).", func(s S) float64 { return float64(s.StorageReads) }),
			counter("collapsed_reads_total", "Reads answered by another request's identical storage read.", func(s S) float64 { return float64(s.CollapsedReads) }),
			gauge("live_waiters", "Long-poll and SSE reads waiting for data now.", func(s S) float64 { return float64(s.LiveWaiters) }),
			gauge("read_results_kept", "Read results kept for requests still to come.", func(s S) float64 { return float64(s.KeptReads) }),
			gauge("read_results_kept_bytes", "Bytes of the read results kept.", func(s S) float64 { return float64(s.KeptReadBytes) }),
		},
	}
}

func subscriptionsCollector(stats func() subscriptions.Stats) prometheus.Collector {
	type S = subscriptions.Stats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			gauge("subscriptions", "Subscriptions (webhook and pull-wake).", func(s S) float64 { return float64(s.Subscriptions) }),
			gauge("subscriptions_failing", "Subscriptions whose current delivery is being retried (status failed).", func(s S) float64 { return float64(s.Failing) }),
			gauge("subscription_delivery_queue_length", "Deliveries waiting for a worker.", func(s S) float64 { return float64(s.Queued) }),
			counter("subscription_wakes_total", "Wakes issued (new generations).", func(s S) float64 { return float64(s.Wakes) }),
			counter("webhook_deliveries_total", "Webhook deliveries accepted by their receivers (2xx).", func(s S) float64 { return float64(s.Delivered) }),
			counter("wake_events_total", "Wake events appended to pull-wake wake streams.", func(s S) float64 { return float64(s.WakeEvents) }),
			counter("subscription_delivery_failures_total", "Failed delivery attempts (each is retried with backoff).", func(s S) float64 { return float64(s.Failures) }),
		},
	}
}
