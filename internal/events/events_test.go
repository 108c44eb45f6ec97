package events

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
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

// TestCounterHotPathTakesNoLock: once a subject is in the published
// table (after a flush), counting it takes no lock and allocates nothing:
// it completes while the counter's mutex is held (by a flush or a new
// subject), and testing.AllocsPerRun is 0.
func TestCounterHotPathTakesNoLock(t *testing.T) {
	c := NewCounter()
	c.Refused("org", "k1", false)
	c.Refused("org", "", false)
	st := &memCounts{}
	if err := c.Flush(context.Background(), st, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	done := make(chan struct{})
	go func() {
		c.Refused("org", "k1", true)
		c.Refused("org", "", false)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		c.mu.Unlock()
		t.Fatal("Refused waited for the counter's lock")
	}
	c.mu.Unlock()
	for _, rl := range []bool{false, true} {
		if a := testing.AllocsPerRun(1000, func() { c.Refused("org", "k1", rl) }); a != 0 {
			t.Errorf("Refused (rate limited %v) allocates %v per call, want 0", rl, a)
		}
	}
	if a := testing.AllocsPerRun(1000, func() { c.Refused("org", "", false) }); a != 0 {
		t.Errorf("Refused of an unknown key allocates %v per call, want 0", a)
	}
}

// TestCounterLosesNothingAcrossFlushes: refusals counted by 4 goroutines
// while flushes run are all handed over, none twice.
func TestCounterLosesNothingAcrossFlushes(t *testing.T) {
	c := NewCounter()
	st := &memCounts{}
	const workers, each = 4, 20000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.Refused("org", "k"+strconv.Itoa((w+i)%3), i%10 == 0)
			}
		}()
	}
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			default:
				_ = c.Flush(context.Background(), st, time.Now(), nil)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-flushed
	// Two more flushes: the last period's counts and the retired tallies.
	_ = c.Flush(context.Background(), st, time.Now(), nil)
	_ = c.Flush(context.Background(), st, time.Now(), nil)
	var refusals, limited int
	for _, rc := range st.got {
		refusals += rc.Refusals
		limited += rc.RateLimited
	}
	if refusals != workers*each || limited != workers*each/10 {
		t.Fatalf("flushed %d refusals (%d rate limited), want %d (%d)", refusals, limited, workers*each, workers*each/10)
	}
}

// TestCounterRetiresQuietSubjects: a subject without refusals for
// retireAfter leaves the published table (it does not grow for ever); its
// next refusal is counted all the same.
func TestCounterRetiresQuietSubjects(t *testing.T) {
	c := NewCounter()
	st := &memCounts{}
	t0 := time.Now()
	c.Refused("org", "k1", false)
	for _, d := range []time.Duration{0, time.Second, retireAfter + 2*time.Second} {
		_ = c.Flush(context.Background(), st, t0.Add(d), nil)
	}
	if n := len(*c.table.Load()); n != 0 {
		t.Fatalf("%d subjects in the table after %v without refusals, want 0", n, retireAfter)
	}
	c.Refused("org", "k1", false)
	_ = c.Flush(context.Background(), st, t0.Add(retireAfter+3*time.Second), nil)
	if len(st.got) != 2 || st.got[0].Refusals != 1 || st.got[1].Refusals != 1 {
		t.Fatalf("flushed %+v, want one refusal twice", st.got)
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

// BenchmarkCounterRefused is the cost a refusal adds to the hot path, for
// a subject already published by a flush (every subject refused in the
// last minute), from parallel goroutines on one subject (one contended
// atomic add).
func BenchmarkCounterRefused(b *testing.B) {
	c := NewCounter()
	c.Refused("org", "key", false)
	_ = c.Flush(context.Background(), &memCounts{}, time.Now(), nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Refused("org", "key", false)
		}
	})
}
