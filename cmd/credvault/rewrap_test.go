package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// cancelOnLine cancels a run after it printed n lines starting with
// prefix: a kill in the middle of a job.
type cancelOnLine struct {
	mu     sync.Mutex
	buf    strings.Builder
	prefix string
	n      int
	cancel context.CancelFunc
}

func (w *cancelOnLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Count(w.buf.String(), w.prefix) >= w.n && w.cancel != nil {
		w.cancel()
	}
	return len(p), nil
}

func (w *cancelOnLine) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestRewrapAfterRotation fills the table, rotates the transit key, kills
// `credvault rewrap` after its first batch, runs it again, and checks that
// the second run did only what was left, every row ends on the latest
// version, values are unchanged, and min_decryption_version can be raised.
func TestRewrapAfterRotation(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	ctx := principalOf(t, a, owner)
	const n = 250
	values := map[string]string{}
	for i := range n {
		v := fmt.Sprintf("sk_live_rewrap_value_%04d", i)
		c, err := a.s.creds.CreateCredential(ctx, credvault.CreateCredentialInput{
			Name: fmt.Sprint("c", i), Service: "stripe", Value: credvault.NewSecret(v),
		})
		if err != nil {
			t.Fatal(err)
		}
		values[c.ID] = v
	}
	if err := a.s.vault.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	onVersion := func(v int) (k int) {
		_ = a.s.db.Get(&k, `SELECT count(*) FROM credentials WHERE key_version = $1 AND ciphertext LIKE $2`, v, fmt.Sprintf("vault:v%d:%%", v))
		return k
	}
	if onVersion(1) != n {
		t.Fatalf("%d rows on v1 before rewrap, want %d", onVersion(1), n)
	}

	// First run: killed after its first batch of 100.
	runCtx, cancel := context.WithCancel(context.Background())
	out := &cancelOnLine{prefix: "rewrap: ", n: 1, cancel: cancel}
	err := run(runCtx, []string{"credvault", "rewrap", "--batch", "100"}, envOf(cl.env), out, io.Discard)
	cancel()
	if err == nil {
		t.Fatalf("the killed run finished anyway:\n%s", out.String())
	}
	doneFirst := onVersion(2)
	if doneFirst < 100 || doneFirst >= n || doneFirst%100 != 0 {
		t.Fatalf("after the killed run %d rows are on v2; want whole batches, fewer than %d", doneFirst, n)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("rewrap: 100/%d rows", n)) {
		t.Fatalf("no progress line:\n%s", out.String())
	}

	// Second run resumes: it only sees the rows left.
	var second strings.Builder
	if err := run(context.Background(), []string{"credvault", "rewrap", "--batch", "100", "--raise-min-version"}, envOf(cl.env), &second, io.Discard); err != nil {
		t.Fatalf("second run: %v\n%s", err, second.String())
	}
	left := n - doneFirst
	if !strings.Contains(second.String(), fmt.Sprintf("rewrap: %d/%d rows", left, left)) ||
		!strings.Contains(second.String(), fmt.Sprintf("rewrap done: %d rewrapped, 0 failed", left)) {
		t.Fatalf("second run did not resume with the %d rows left:\n%s", left, second.String())
	}
	if onVersion(2) != n {
		t.Fatalf("%d rows on v2, want all %d", onVersion(2), n)
	}
	if !strings.Contains(second.String(), "min_decryption_version raised to 2") {
		t.Fatalf("min version not raised:\n%s", second.String())
	}
	ki, err := a.s.vault.ReadKey(context.Background())
	if err != nil || ki.MinDecryptionVersion != 2 {
		t.Fatalf("key after raise: %+v %v", ki, err)
	}
	for id, want := range values {
		_, got, err := a.s.creds.UseCredential(ctx, id)
		if err != nil || got.Reveal() != want {
			t.Fatalf("%s after rewrap: %v", id, err)
		}
	}
	var audited int
	_ = a.s.db.Get(&audited, `SELECT count(*) FROM audit_events WHERE action = 'credential.rewrap'`)
	if audited < 2 {
		t.Fatalf("%d rewrap audit events, want one per run", audited)
	}

	// Nothing left: a third run is a no-op, and the API job (one org) too.
	var third strings.Builder
	if err := run(context.Background(), []string{"credvault", "rewrap"}, envOf(cl.env), &third, io.Discard); err != nil || !strings.Contains(third.String(), "rewrap done: 0 rewrapped") {
		t.Fatalf("third run: %v\n%s", err, third.String())
	}
	if r := cl.as(owner, "POST", a.url+"/v1/admin/rewrap", nil); r.status != 200 || r.json(t)["rewrapped"].(float64) != 0 {
		t.Fatalf("API rewrap: %d %s", r.status, r.body)
	}
	_ = res
	for _, args := range [][]string{{"--batch", "0"}, {"--batch", "250"}, {"extra"}} {
		if err := run(context.Background(), append([]string{"credvault", "rewrap"}, args...), envOf(cl.env), io.Discard, io.Discard); err == nil {
			t.Errorf("rewrap %v accepted", args)
		}
	}
}

