package httpapi

import (
	"strconv"
	"sync"
	"sync/atomic"
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

// seriesSlots keep a matched route's series without the lock and the map
// of metrics.series: the route's first series per slot (by method and
// status), set once and never replaced, so that it allocates nothing in
// a steady state; a series whose slot another holds goes through the
// map. A route answers a few (method, status) pairs, most often one.
type seriesSlots [16]atomic.Pointer[slotSeries]

type slotSeries struct {
	method string
	status int
	obs    seriesObs
}

func (t *seriesSlots) slot(method string, status int) *atomic.Pointer[slotSeries] {
	return &t[(uint(status)*31+uint(len(method))+uint(method[0]))%uint(len(t))]
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

// observe counts one request and its latency. slots are the matched
// route's (nil for none); method is a methodLabel constant.
func (m *metrics) observe(method, route string, status int, elapsed time.Duration, slots *seriesSlots) {
	var slot *atomic.Pointer[slotSeries]
	if slots != nil {
		slot = slots.slot(method, status)
		if ss := slot.Load(); ss != nil && ss.status == status && ss.method == method {
			ss.obs.count.Inc()
			ss.obs.latency.Observe(elapsed.Seconds())
			return
		}
	}
	o := m.seriesOf(method, route, status)
	if slot != nil && slot.Load() == nil {
		slot.CompareAndSwap(nil, &slotSeries{method: method, status: status, obs: o})
	}
	o.count.Inc()
	o.latency.Observe(elapsed.Seconds())
}

// seriesOf finds or makes the series of (method, route, status).
func (m *metrics) seriesOf(method, route string, status int) seriesObs {
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
	return o
}

func (s *Server) handleMetrics() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
}
