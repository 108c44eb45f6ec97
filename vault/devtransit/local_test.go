package devtransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// testSealed: a sealed server answers 503 "Vault is sealed" to every call,
// with or without a token, and sys/health reports it.
func testSealed(t *testing.T) {
	s, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	ctx := context.Background()
	s.Seal()
	for _, cl := range []*api.Client{c, clone(t, c)} {
		res := raw(t, cl, "PUT", "transit/encrypt/k", map[string]any{"plaintext": ptA})
		if res.status != 503 || !slices.Equal(errorsOf(res.body), []string{"Vault is sealed"}) {
			t.Errorf("sealed encrypt: got %d %s, want 503 Vault is sealed", res.status, res.text)
		}
	}
	h, err := c.Sys().HealthWithContext(ctx)
	if err != nil || !h.Sealed || !h.Initialized {
		t.Errorf("sealed health: got %+v %v", h, err)
	}
	res := raw(t, c, "GET", "sys/health", nil)
	if res.status != 503 || res.body["sealed"] != true || res.body["cluster_id"] != nil {
		t.Errorf("sealed health: got %d %s", res.status, res.text)
	}
	hr, err := http.Get(addr + "/v1/sys/health?sealedcode=299")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 299 {
		t.Errorf("sealedcode=299: got %d", hr.StatusCode)
	}
	s.Unseal()
	res = raw(t, c, "GET", "sys/health", nil)
	if res.status != 200 || res.body["sealed"] != false || res.body["cluster_id"] == "" {
		t.Errorf("unsealed health: got %d %s", res.status, res.text)
	}
	hr, err = http.Get(addr + "/v1/sys/health?activecode=204")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 204 {
		t.Errorf("activecode=204: got %d", hr.StatusCode)
	}
	e := &tenv{c: c, mount: "transit"}
	encrypt(t, e, "k", ptA, "")
}

// testAppRole: login, wrong credentials, TTL, renewal up to the max TTL,
// and expiry, on a fake clock.
func testAppRole(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s, addr := startLocal(t, Options{AppRole: &AppRole{RoleID: "role-1", SecretID: "secret-1", TokenTTL: time.Minute, TokenMaxTTL: 150 * time.Second}})
	s.now = clock.Now
	ctx := context.Background()
	c := newClient(t, addr, "")
	c.ClearToken()
	for _, creds := range []map[string]any{{"role_id": "role-1", "secret_id": "wrong"}, {"role_id": "wrong", "secret_id": "secret-1"}} {
		_, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", creds)
		wantAPIError(t, err, 400, "invalid role or secret ID")
	}
	_, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"secret_id": "secret-1"})
	wantAPIError(t, err, 400, "missing role_id")

	other, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": "role-1", "secret_id": "secret-1"})
	if err != nil {
		t.Fatalf("raw login: %v", err)
	}
	auth, err := approle.NewAppRoleAuth("role-1", &approle.SecretID{FromString: "secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := c.Auth().Login(ctx, auth)
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	a := sec.Auth
	if a == nil || !strings.HasPrefix(a.ClientToken, "hvs.") || a.LeaseDuration != 60 || !a.Renewable || !slices.Contains(a.Policies, "default") || a.Accessor == "" {
		t.Fatalf("login auth: got %+v", a)
	}
	e := &tenv{c: c, mount: "transit"}
	ct := encrypt(t, e, "k", ptA, "")
	res := raw(t, c, "GET", "sys/mounts", nil)
	if res.status != 403 || !slices.Equal(errorsOf(res.body), []string{"1 error occurred:\n\t* permission denied\n\n"}) {
		t.Errorf("approle token on sys/mounts: got %d %s", res.status, res.text)
	}
	lookupTTL := func(want int64) {
		t.Helper()
		ls, err := c.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			t.Fatalf("lookup-self: %v", err)
		}
		ttl, _ := ls.Data["ttl"].(json.Number).Int64()
		if ttl != want || ls.Data["renewable"] != true {
			t.Errorf("lookup-self: got ttl %d renewable %v, want ttl %d renewable true", ttl, ls.Data["renewable"], want)
		}
	}
	renew := func(wantLease int, wantWarning string) {
		t.Helper()
		r, err := c.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err != nil {
			t.Fatalf("renew-self: %v", err)
		}
		if r.Auth == nil || r.Auth.LeaseDuration != wantLease || r.Auth.ClientToken != a.ClientToken {
			t.Errorf("renew-self: got %+v, want lease %d", r.Auth, wantLease)
		}
		if (wantWarning == "") != (len(r.Warnings) == 0) || (wantWarning != "" && r.Warnings[0] != wantWarning) {
			t.Errorf("renew-self warnings: got %q, want %q", r.Warnings, wantWarning)
		}
	}
	lookupTTL(60)
	clock.Advance(30 * time.Second)
	lookupTTL(30)
	renew(60, "")
	lookupTTL(60)
	clock.Advance(50 * time.Second) // T+80: the unrenewed token expired at T+60
	res = raw(t, clone(t, c), "GET", "auth/token/lookup-self", nil)
	if res.status != 403 {
		t.Errorf("anonymous lookup-self: got %d", res.status)
	}
	expired := clone(t, c)
	expired.SetToken(other.Auth.ClientToken)
	res = raw(t, expired, "PUT", "transit/decrypt/k", map[string]any{"ciphertext": ct})
	if res.status != 403 || !slices.Equal(errorsOf(res.body), []string{wantBadTokenOpenBao}) {
		t.Errorf("expired token: got %d %s, want 403 %q", res.status, res.text, wantBadTokenOpenBao)
	}
	renew(60, "") // T+80, max at T+150: 70s left
	clock.Advance(50 * time.Second)
	renew(20, `TTL of "1m0s" exceeded the effective max_ttl of "20s"; TTL value is capped accordingly`)
	clock.Advance(19 * time.Second)
	lookupTTL(1)
	if got := decrypt(t, e, "k", ct, ""); got != ptA {
		t.Errorf("decrypt with renewed token: got %q", got)
	}
	clock.Advance(time.Second) // T+150: past the max TTL
	res = raw(t, c, "PUT", "transit/decrypt/k", map[string]any{"ciphertext": ct})
	if res.status != 403 || !slices.Equal(errorsOf(res.body), []string{wantBadTokenOpenBao}) {
		t.Errorf("token past max TTL: got %d %s, want 403 %q", res.status, res.text, wantBadTokenOpenBao)
	}
	_, err = c.Sys().ListMountsWithContext(ctx)
	if err == nil {
		t.Errorf("expired token listed mounts")
	}
}

