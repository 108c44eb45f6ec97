package telemetry

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"credvault/internal/credvault"
)

func TestOutcomesStayInTheirFixedSets(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.Verification(credvault.VerifyValid)
	m.Verification("cv_live_secretlookingcode") // not a code: counted as OTHER, never as a label
	if got := testutil.ToFloat64(m.verifications[credvault.VerifyValid]); got != 1 {
		t.Errorf("VALID = %v", got)
	}
	if got := testutil.ToFloat64(m.verifyOther); got != 1 {
		t.Errorf("OTHER = %v", got)
	}
	for _, tc := range []struct {
		status int
		err    error
		want   string
	}{
		{200, nil, "2xx"},
		{404, nil, "4xx"},
		{503, nil, "5xx"},
		{0, &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied"}, "egress_denied"},
		{0, &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_timeout"}, "upstream_timeout"},
		{0, &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "something new"}, "error"},
		{0, errors.New("api.example.com:443 refused"), "error"},
		{999, nil, "error"},
	} {
		before := testutil.ToFloat64(m.proxyCalls.WithLabelValues(tc.want))
		m.ProxyCall(tc.status, tc.err, time.Millisecond)
		if got := testutil.ToFloat64(m.proxyCalls.WithLabelValues(tc.want)) - before; got != 1 {
			t.Errorf("ProxyCall(%d, %v): %q moved by %v", tc.status, tc.err, tc.want, got)
		}
	}
	m.VaultCall("encrypt", nil, time.Millisecond)
	m.VaultCall("encrypt", credvault.Errorf(credvault.EUNAVAILABLE, "down"), time.Millisecond)
	m.VaultCall("decrypt", credvault.Errorf(credvault.EINTERNAL, "rejected"), time.Millisecond)
	for labels, want := range map[[2]string]float64{{"encrypt", "ok"}: 1, {"encrypt", "unavailable"}: 1, {"decrypt", "error"}: 1} {
		if got := testutil.ToFloat64(m.vaultCalls.WithLabelValues(labels[0], labels[1])); got != want {
			t.Errorf("vault %v = %v, want %v", labels, got, want)
		}
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	m.Verification(credvault.VerifyValid)
	m.VaultCall("encrypt", nil, 0)
	m.ProxyCall(200, nil, 0)
	m.ListenReconnect()
	m.LogLinesSuppressed(3)
	m.WatchVerifier(VerifierCounters{})
}

// BenchmarkVerification is what the auth middleware adds per request.
func BenchmarkVerification(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m.Verification(credvault.VerifyValid)
	}
}
