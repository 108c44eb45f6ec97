// Package telemetry holds credvault's Prometheus metrics beyond the HTTP
// request counters: verification outcomes, the verifier's cache and rate
// limiter, Vault transit calls, proxied calls and LISTEN reconnects. The
// packages that do the work know nothing of Prometheus: they take plain
// hooks (a func, or counters read at scrape time), and cmd wires them here.
//
// Every label has a fixed set of values named in this file (codes,
// operations, outcomes), never a key, a value, a host from a caller or a
// raw path, so the number of series is bounded whatever the traffic.
// Every method is safe on a nil *Metrics (it does nothing), so tests and
// tools may leave metrics out.
package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"credvault/internal/credvault"
)

// Metrics are the collectors, registered on one registry.
type Metrics struct {
	verifications   map[string]prometheus.Counter // by verification code, made up front
	verifyOther     prometheus.Counter
	vaultCalls      *prometheus.CounterVec
	vaultLatency    *prometheus.HistogramVec
	proxyCalls      *prometheus.CounterVec
	proxyLatency    *prometheus.HistogramVec
	listenReconnect prometheus.Counter
	fanout          *prometheus.CounterVec
	logsSuppressed  prometheus.Counter
	reg             prometheus.Registerer

	// proxySeries caches each proxy outcome's counter and histogram, made
	// on the outcome's first call (so that /metrics shows only outcomes
	// that happened): WithLabelValues hashes the label and takes the
	// vector's lock, twice per proxied call (issue 24). The outcomes are a
	// fixed set (status classes, error, proxyReasons).
	proxyMu     sync.RWMutex
	proxySeries map[string]proxyObs
}

// VerificationCodes are the values of the code label, as
// POST /v1/api-keys/verify reports them.
var VerificationCodes = []string{
	credvault.VerifyValid, credvault.VerifyPublicEndpoint, credvault.VerifyMissing, credvault.VerifyMalformed,
	credvault.VerifyNotFound, credvault.VerifyExpired, credvault.VerifyRevoked, credvault.VerifyInsufficientScope,
	credvault.VerifyRateLimited, credvault.VerifyDisabled, credvault.VerifyIntegrationDisabled,
	// JWT API keys' own refusals.
	credvault.VerifyBadSignature, credvault.VerifyUnknownKid, credvault.VerifyNotYetValid, credvault.VerifyWrongIssuer,
	credvault.VerifyKeyRetired,
}

// Vault outcomes and proxy outcomes: the only label values besides the
// fixed operation names and codes.
const (
	OutcomeOK          = "ok"
	OutcomeUnavailable = "unavailable" // Vault or the upstream did not answer in time or at all
	OutcomeError       = "error"       // Vault answered with an error
)

// latencyBuckets span a cached transit call (sub-millisecond on loopback)
// to a slow upstream, in seconds.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New makes the collectors and registers them on reg. It panics if reg
// already holds them (a programming error).
func New(reg prometheus.Registerer) *Metrics {
	verifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credvault_key_verifications_total",
		Help: "API key verifications by outcome code (VALID, NOT_FOUND, EXPIRED, RATE_LIMITED, …): the auth middleware, forward-auth and POST /v1/api-keys/verify.",
	}, []string{"code"})
	m := &Metrics{
		reg:           reg,
		verifications: map[string]prometheus.Counter{},
		vaultCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_vault_requests_total",
			Help: "Vault transit calls by operation (encrypt, decrypt, rewrap, …) and outcome (ok, unavailable, error).",
		}, []string{"operation", "outcome"}),
		vaultLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credvault_vault_request_duration_seconds",
			Help:    "Vault transit call latency by operation.",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
		proxyCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_proxy_requests_total",
			Help: "Calls sent with a credential (proxy and credential test) by outcome: the upstream's status class (2xx … 5xx) or the refusal/failure reason.",
		}, []string{"outcome"}),
		proxyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credvault_proxy_request_duration_seconds",
			Help:    "Latency of calls sent with a credential, until the upstream's response headers, by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		listenReconnect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credvault_invalidation_listener_reconnects_total",
			Help: "Reconnects of the PostgreSQL LISTEN connection that keeps caches current (each one reads the key state log from the last applied change).",
		}),
		fanout: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_key_state_fanout_total",
			Help: "Key state changes sent to the other instances through Redis (published, publish_failed) and received from them (received, malformed).",
		}, []string{"result"}),
		logsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credvault_refusal_log_lines_suppressed_total",
			Help: "Refusal log lines left out by the log rate limit.",
		}),
	}
	for _, code := range VerificationCodes {
		m.verifications[code] = verifications.WithLabelValues(code)
	}
	m.verifyOther = verifications.WithLabelValues("OTHER")
	reg.MustRegister(verifications, m.vaultCalls, m.vaultLatency, m.proxyCalls, m.proxyLatency, m.listenReconnect, m.fanout, m.logsSuppressed)
	return m
}

// Verification counts one verification outcome. It does not allocate: the
// counters are made up front and looked up by code.
func (m *Metrics) Verification(code string) {
	if m == nil {
		return
	}
	if c, ok := m.verifications[code]; ok {
		c.Inc()
		return
	}
	m.verifyOther.Inc()
}

