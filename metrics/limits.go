package metrics

import "github.com/prometheus/client_golang/prometheus"

// LimitStats is the use of the server's bounds on clients (see
// server.Limits). Requests refused by the body byte bounds show in the
// HTTP metrics as 429 and 503 answers; connections refused at the
// listener never become requests and are counted here.
type LimitStats struct {
	OpenConns         int64 // connections open through the bounded listeners
	RefusedConns      int64 // connections refused past a connection bound
	BodyBytesInFlight int64 // request body bytes reserved by requests in progress
}

func limitsCollector(stats func() LimitStats) prometheus.Collector {
	type S = LimitStats
	return &statsCollector[S]{
		stats: stats,
		values: []statValue[S]{
			gauge("open_connections", "Client connections open (through the server's bounded listeners).", func(s S) float64 { return float64(s.OpenConns) }),
			counter("refused_connections_total", "Connections refused past --max-conns or --max-conns-per-client.", func(s S) float64 { return float64(s.RefusedConns) }),
			gauge("body_bytes_in_flight", "Request body bytes being received, as reserved against --max-inflight-body-bytes.", func(s S) float64 { return float64(s.BodyBytesInFlight) }),
		},
	}
}
