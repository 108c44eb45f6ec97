package httpapi

import (
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are labelled by route template, never by raw path: ids stay out of
// label values and the series count stays bounded.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// series caches each (method, route, status)'s counter and histogram
	// (issue 24): WithLabelValues hashes the label values and takes the
	// vector's lock twice per request, 13% of the handler's time for
	// /v1/auth/check. The set is bounded as the labels are: route
	// templates, known methods, status codes.
	mu     sync.RWMutex
	series map[seriesKey]seriesObs
}

type seriesKey struct {
	method, route string
	status        int
}

type seriesObs struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_http_requests_total",
			Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "credvault_http_request_duration_seconds",
			Help: "HTTP request latency by method and route template.",
			// Key verification answers in microseconds; proxied calls take
			// as long as the upstream.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	// Registering twice (two servers on one registry in a test) is harmless.
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statusText holds the label value of every status, so that recording a
// request does not format one.
var statusText = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func (m *metrics) observe(method, route string, status int, elapsed time.Duration) {
	k := seriesKey{method, route, status}
	m.mu.RLock()
	o, ok := m.series[k]
	m.mu.RUnlock()
	if !ok {
		code := "other"
		if status >= 0 && status < len(statusText) {
			code = statusText[status]
		}
		o = seriesObs{count: m.requests.WithLabelValues(method, route, code), latency: m.latency.WithLabelValues(method, route)}
		m.mu.Lock()
		if m.series == nil {
			m.series = map[seriesKey]seriesObs{}
		}
		m.series[k] = o
		m.mu.Unlock()
	}
	o.count.Inc()
	o.latency.Observe(elapsed.Seconds())
}

func (s *Server) handleMetrics() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
}
