package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"credvault/internal/credvault"
)

// EventMetrics are the event stream's collectors: events emitted by type,
// delivery attempts by outcome with their latency, and the outbox's depth
// and oldest undelivered age. Labels take only the fixed event types and
// outcomes. Every method is safe on a nil *EventMetrics.
type EventMetrics struct {
	emitted         *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliveryLatency prometheus.Histogram
	depth           prometheus.Gauge
	oldest          prometheus.Gauge
}

// Delivery outcomes: the values of the outcome label.
var DeliveryOutcomes = []string{"delivered", "retry", "failed"}

// NewEventMetrics makes the collectors and registers them on reg.
func NewEventMetrics(reg prometheus.Registerer) *EventMetrics {
	m := &EventMetrics{
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_events_emitted_total",
			Help: "Events stored in the outbox by type (api_key.revoked, credential.health_failed, …), counted when their transaction commits.",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, tried again later), failed (given up after 24 h).",
		}, []string{"outcome"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credvault_webhook_delivery_duration_seconds",
			Help:    "Time from sending a delivery to the receiver's answer (or the failure).",
			Buckets: latencyBuckets,
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credvault_webhook_outbox_depth",
			Help: "Deliveries not yet delivered nor given up (sampled every 10 s).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credvault_webhook_outbox_oldest_age_seconds",
			Help: "Age of the oldest undelivered delivery, 0 when none (sampled every 10 s).",
		}),
	}
	for _, t := range append(append([]string{}, credvault.EventTypes...), credvault.EventWebhookTest) {
		m.emitted.WithLabelValues(t)
	}
	for _, o := range DeliveryOutcomes {
		m.deliveries.WithLabelValues(o)
	}
	reg.MustRegister(m.emitted, m.deliveries, m.deliveryLatency, m.depth, m.oldest)
	return m
}

// EventEmitted counts one committed event; an unknown type is counted as
// "other" so the label stays bounded.
func (m *EventMetrics) EventEmitted(typ string) {
	if m == nil {
		return
	}
	if !credvault.IsEventType(typ) && typ != credvault.EventWebhookTest {
		typ = "other"
	}
	m.emitted.WithLabelValues(typ).Inc()
}

// Delivery counts one attempt's outcome and latency.
func (m *EventMetrics) Delivery(outcome string, latency time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(outcome).Inc()
	m.deliveryLatency.Observe(latency.Seconds())
}

// Outbox sets the sampled depth and oldest age.
func (m *EventMetrics) Outbox(depth int64, oldest time.Duration) {
	if m == nil {
		return
	}
	m.depth.Set(float64(depth))
	m.oldest.Set(oldest.Seconds())
}