// VaultCall records one transit call: op is the transit operation
// ("encrypt", "decrypt", "rewrap", "sign", …), err its result.
func (m *Metrics) VaultCall(op string, err error, elapsed time.Duration) {
	if m == nil {
		return
	}
	outcome := OutcomeOK
	switch {
	case err == nil:
	case credvault.ErrorCode(err) == credvault.EUNAVAILABLE:
		outcome = OutcomeUnavailable
	default:
		outcome = OutcomeError
	}
	m.vaultCalls.WithLabelValues(op, outcome).Inc()
	m.vaultLatency.WithLabelValues(op).Observe(elapsed.Seconds())
}

// proxyReasons are the failure reasons a proxied call reports as its own
// outcome; any other failure counts as "error".
var proxyReasons = map[string]bool{
	"egress_denied": true, "upstream_unreachable": true, "upstream_timeout": true,
	"upstream_response_too_large": true, "upstream_response_encoded": true, "credential_not_usable": true,
}

// ProxyCall records one call sent with a credential: the upstream's status
// (0 when there was no response) or err.
func (m *Metrics) ProxyCall(status int, err error, elapsed time.Duration) {
	if m == nil {
		return
	}
	outcome := OutcomeError
	switch {
	case err == nil && status >= 100 && status < 600:
		outcome = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[status/100-1]
	case err != nil && proxyReasons[credvault.ErrorReason(err)]:
		outcome = credvault.ErrorReason(err)
	}
	o := m.proxyObs(outcome)
	o.calls.Inc()
	o.latency.Observe(elapsed.Seconds())
}

// proxyObs is one proxy outcome's series.
type proxyObs struct {
	calls   prometheus.Counter
	latency prometheus.Observer
}

// proxyObs returns outcome's series from proxySeries, made on first use.
func (m *Metrics) proxyObs(outcome string) proxyObs {
	m.proxyMu.RLock()
	o, ok := m.proxySeries[outcome]
	m.proxyMu.RUnlock()
	if ok {
		return o
	}
	o = proxyObs{calls: m.proxyCalls.WithLabelValues(outcome), latency: m.proxyLatency.WithLabelValues(outcome)}
	m.proxyMu.Lock()
	if m.proxySeries == nil {
		m.proxySeries = map[string]proxyObs{}
	}
	m.proxySeries[outcome] = o
	m.proxyMu.Unlock()
	return o
}

// ListenReconnect counts one reconnect of the invalidation listener.
func (m *Metrics) ListenReconnect() {
	if m != nil {
		m.listenReconnect.Inc()
	}
}

// KeyStateFanout counts one key state change sent or received through
// Redis; result is published, publish_failed, received or malformed.
func (m *Metrics) KeyStateFanout(result string) {
	if m != nil {
		m.fanout.WithLabelValues(result).Inc()
	}
}

// LogLinesSuppressed counts refusal log lines the rate limit left out.
func (m *Metrics) LogLinesSuppressed(n int) {
	if m != nil && n > 0 {
		m.logsSuppressed.Add(float64(n))
	}
}

// VerifierCounters are the verifier's own running totals, read at scrape
// time so that the verification hot path only bumps atomics it already
// keeps.
type VerifierCounters struct {
	CacheHits     func() int64 // answered from the key cache
	CacheMisses   func() int64 // read from PostgreSQL
	CacheNegative func() int64 // refused as unknown without a query (known-key set, negative cache)
	RateAllowed   func() int64 // rate-limited keys let through
	RateLimited   func() int64 // refused by the rate limit
}

// WatchVerifier exports c as credvault_verifier_key_lookups_total{result} and
// credvault_rate_limit_decisions_total{decision}.
func (m *Metrics) WatchVerifier(c VerifierCounters) {
	if m == nil {
		return
	}
	add := func(name, help, label, value string, f func() int64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{label: value},
		}, func() float64 { return float64(f()) }))
	}
	const cacheHelp = "API key lookups of the verifier by where they were answered: hit (cache), miss (PostgreSQL), negative (refused as unknown without a query)."
	add("credvault_verifier_key_lookups_total", cacheHelp, "result", "hit", c.CacheHits)
	add("credvault_verifier_key_lookups_total", cacheHelp, "result", "miss", c.CacheMisses)
	add("credvault_verifier_key_lookups_total", cacheHelp, "result", "negative", c.CacheNegative)
	const rateHelp = "Rate-limit decisions for keys with a rate limit: allowed or limited."
	add("credvault_rate_limit_decisions_total", rateHelp, "decision", "allowed", c.RateAllowed)
	add("credvault_rate_limit_decisions_total", rateHelp, "decision", "limited", c.RateLimited)
}

// WatchKeyState exports the key state log follower:
// credvault_key_state_seq (the last change applied here; equal on every
// healthy instance) and credvault_key_state_age_seconds (since the log was
// last read to its end; /readyz turns 503 past CREDVAULT_MAX_STALENESS).
func (m *Metrics) WatchKeyState(lastSeq func() int64, age func() time.Duration) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "credvault_key_state_seq",
			Help: "Sequence number of the last key_state_log change this instance applied."},
			func() float64 { return float64(lastSeq()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "credvault_key_state_age_seconds",
			Help: "Seconds since this instance last read the key state log to its end."},
			func() float64 { return age().Seconds() }),
	)
}