// TestRewrapAPIIsOrgScoped: the API job rewraps the caller's org only and
// needs an owner's or admin's key with scope admin.
func TestRewrapAPIIsOrgScoped(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	for _, k := range []string{owner, other} {
		cl.createCredential(a, k, map[string]any{"name": "x", "service": "openai", "value": "sk-value-123456"})
	}
	if err := a.s.vault.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, weak := cl.createKey(a, owner, map[string]any{"name": "w", "scopes": []string{"credentials:write"}})
	if r := cl.as(weak, "POST", a.url+"/v1/admin/rewrap", nil); r.status != 403 {
		t.Fatalf("without scope admin: %d", r.status)
	}
	r := cl.as(owner, "POST", a.url+"/v1/admin/rewrap", nil)
	if r.status != 200 || r.json(t)["rewrapped"].(float64) != 1 {
		t.Fatalf("org rewrap: %d %s", r.status, r.body)
	}
	var v1 int
	_ = a.s.db.Get(&v1, `SELECT count(*) FROM credentials WHERE key_version = 1`)
	if v1 != 1 {
		t.Fatalf("%d rows left on v1, want the other org's one", v1)
	}
}

// TestThousandCredentialsThroughDefaultLimit seeds 1,000 credentials the
// way `credvault bench` does (batch encryption), rotates, and rewraps them
// all with `credvault rewrap` at its default batch size, against the dev
// transit server with OpenBao's default JSON string limit in force (or a
// real server with its own). Before batches were sized for that limit,
// both the seeding and the rewrap were refused.
func TestThousandCredentialsThroughDefaultLimit(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	ctx := context.Background()
	const n = 1000
	if err := seedCredentials(ctx, a.s.db, a.s.vault, res.OrgID, res.UserID, n, io.Discard); err != nil {
		t.Fatalf("seeding %d credentials: %v", n, err)
	}
	if err := a.s.vault.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"credvault", "rewrap"}, envOf(cl.env), &out, io.Discard); err != nil {
		t.Fatalf("rewrap: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("rewrap done: %d rewrapped, 0 failed", n)) {
		t.Fatalf("rewrap output:\n%s", out.String())
	}
	// Default batch: 200 rows per request, so five progress lines.
	if got := strings.Count(out.String(), "rewrap: "); got != n/credvault.DefaultRewrapBatch {
		t.Errorf("%d progress lines, want %d:\n%s", got, n/credvault.DefaultRewrapBatch, out.String())
	}
	var onV2 int
	_ = a.s.db.Get(&onV2, `SELECT count(*) FROM credentials WHERE key_version = 2 AND ciphertext LIKE 'vault:v2:%'`)
	if onV2 != n {
		t.Fatalf("%d rows on v2, want %d", onV2, n)
	}
	var ids []string
	_ = a.s.db.Select(&ids, `SELECT id FROM credentials ORDER BY id LIMIT 20`)
	pctx := principalOf(t, a, owner)
	for _, id := range ids {
		if _, v, err := a.s.creds.UseCredential(pctx, id); err != nil || !strings.HasPrefix(v.Reveal(), "sk_bench_value_") {
			t.Fatalf("%s after rewrap: %v", id, err)
		}
	}
}