// testBearer: the token is also accepted as "Authorization: Bearer".
func testBearer(t *testing.T) {
	_, addr := startLocal(t, Options{})
	for token, want := range map[string]int{testRootToken: 200, "wrong": 403} {
		req, err := http.NewRequest("PUT", addr+"/v1/transit/encrypt/k", strings.NewReader(`{"plaintext":"`+ptA+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var env map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("bearer %q: got %d, want %d", token, resp.StatusCode, want)
		}
		if want == 200 {
			for _, f := range []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"} {
				if _, ok := env[f]; !ok {
					t.Errorf("envelope lacks %q: %v", f, env)
				}
			}
			if env["mount_type"] != "transit" || env["wrap_info"] != nil || env["auth"] != nil {
				t.Errorf("envelope: got %v", env)
			}
		}
	}
}

// TestLogsHoldNoSecrets plants a plaintext and drives every kind of call
// with debug logging on, then searches the log for the plaintext (raw and
// base64), every ciphertext, the data key, the tokens and the secret ID.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	const secretID = "approle-secret-planted-7"
	_, addr := startLocal(t, Options{
		Logger:  debugLogger(&logs),
		DataDir: t.TempDir(),
		AppRole: &AppRole{RoleID: "role-planted", SecretID: secretID, TokenTTL: time.Hour},
	})
	planted := "sk_live_PLANTED_a1b2c3d4e5"
	pt := base64.StdEncoding.EncodeToString([]byte(planted))
	c := newClient(t, addr, testRootToken)
	e := &tenv{c: c, mount: "transit"}
	secrets := []string{planted, pt, testRootToken, secretID}

	ct := encrypt(t, e, "logged", pt, ctxA)
	secrets = append(secrets, ct, strings.TrimPrefix(ct, "vault:v1:"))
	if got := decrypt(t, e, "logged", ct, ctxA); got != pt {
		t.Fatalf("round trip: got %q", got)
	}
	e.mustWrite(t, "keys/logged/rotate", nil)
	rw := e.mustWrite(t, "rewrap/logged", map[string]any{"ciphertext": ct, "context": ctxA})
	secrets = append(secrets, rw.Data["ciphertext"].(string))
	dk := e.mustWrite(t, "datakey/plaintext/logged", map[string]any{"context": ctxA})
	secrets = append(secrets, dk.Data["plaintext"].(string), dk.Data["ciphertext"].(string))
	raw(t, c, "PUT", "transit/encrypt/logged", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": pt, "context": ctxA}, map[string]any{"plaintext": planted, "context": ctxA},
	}})
	_, _ = e.write(t, "decrypt/logged", map[string]any{"ciphertext": ct, "context": ctxB})
	login, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": "role-planted", "secret_id": secretID})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	secrets = append(secrets, login.Auth.ClientToken)
	_, _ = c.Logical().Write("auth/approle/login", map[string]any{"role_id": "role-planted", "secret_id": "wrong-" + secretID})

	out := logs.String()
	if !strings.Contains(out, "development-only") || !strings.Contains(out, `"level":"WARN"`) {
		t.Errorf("no development-only warning in the log:\n%s", out)
	}
	if !strings.Contains(out, "/v1/transit/encrypt/logged") {
		t.Errorf("request log lines missing; the search below would prove nothing:\n%s", out)
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(out, secret) {
			t.Errorf("log contains secret material %q", secret)
		}
	}
}

