package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkProxyCall: one proxied call's metrics, by ProxyCall (each
// outcome's series cached) and, for comparison, by looking the series up
// in the vectors on every call as ProxyCall did before.
func BenchmarkProxyCall(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.Run("vectors", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.proxyCalls.WithLabelValues("2xx").Inc()
			m.proxyLatency.WithLabelValues("2xx").Observe(time.Millisecond.Seconds())
		}
	})
	b.Run("ProxyCall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ProxyCall(200, nil, time.Millisecond)
		}
	})
}