// TestUndecryptableRowFailsRewrapAndUse: one stored ciphertext Vault
// refuses (copied from another row, so its derivation context is wrong).
// `credvault rewrap` rewraps the others, then ends with exit status 3 and
// a line counting the row still on the old version; using that credential
// answers 500 credential_undecryptable and writes an audit event naming
// it, with neither value nor ciphertext anywhere.
func TestUndecryptableRowFailsRewrapAndUse(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	const planted = "sk_live_undecryptable_planted_7q2w"
	var ids []string
	for i := range 9 {
		c := cl.createCredential(a, owner, map[string]any{"name": fmt.Sprint("c", i), "value": fmt.Sprintf("%s_%d", planted, i),
			"base_url": up.URL, "allowed_hosts": []string{up.HostP}, "placement": "bearer"})
		ids = append(ids, c["id"].(string))
	}
	bad := ids[4]
	var stolen string
	if err := a.s.db.Get(&stolen, `SELECT ciphertext FROM credentials WHERE id = $1`, ids[5]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.db.Exec(`UPDATE credentials SET ciphertext = $1 WHERE id = $2`, stolen, bad); err != nil {
		t.Fatal(err)
	}

	// Using it: a distinct code, an audit event, nothing secret.
	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+bad+"/x", nil)
	if r.status != 500 || !strings.Contains(string(r.body), `"code":"credential_undecryptable"`) || !strings.Contains(string(r.body), bad) {
		t.Fatalf("using the undecryptable credential: %d %s", r.status, r.body)
	}
	if len(up.requests()) != 0 {
		t.Fatal("the upstream was called without a value")
	}
	var data []string
	if err := a.s.db.Select(&data, `SELECT data::text FROM audit_events WHERE action = 'credential.undecryptable' AND resource_type = 'credential' AND resource_id = $1`, bad); err != nil || len(data) != 1 {
		t.Fatalf("audit events for %s: %v %v", bad, data, err)
	}
	for _, text := range []string{string(r.body), data[0], a.logs.String()} {
		if strings.Contains(text, planted) || strings.Contains(text, stolen[10:]) {
			t.Fatalf("a value or ciphertext leaked: %s", text)
		}
	}
	// The others still work.
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+ids[3]+"/x", nil); r.status != 200 {
		t.Fatalf("a healthy credential: %d %s", r.status, r.body)
	}

	if err := a.s.vault.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := run(context.Background(), []string{"credvault", "rewrap", "--raise-min-version"}, envOf(cl.env), &out, io.Discard)
	if err == nil || exitStatus(err) != exitRewrapIncomplete {
		t.Fatalf("rewrap with a failed row: err %v (status %d), want exit status 3\n%s", err, exitStatus(err), out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "rewrap incomplete: 8 rewrapped, 1 failed") || !strings.Contains(last, "1 row(s) are still on key versions older than 2") {
		t.Fatalf("final line: %q", last)
	}
	if strings.Contains(out.String(), "every row is on key version") {
		t.Fatalf("claims success:\n%s", out.String())
	}
	if ki, err := a.s.vault.ReadKey(context.Background()); err != nil || ki.MinDecryptionVersion != 1 {
		t.Fatalf("min_decryption_version raised despite a failed row: %+v %v", ki, err)
	}
	// A clean run exits 0 (status 1 errors are unchanged).
	if _, err := a.s.db.Exec(`DELETE FROM credentials WHERE id = $1`, bad); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"credvault", "rewrap"}, envOf(cl.env), &out, io.Discard); err != nil || !strings.Contains(out.String(), "every row is on key version 2") {
		t.Fatalf("clean run: %v\n%s", err, out.String())
	}
	if exitStatus(errors.New("x")) != 1 {
		t.Fatal("a plain error must exit 1")
	}
}

