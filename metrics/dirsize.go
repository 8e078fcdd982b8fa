package metrics

import (
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dirCollector exports the size of the hot-log tree. A server may hold
// hundreds of thousands of stream files, so the tree is walked at most once
// per interval and scrapes in between get the cached numbers.
type dirCollector struct {
	dir      string
	interval time.Duration
	now      func() time.Time

	bytesDesc, filesDesc, ageDesc *prometheus.Desc

	mu       sync.Mutex // held while walking: concurrent scrapes share one walk
	measured time.Time
	bytes    int64
	files    int64
}

func newDirCollector(dir string, interval time.Duration, now func() time.Time) *dirCollector {
	if interval <= 0 {
		interval = time.Minute
	}
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "", n) }
	return &dirCollector{dir: dir, interval: interval, now: now,
		bytesDesc: prometheus.NewDesc(name("hotlog_bytes"), "Bytes of all hot-log files on disk (SQLite databases and their WAL), measured at most once a minute.", nil, nil),
		filesDesc: prometheus.NewDesc(name("hotlog_files"), "Number of hot-log files on disk, measured with hotlog_bytes.", nil, nil),
		ageDesc:   prometheus.NewDesc(name("hotlog_measured_age_seconds"), "Age of the hotlog_bytes and hotlog_files measurement.", nil, nil),
	}
}

func (c *dirCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytesDesc
	ch <- c.filesDesc
	ch <- c.ageDesc
}

func (c *dirCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	now := c.now()
	if c.measured.IsZero() || now.Sub(c.measured) >= c.interval {
		c.bytes, c.files = dirSize(c.dir)
		c.measured = c.now()
		now = c.measured
	}
	bytes, files, age := c.bytes, c.files, now.Sub(c.measured).Seconds()
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.bytesDesc, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(c.filesDesc, prometheus.GaugeValue, float64(files))
	ch <- prometheus.MustNewConstMetric(c.ageDesc, prometheus.GaugeValue, age)
}

// dirSize sums the sizes of the regular files below dir. Files vanishing
// during the walk (streams deleted, WALs checkpointed) are skipped; a
// missing dir counts as empty.
func dirSize(dir string) (bytes, files int64) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			// Vanished or unreadable entries are skipped: the gauge is an
			// estimate, not worth failing a scrape for.
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		bytes += fi.Size()
		files++
		return nil
	})
	return bytes, files
}