// TestLimits: batch_input is capped at 10,000 items and a body at 32 MiB.
func TestLimits(t *testing.T) {
	localOnly(t, "devtransit's own batch cap")
	_, addr := startLocal(t, Options{MaxRequestJSONStrings: -1})
	c := newClient(t, addr, testRootToken)
	items := make([]any, maxBatchItems+1)
	for i := range items {
		items[i] = map[string]any{"plaintext": ptA}
	}
	res := raw(t, c, "PUT", "transit/encrypt/k", map[string]any{"batch_input": items})
	if res.status != 400 || len(errorsOf(res.body)) != 1 || !strings.Contains(errorsOf(res.body)[0], "at most 10000") {
		t.Errorf("oversized batch: got %d %.200s", res.status, res.text)
	}
	if sec, _ := c.Logical().Read("transit/keys/k"); sec != nil {
		t.Errorf("an oversized batch created key k")
	}
	res = raw(t, c, "PUT", "transit/encrypt/k", map[string]any{"batch_input": items[:maxBatchItems]})
	if len(batchResults(t, res, 200)) != maxBatchItems {
		t.Errorf("a batch of exactly %d items was not fully answered", maxBatchItems)
	}
	big := strings.Repeat("A", maxBodyBytes)
	res = raw(t, c, "PUT", "transit/encrypt/k2", map[string]any{"plaintext": big})
	if res.status != 413 {
		t.Errorf("oversized body: got %d %.200s, want 413", res.status, res.text)
	}
	if sec, _ := c.Logical().Read("transit/keys/k2"); sec != nil {
		t.Errorf("an oversized body created key k2")
	}
}

// TestJSONStringLimit: like OpenBao's max_request_json_strings, the server
// counts every string of a body, keys included, and refuses more than its
// limit (1000 by default) with OpenBao's status and text, before anything
// is done.
func TestJSONStringLimit(t *testing.T) {
	localOnly(t, "sets devtransit's JSON string limit")
	const wantText = "refused JSON input due to high complexity: exceeded maximum number of strings"
	items := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"plaintext": ptA, "context": ctxA}
		}
		return out
	}
	_, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	// 1 + 249*4 = 997 strings, + "a":"b" = 999, + "n":1 = 1000: accepted.
	res := raw(t, c, "PUT", "transit/encrypt/k", map[string]any{"batch_input": items(249), "a": "b", "n": 1})
	if len(batchResults(t, res, 200)) != 249 {
		t.Fatalf("1000 strings: not answered in full")
	}
	// One string more ("n":"1"): refused, and nothing happens.
	res = raw(t, c, "PUT", "transit/encrypt/k2", map[string]any{"batch_input": items(249), "a": "b", "n": "1"})
	if res.status != 400 || !slices.Equal(errorsOf(res.body), []string{wantText}) {
		t.Errorf("1001 strings: got %d %.200s, want 400 %q", res.status, res.text, wantText)
	}
	if sec, _ := c.Logical().Read("transit/keys/k2"); sec != nil {
		t.Errorf("a refused body created key k2")
	}
	res = raw(t, c, "PUT", "transit/encrypt/k2", map[string]any{"batch_input": items(250)})
	if res.status != 400 || !slices.Equal(errorsOf(res.body), []string{wantText}) {
		t.Errorf("250 items with context: got %d %.200s, want 400", res.status, res.text)
	}
	// Configurable: a higher limit takes the 250 items, a negative none.
	for _, limit := range []int{1001 + 4, -1} {
		_, addr := startLocal(t, Options{MaxRequestJSONStrings: limit})
		c := newClient(t, addr, testRootToken)
		res := raw(t, c, "PUT", "transit/encrypt/k", map[string]any{"batch_input": items(250)})
		if len(batchResults(t, res, 200)) != 250 {
			t.Errorf("limit %d: 250 items not answered", limit)
		}
	}
}