// TestRewrapCoversOAuth: after a transit key rotation, `credvault rewrap`
// moves OAuth access tokens, refresh tokens and app client secrets to the
// new key version too; a refresh token Vault refuses makes it exit 3 with
// that row counted as left. With min_decryption_version raised, the
// rewrapped tokens and secret still refresh and proxy.
func TestRewrapCoversOAuth(t *testing.T) {
	e := newOAuthEnv(t, time.Hour, 1, nil)
	// The start run of the refresh job, if late, would claim the
	// connections made due below (see TestOAuthEventsWithStatusChange).
	waitStartRuns(t, e.cl.dbURL, "oauth_refresh")
	a := e.insts[0]
	code := e.connect()
	machine := e.create("client_credentials")["id"].(string)
	bad := e.connect()
	var badOriginal, stolen string
	if err := a.s.db.Get(&badOriginal, `SELECT refresh_ciphertext FROM credential_oauth WHERE credential_id = $1`, bad); err != nil {
		t.Fatal(err)
	}
	if err := a.s.db.Get(&stolen, `SELECT refresh_ciphertext FROM credential_oauth WHERE credential_id = $1`, code); err != nil {
		t.Fatal(err)
	}
	// Another row's refresh token: Vault refuses it under bad's context.
	if _, err := a.s.db.Exec(`UPDATE credential_oauth SET refresh_ciphertext = $1 WHERE credential_id = $2`, stolen, bad); err != nil {
		t.Fatal(err)
	}
	if err := a.s.vault.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	versions := func() (access, refresh, secret string) {
		t.Helper()
		err := a.s.db.QueryRow(`SELECT
			(SELECT string_agg(DISTINCT split_part(ciphertext, ':', 2) || '/' || key_version, ',') FROM credentials WHERE id IN ($1, $2)),
			(SELECT string_agg(DISTINCT split_part(refresh_ciphertext, ':', 2), ',') FROM credential_oauth WHERE credential_id = $1),
			(SELECT split_part(secret_ciphertext, ':', 2) || '/' || secret_key_version FROM oauth_apps WHERE id = $3)`,
			code, machine, e.appID).Scan(&access, &refresh, &secret)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if ac, rt, sec := versions(); ac != "v1/1" || rt != "v1" || sec != "v1/1" {
		t.Fatalf("before rewrap: access %s, refresh %s, secret %s", ac, rt, sec)
	}

	var out strings.Builder
	err := run(context.Background(), []string{"credvault", "rewrap", "--raise-min-version"}, envOf(e.cl.env), &out, io.Discard)
	if err == nil || exitStatus(err) != exitRewrapIncomplete {
		t.Fatalf("rewrap with a refused refresh token: err %v (status %d), want exit status 3\n%s", err, exitStatus(err), out.String())
	}
	if !strings.Contains(out.String(), "1 failed") || !strings.Contains(out.String(), "1 row(s) are still on key versions older than 2") {
		t.Fatalf("rewrap output:\n%s", out.String())
	}
	if ac, rt, sec := versions(); ac != "v2/2" || rt != "v2" || sec != "v2/2" {
		t.Fatalf("after rewrap: access %s, refresh %s, secret %s; want all on v2", ac, rt, sec)
	}
	if strings.Contains(a.logs.String(), stolen[10:]) {
		t.Fatal("a ciphertext appears in the log")
	}

	// Put the right refresh token back: a second run finishes, raises the
	// minimum, and everything still works on the new version alone.
	if _, err := a.s.db.Exec(`UPDATE credential_oauth SET refresh_ciphertext = $1 WHERE credential_id = $2`, badOriginal, bad); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"credvault", "rewrap", "--raise-min-version"}, envOf(e.cl.env), &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "rewrap done: 1 rewrapped") || !strings.Contains(out.String(), "min_decryption_version raised to 2") {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	for _, id := range []string{code, machine} {
		if p := e.proxy(0, id); p.status != 200 {
			t.Fatalf("proxied call after rewrap: %d %s", p.status, p.body)
		}
	}
	// A refresh decrypts the rewrapped refresh token and client secret.
	before := e.as.TokenRequests.Load()
	if _, err := a.s.db.Exec(`UPDATE credential_oauth SET refresh_at = now() - interval '1 second' WHERE credential_id IN ($1, $2, $3)`, code, machine, bad); err != nil {
		t.Fatal(err)
	}
	if n, err := a.s.oauth.RefreshDue(context.Background(), 10); err != nil || n != 3 {
		t.Fatalf("refresh after rewrap: %d %v", n, err)
	}
	for _, id := range []string{code, machine, bad} {
		if o := e.oauthOf(id); o["status"] != "connected" || o["last_error"] != "" {
			t.Fatalf("%s after a refresh on the rewrapped tokens: %v", id, o)
		}
		if p := e.proxy(0, id); p.status != 200 {
			t.Fatalf("proxied call after the refresh: %d %s", p.status, p.body)
		}
	}
	if got := e.as.TokenRequests.Load() - before; got != 3 {
		t.Fatalf("token requests = %d, want 3", got)
	}
	e.noTokenLeaks()
}
