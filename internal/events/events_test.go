package events

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"credvault/internal/credvault"
	"credvault/internal/injector"
)

// TestCheckDestination: the webhook URL policy as a pure function, for
// addresses no test may send to: private, link-local, metadata, CGNAT,
// unique-local and mapped forms are refused; public ones and names pass
// (names are judged at dial time).
func TestCheckDestination(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool
	}{
		{"https://10.1.2.3/hook", true},
		{"https://172.16.0.9/hook", true},
		{"https://192.168.10.1/hook", true},
		{"http://169.254.169.254/latest/meta-data", true},
		{"https://100.64.1.1/hook", true},
		{"https://[fd12:3456::1]/hook", true},
		{"https://[fe80::1]/hook", true},
		{"https://[::ffff:10.0.0.1]/hook", true},
		{"https://0.0.0.0/hook", true},
		{"https://LOCALHOST./hook", true},
		{"https://api.localhost/hook", true},
		{"https://8.8.8.8/hook", false},
		{"https://[2606:4700::1111]/hook", false},
		{"https://hooks.example.com/credvault", false},
	} {
		u, _ := url.Parse(tc.url)
		err := injector.CheckDestination(u, false)
		if (err != nil) != tc.refused {
			t.Errorf("%s: err = %v, refused want %v", tc.url, err, tc.refused)
		}
		if err != nil && credvault.ErrorReason(err) != "egress_denied" {
			t.Errorf("%s: reason %q, want egress_denied", tc.url, credvault.ErrorReason(err))
		}
		if err := injector.CheckDestination(u, true); err != nil {
			t.Errorf("%s with private addresses allowed: %v", tc.url, err)
		}
	}
}

// TestBackoffSchedule: 5 s doubling to 1 h, given up 24 h after the event.
func TestBackoffSchedule(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i, w := range want {
		next, ok := DefaultBackoff.Next(i+1, at, at)
		if !ok || next.Sub(at) != w {
			t.Errorf("attempt %d: wait %v (ok %v), want %v", i+1, next.Sub(at), ok, w)
		}
	}
	if next, _ := DefaultBackoff.Next(30, at, at); next.Sub(at) != time.Hour {
		t.Errorf("attempt 30 waits %v, want the 1 h cap", next.Sub(at))
	}
	// Count the attempts a dead receiver gets in 24 h.
	now, n := at, 0
	for {
		n++
		next, ok := DefaultBackoff.Next(n, at, now)
		if !ok {
			break
		}
		now = next
	}
	if n < 20 || n > 40 || now.Sub(at) > 24*time.Hour {
		t.Errorf("%d attempts over %v", n, now.Sub(at))
	}
	t.Logf("a receiver down for good gets %d attempts over %v", n, now.Sub(at).Round(time.Minute))
}

// TestSignMatchesTheLibrary: what Sign writes verifies with the
// specification's own library, and not with another secret.
func TestSignMatchesTheLibrary(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e := &credvault.Event{ID: "0b6a8f8e-3f7e-4d55-9a1e-4e1f0f1b2c3d", OrgID: "o", Type: credvault.EventKeyRevoked,
		Data: map[string]any{"key_id": "k"}, CreatedAt: time.Now()}
	body, err := Body(e)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := Sign(h, credvault.NewSecret(secret), e.MessageID(), time.Now(), body); err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("library verify: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
	if other.Verify(body, h) == nil {
		t.Fatal("verifies with another secret")
	}
	if h.Get("webhook-id") != "evt_"+e.ID {
		t.Fatalf("webhook-id %q", h.Get("webhook-id"))
	}
}

// TestCounterCountsAndFlushes: refusals are counted per key and per org's
// unknown keys; a flush hands them over once; a failed flush keeps them.
func TestCounterCountsAndFlushes(t *testing.T) {
	c := NewCounter()
	for range 5 {
		c.Refused("org", "k1", false)
	}
	c.Refused("org", "k1", true)
	c.Refused("org", "", false)
	c.Refused("", "k2", false) // no org: not counted
	st := &memCounts{fail: true}
	if err := c.Flush(context.Background(), st, time.Now(), nil); err == nil {
		t.Fatal("flush did not report the store's failure")
	}
	st.fail = false
	if err := c.Flush(context.Background(), st, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]credvault.RefusalCount{}
	for _, rc := range st.got {
		got[rc.Subject] = rc
	}
	if got["key:k1"].Refusals != 6 || got["key:k1"].RateLimited != 1 || got[credvault.SubjectUnknownKeys].Refusals != 1 || len(got) != 2 {
		t.Fatalf("flushed %+v", st.got)
	}
	st.got = nil
	_ = c.Flush(context.Background(), st, time.Now(), nil)
	if len(st.got) != 0 {
		t.Fatalf("counts flushed twice: %+v", st.got)
	}
}

type memCounts struct {
	fail bool
	got  []credvault.RefusalCount
}

func (m *memCounts) AddRefusalCounts(_ context.Context, _ time.Time, counts []credvault.RefusalCount) error {
	if m.fail {
		return credvault.Errorf(credvault.EUNAVAILABLE, "down")
	}
	m.got = append(m.got, counts...)
	return nil
}

// BenchmarkCounterRefused is the cost a refusal adds to the hot path.
func BenchmarkCounterRefused(b *testing.B) {
	c := NewCounter()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Refused("org", "key", false)
		}
	})
}
