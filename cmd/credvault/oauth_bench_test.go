package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"credvault/internal/oauth"
)

// BenchmarkProxyOAuthVsStatic measures a proxied call with a fresh OAuth
// access token against one with a static value of the same length, to the
// same loopback upstream, interleaved call by call in one run, and reports
// oauth/static as the ratio of total static latency to total OAuth latency
// (>= 0.95 means an OAuth call costs at most 1/0.95 of a static one). Each
// iteration is 1000 pairs of calls from 8 workers; -benchtime=2x is enough.
func BenchmarkProxyOAuthVsStatic(b *testing.B) {
	e := newOAuthEnv(b, time.Hour, 1, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"balance","available":[{"amount":1000,"currency":"usd"}]}`)
	}))
	b.Cleanup(up.Close)
	host := strings.TrimPrefix(up.URL, "http://")
	inst := e.insts[0]
	oauthID := e.cl.createCredential(inst, e.owner, map[string]any{"name": "oauth", "kind": "oauth2", "oauth_app_id": e.appID,
		"grant": "client_credentials", "base_url": up.URL, "allowed_hosts": []string{host}})["id"].(string)
	// A static value as long as the access token, so that injection and
	// scrubbing do the same work and only the OAuth machinery differs.
	tokenLen := len(e.as.IssuedTokens()[0])
	value := ("sk_bench_" + strings.Repeat("0123456789abcdef", 16))[:tokenLen]
	static := e.cl.createCredential(inst, e.owner, map[string]any{"name": "static", "placement": "bearer",
		"value": value, "base_url": up.URL, "allowed_hosts": []string{host}})["id"].(string)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	call := func(id string) time.Duration {
		req, _ := http.NewRequest("GET", inst.url+"/v1/proxy/"+id+"/v1/balance", nil)
		req.Header.Set("X-API-Key", e.owner)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	// Every worker alternates the two kinds call by call (swapping which
	// goes first), so that both see the same machine, caches and load.
	const workers, pairs = 8, 1000
	round := func() (st, ot time.Duration) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s, o time.Duration
				for i := 0; i < pairs/workers; i++ {
					if (i+w)%2 == 0 {
						s += call(static)
						o += call(oauthID)
					} else {
						o += call(oauthID)
						s += call(static)
					}
				}
				mu.Lock()
				st, ot = st+s, ot+o
				mu.Unlock()
			}()
		}
		wg.Wait()
		return st, ot
	}
	round() // warm caches and connections
	b.ResetTimer()
	var st, ot time.Duration
	for i := 0; i < b.N; i++ {
		s, o := round()
		st, ot = st+s, ot+o
	}
	b.StopTimer()
	b.ReportMetric(float64(st)/float64(ot), "oauth/static")
	b.ReportMetric(float64(ot.Nanoseconds())/float64(b.N*pairs), "ns/oauth-call")
	b.ReportMetric(float64(st.Nanoseconds())/float64(b.N*pairs), "ns/static-call")
}

// TestOAuthRefreshManyExpiring seeds N client_credentials connections
// (default 200; CREDVAULT_OAUTH_BENCH_N=10000 for the figure) of
// 1 h tokens that all expire within the next minute (so all are due),
// then runs the proactive refresh as the job does: every one must be
// refreshed before it expires, with at most the configured 8 token
// requests in flight at the provider, and their tokens encrypted in
// transit batches (at least 10 tokens a request on average).
func TestOAuthRefreshManyExpiring(t *testing.T) {
	t.Parallel()
	n := 200
	if v := os.Getenv("CREDVAULT_OAUTH_BENCH_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	e := newOAuthEnv(t, time.Hour, 1, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	inst := e.insts[0]
	var orgID string
	if err := inst.s.db.Get(&orgID, `SELECT id FROM orgs WHERE name = 'acme'`); err != nil {
		t.Fatal(err)
	}
	// Seed with SQL: the access tokens are placeholders nobody decrypts
	// (a client_credentials refresh asks for a new token outright).
	ids := make([]string, n)
	expires := make([]time.Time, n)
	now := time.Now().UTC()
	for i := range ids {
		ids[i] = uuid.NewString()
		expires[i] = now.Add(10*time.Second + time.Duration(i)*50*time.Second/time.Duration(n))
	}
	if _, err := inst.s.db.Exec(`
		INSERT INTO credentials (id, org_id, name, service, placement, base_url, allowed_hosts, ciphertext, key_version, hint, kind)
		SELECT id, $2, 'seeded', 'custom', 'bearer', '', '{127.0.0.1}', 'vault:v1:c2VlZA==', 1, 'oauth2', 'oauth2'
		FROM unnest($1::uuid[]) AS id`, pq.StringArray(ids), orgID); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.s.db.Exec(`
		INSERT INTO credential_oauth (credential_id, org_id, app_id, grant_type, scopes, status, expires_at, refresh_at, token_version)
		SELECT v.id, $3, $4, 'client_credentials', '{read}', 'connected', v.exp, v.exp - interval '6 minutes', 1
		FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, exp)`, pq.StringArray(ids), pq.Array(expires), orgID, e.appID); err != nil {
		t.Fatal(err)
	}
	const encrypts = `credvault_vault_requests_total{operation="encrypt",outcome="ok"}`
	encryptsBefore := scrape(t, e.cl, inst)[encrypts]
	r := &oauth.Refresher{Service: inst.s.oauth}
	start := time.Now()
	for {
		m, err := r.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m == 0 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatal("refresh still running after 2 minutes")
		}
	}
	// The instance's own refresh job may hold the last batches (its first
	// run comes once a leader is elected): wait for them to be written.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var busy int
		if err := inst.s.db.Get(&busy, `SELECT count(*) FROM credential_oauth WHERE status = 'refreshing'`); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still refreshing a minute after the run", busy)
		}
	}
	elapsed := time.Since(start)
	var rows []struct {
		ID  string    `db:"credential_id"`
		At  time.Time `db:"last_refreshed_at"`
		Ver int64     `db:"token_version"`
	}
	if err := inst.s.db.Select(&rows, `SELECT credential_id, last_refreshed_at, token_version FROM credential_oauth
		WHERE credential_id = ANY($1::uuid[])`, pq.StringArray(ids)); err != nil {
		t.Fatal(err)
	}
	exp := map[string]time.Time{}
	for i, id := range ids {
		exp[id] = expires[i]
	}
	late, worst := 0, time.Duration(1<<62)
	for _, row := range rows {
		if row.Ver != 2 {
			t.Fatalf("credential refreshed %d times, want once", row.Ver-1)
		}
		if slack := exp[row.ID].Sub(row.At); slack < worst {
			worst = slack
		}
		if !row.At.Before(exp[row.ID]) {
			late++
		}
	}
	encryptCalls := scrape(t, e.cl, inst)[encrypts] - encryptsBefore
	t.Logf("%d connections expiring within 60 s: all refreshed in %v (%.0f/s), token requests %d, max in flight at the provider %d, least time left before an expiry %v, late %d, transit encrypt requests %.0f",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), e.as.ClientGrants.Load()-0, e.as.MaxInFlight.Load(), worst.Round(time.Millisecond), late, encryptCalls)
	// Batches: one transit batch encryption for many tokens, not one each.
	if encryptCalls > float64(n)/10 {
		t.Errorf("%.0f transit encrypt requests for %d tokens: not batched", encryptCalls, n)
	}
	if late > 0 || len(rows) != n {
		t.Fatalf("%d of %d refreshed after they expired", late, n)
	}
	if e.as.MaxInFlight.Load() > 8 {
		t.Fatalf("provider concurrency %d exceeds the setting 8", e.as.MaxInFlight.Load())
	}
}
