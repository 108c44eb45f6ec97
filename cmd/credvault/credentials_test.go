package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/vault"
)

const plantedValue = "sk_live_51PLANTEDsecretVALUEzz9Q"

// principalOf turns a key into the Principal its requests carry, for
// calling a service directly (the injector's path, until it has a route).
func principalOf(t testing.TB, inst *instance, key string) context.Context {
	t.Helper()
	v, err := inst.s.verifier.Verify(context.Background(), key)
	if err != nil || v.Key == nil {
		t.Fatalf("verify: %v %v", v.Code, err)
	}
	k := v.Key
	return credvault.WithPrincipal(context.Background(), &credvault.Principal{OrgID: k.OrgID, UserID: k.UserID, KeyID: k.ID, Kind: k.Kind, Role: k.Role, Scopes: k.Scopes})
}

func (cl *cluster) createCredential(inst *instance, key string, body map[string]any) map[string]any {
	cl.t.Helper()
	r := cl.as(key, "POST", inst.url+"/v1/credentials", body)
	if r.status != 201 {
		cl.t.Fatalf("create credential: %d %s", r.status, r.body)
	}
	return r.json(cl.t)
}

func TestCredentialValueIsEncryptedAndWriteOnly(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	c := cl.createCredential(a, owner, map[string]any{"name": "Stripe prod", "service": "stripe", "value": plantedValue})
	id := c["id"].(string)
	if c["placement"] != "bearer" || c["base_url"] != "https://api.stripe.com" || fmt.Sprint(c["allowed_hosts"]) != "[api.stripe.com]" {
		t.Fatalf("preset not applied: %v", c)
	}
	if c["hint"] != "••••"+plantedValue[len(plantedValue)-4:] {
		t.Fatalf("hint = %v", c["hint"])
	}
	var ciphertext, row string
	if err := a.s.db.Get(&ciphertext, `SELECT ciphertext FROM credentials WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if err := a.s.db.Get(&row, `SELECT row_to_json(c)::text FROM credentials c WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ciphertext, "vault:v1:") || strings.Contains(row, plantedValue) || strings.Contains(row, plantedValue[8:20]) {
		t.Fatalf("stored row: %s", row)
	}
	// Rotation keeps the id and changes only the ciphertext.
	rotated := plantedValue + "ROTATED"
	if r := cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": rotated, "name": "Stripe"}); r.status != 200 || r.json(t)["id"] != id {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	_, value, err := a.s.creds.UseCredential(principalOf(t, a, owner), id)
	if err != nil || value.Reveal() != rotated {
		t.Fatalf("use after rotation: %v", err)
	}
	// Every route answers without the value.
	cl.as(owner, "GET", a.url+"/v1/credentials/"+id, nil)
	cl.as(owner, "GET", a.url+"/v1/credentials", nil)
	cl.as(owner, "GET", a.url+"/v1/credentials/"+id+"/usage", nil)
	cl.as(owner, "PUT", a.url+"/v1/credentials/"+id+"/sharing", map[string]any{"mode": "team"})
	cl.as(owner, "GET", a.url+"/v1/audit", nil)
	cl.as(owner, "POST", a.url+"/v1/admin/rewrap", nil)
	metrics := cl.call("GET", a.url+"/metrics", nil, nil)
	var audit []string
	_ = a.s.db.Select(&audit, `SELECT row_to_json(a)::text FROM audit_events a WHERE org_id = $1`, res.OrgID)
	for where, text := range map[string]string{
		"responses": cl.allResponses(), "logs": a.logs.String(), "audit": strings.Join(audit, "\n"), "metrics": string(metrics.body),
	} {
		for _, v := range []string{plantedValue, rotated, plantedValue[3:20]} {
			if strings.Contains(text, v) {
				t.Errorf("the credential value appears in %s", where)
			}
		}
		if strings.Contains(text, ciphertext) {
			t.Errorf("the ciphertext appears in %s", where)
		}
	}
}

// TestMovedCiphertextDoesNotDecrypt copies a ciphertext into another row
// (same org, and another org): Vault refuses it, because the derivation
// context names the org and the row.
func TestMovedCiphertextDoesNotDecrypt(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	body := map[string]any{"name": "x", "placement": "header", "param_name": "X-Api-Token", "allowed_hosts": []string{"api.example.com"}}
	body["value"] = "value-of-A-0001"
	src := cl.createCredential(a, owner, body)["id"].(string)
	body["value"] = "value-of-B-0002"
	dst := cl.createCredential(a, owner, body)["id"].(string)
	body["value"] = "value-of-C-0003"
	foreign := cl.createCredential(a, other, body)["id"].(string)
	for name, target := range map[string]string{"same org": dst, "other org": foreign} {
		if _, err := a.s.db.Exec(`UPDATE credentials SET ciphertext = (SELECT ciphertext FROM credentials WHERE id = $1) WHERE id = $2`, src, target); err != nil {
			t.Fatal(err)
		}
		key := map[string]string{"same org": owner, "other org": other}[name]
		_, v, err := a.s.creds.UseCredential(principalOf(t, a, key), target)
		if !errors.Is(err, vault.ErrIntegrity) {
			t.Fatalf("%s: use = %v, %v; want ErrIntegrity", name, v.IsZero(), err)
		}
	}
	if _, v, err := a.s.creds.UseCredential(principalOf(t, a, owner), src); err != nil || v.Reveal() != "value-of-A-0001" {
		t.Fatalf("source row: %v", err)
	}
}

// TestVaultDownWritesNothing stops Vault (a proxy in front of it starts
// dropping connections): create and rotate answer 503 and leave the
// database as it was.
func TestVaultDownWritesNothing(t *testing.T) {
	cl := newCluster(t, nil)
	down := cl.vaultSwitch()
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	id := cl.createCredential(a, owner, map[string]any{"name": "kept", "service": "openai", "value": "sk-original-value-123"})["id"].(string)
	var before string
	_ = a.s.db.Get(&before, `SELECT ciphertext FROM credentials WHERE id = $1`, id)
	count := func() (n int) {
		_ = a.s.db.Get(&n, `SELECT count(*) FROM credentials WHERE org_id = $1`, res.OrgID)
		return n
	}
	audits := func() (n int) {
		_ = a.s.db.Get(&n, `SELECT count(*) FROM audit_events WHERE org_id = $1`, res.OrgID)
		return n
	}
	rows, events := count(), audits()

	down.Store(true)
	r := cl.as(owner, "POST", a.url+"/v1/credentials", map[string]any{"name": "new", "service": "openai", "value": "sk-never-stored-456"})
	if r.status != 503 || r.errCode(t) != "unavailable" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("create with vault down: %d %s Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	r = cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "sk-rotated-never-789"})
	if r.status != 503 {
		t.Fatalf("rotate with vault down: %d %s", r.status, r.body)
	}
	// Key checks and proxied calls still work from caches: the instance
	// stays in the load balancer, and says what is down.
	if rr := cl.call("GET", a.url+"/readyz", nil, nil); rr.status != 200 || !strings.Contains(string(rr.body), `"degraded":["vault"]`) {
		t.Fatalf("readyz with vault down: %d %s", rr.status, rr.body)
	}
	if rr := cl.call("GET", a.url+"/readyz?strict=1", nil, nil); rr.status != 503 || !strings.Contains(string(rr.body), "vault") {
		t.Fatalf("strict readyz with vault down: %d %s", rr.status, rr.body)
	}
	var after string
	_ = a.s.db.Get(&after, `SELECT ciphertext FROM credentials WHERE id = $1`, id)
	if count() != rows || after != before || audits() != events {
		t.Fatalf("vault down changed the database: rows %d->%d, ciphertext changed %v, audit %d->%d", rows, count(), after != before, events, audits())
	}
	down.Store(false)
	if r := cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "sk-rotated-now-000"}); r.status != 200 {
		t.Fatalf("rotate after vault is back: %d", r.status)
	}
}

func TestCredentialAuthorizationMatrix(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, otherOrg := cl.bootstrap(a, "globex")
	user := func(email, role string) (string, string) {
		r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": email, "role": role})
		if r.status != 201 {
			t.Fatalf("user: %d %s", r.status, r.body)
		}
		id := r.json(t)["id"].(string)
		_, key := cl.createKey(a, owner, map[string]any{"name": email, "scopes": []string{"credentials:read", "credentials:write", "credentials:use"}, "user_id": id})
		return id, key
	}
	_, admin := user("admin@acme.test", "admin")
	_, creator := user("creator@acme.test", "member")
	useID, useKey := user("use@acme.test", "member")
	manageID, manageKey := user("manage@acme.test", "member")
	_, noShare := user("none@acme.test", "member")
	sharing := map[string]any{"mode": "members", "members": []map[string]string{
		{"user_id": useID, "permission": "use"}, {"user_id": manageID, "permission": "manage"},
	}}
	newCred := func() string {
		return cl.createCredential(a, creator, map[string]any{"name": "shared", "service": "sendgrid", "value": "SG.matrix-value-0001", "sharing": sharing})["id"].(string)
	}
	id := newCred()

	type op func(key, id string) int
	ops := []struct {
		name string
		do   op
	}{
		{"get", func(k, id string) int { return cl.as(k, "GET", a.url+"/v1/credentials/"+id, nil).status }},
		{"list", func(k, id string) int {
			r := cl.as(k, "GET", a.url+"/v1/credentials", nil)
			if r.status == 200 && strings.Contains(string(r.body), id) {
				return 200
			}
			return 404
		}},
		{"update", func(k, id string) int {
			return cl.as(k, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"name": "renamed-" + k[len(k)-6:]}).status
		}},
		{"rotate", func(k, id string) int {
			return cl.as(k, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "SG.rotated-value-0002"}).status
		}},
		{"share", func(k, id string) int {
			return cl.as(k, "PUT", a.url+"/v1/credentials/"+id+"/sharing", sharing).status
		}},
		{"use", func(k, id string) int {
			_, _, err := a.s.creds.UseCredential(principalOf(t, a, k), id)
			switch credvault.ErrorCode(err) {
			case "":
				return 200
			case credvault.ENOTFOUND:
				return 404
			case credvault.EFORBIDDEN:
				return 403
			}
			return 500
		}},
		{"delete", func(k, _ string) int {
			return cl.as(k, "DELETE", a.url+"/v1/credentials/"+newCred(), nil).status
		}},
	}
	actors := []struct {
		name string
		key  string
		want []int // get, list, update, rotate, share, use, delete
	}{
		{"org owner", owner, []int{200, 200, 200, 200, 200, 200, 204}},
		{"org admin", admin, []int{200, 200, 200, 200, 200, 200, 204}},
		{"creator", creator, []int{200, 200, 200, 200, 200, 200, 204}},
		{"member with use", useKey, []int{200, 200, 403, 403, 403, 200, 403}},
		{"member with manage", manageKey, []int{200, 200, 200, 200, 200, 200, 403}},
		{"member without share", noShare, []int{404, 404, 404, 404, 404, 404, 404}},
		{"other org", otherOrg, []int{404, 404, 404, 404, 404, 404, 404}},
	}
	for _, actor := range actors {
		for i, o := range ops {
			if got := o.do(actor.key, id); got != actor.want[i] {
				t.Errorf("%s %s: %d, want %d", actor.name, o.name, got, actor.want[i])
			}
		}
	}
	// Team sharing: every member may use, none may manage.
	if r := cl.as(creator, "PUT", a.url+"/v1/credentials/"+id+"/sharing", map[string]any{"mode": "team"}); r.status != 200 {
		t.Fatalf("team: %d", r.status)
	}
	if got := ops[5].do(noShare, id); got != 200 {
		t.Errorf("team member use: %d", got)
	}
	if got := ops[2].do(noShare, id); got != 403 {
		t.Errorf("team member update: %d", got)
	}
	// Unsharing takes effect at once.
	if r := cl.as(creator, "PUT", a.url+"/v1/credentials/"+id+"/sharing", map[string]any{"mode": "personal"}); r.status != 200 {
		t.Fatalf("personal: %d", r.status)
	}
	if got := ops[5].do(useKey, id); got != 404 {
		t.Errorf("use after unshare: %d", got)
	}
	var actions []string
	_ = a.s.db.Select(&actions, `SELECT DISTINCT action FROM audit_events WHERE resource_id = $1 ORDER BY action`, id)
	if strings.Join(actions, ",") != "credential.create,credential.rotate,credential.share,credential.unshare,credential.update" {
		t.Errorf("audit actions on the credential: %v", actions)
	}
}

func TestCredentialBadInputWritesNothing(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	count := func() (n int) {
		_ = a.s.db.Get(&n, `SELECT count(*) FROM credentials WHERE org_id = $1`, res.OrgID)
		return n
	}
	ok := map[string]any{"name": "n", "placement": "header", "param_name": "X-Api-Token", "value": "v-123456", "allowed_hosts": []string{"api.example.com"}}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name    string
		body    map[string]any
		wantMsg string
	}{
		{"no name", with("name", nil), `"name"`},
		{"no value", with("value", nil), `"value"`},
		{"empty value", with("value", ""), `"value"`},
		{"value of 3 bytes", with("value", "abc"), `"value" must be at least 8 bytes`},
		{"value of 7 bytes", with("value", "v-12345"), `"value" must be at least 8 bytes`},
		{"credvault's key header X-API-Key", with("param_name", "X-API-Key"), `param_name`},
		{"credvault's key header in another case", with("param_name", "x-api-key"), `param_name`},
		{"no placement", with("placement", nil), `placement`},
		{"unknown placement", with("placement", "cookie"), `"placement"`},
		{"CR/LF in header name", with("param_name", "X-Api\r\nX-Evil: 1"), `param_name`},
		{"CR/LF in value", with("value", "abc\r\nX-Evil: 1"), `value`},
		{"CR/LF in value prefix", with("value_prefix", "Token\r\n"), `value_prefix`},
		{"reserved header Host", with("param_name", "Host"), `param_name`},
		{"reserved header Content-Length", with("param_name", "content-length"), `param_name`},
		{"bare wildcard", with("allowed_hosts", []string{"*"}), `allowed_hosts`},
		{"wildcard over a public suffix", with("allowed_hosts", []string{"*.com"}), `allowed_hosts`},
		{"host with scheme", with("allowed_hosts", []string{"https://api.example.com"}), `allowed_hosts`},
		{"base_url outside allowed_hosts", with("base_url", "https://evil.example.net"), `base_url`},
		{"base_url not http", with("base_url", "ftp://api.example.com"), `base_url`},
		{"base_url with a dot segment", with("base_url", "https://api.example.com/a/..;/b"), `base_url`},
		{"bad sharing mode", with("sharing", map[string]any{"mode": "public"}), `mode`},
		{"share with unknown user", with("sharing", map[string]any{"mode": "members", "members": []map[string]string{{"user_id": "00000000-0000-0000-0000-000000000001", "permission": "use"}}}), `sharing.members`},
		{"bad test path", with("test_request", map[string]any{"method": "GET", "path": "http://evil/"}), `test_request.path`},
		{"unknown field", with("secret", "x"), `unknown field "secret"`},
		{"bad service name", with("service", "Stripe Live!"), `"service"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cl.as(owner, "POST", a.url+"/v1/credentials", tc.body)
			if r.status != 400 || !strings.Contains(r.errMessage(t), tc.wantMsg) {
				t.Fatalf("got %d %q, want 400 naming %s", r.status, r.errMessage(t), tc.wantMsg)
			}
			if strings.Contains(string(r.body), "abc\r\n") || strings.Contains(string(r.body), "v-123456") {
				t.Fatalf("the value is echoed: %s", r.body)
			}
		})
	}
	// Invalid UTF-8 in a JSON string (json.Marshal would have replaced it).
	raw := json.RawMessage("{\"name\":\"caf\xe9\",\"placement\":\"header\",\"param_name\":\"X-Api-Token\",\"value\":\"v-123456\",\"allowed_hosts\":[\"api.example.com\"]}")
	if r := cl.as(owner, "POST", a.url+"/v1/credentials", raw); r.status != 400 || !strings.Contains(r.errMessage(t), "not valid UTF-8") {
		t.Fatalf("invalid UTF-8: %d %s", r.status, r.body)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d credentials written by bad input", n)
	}
	// A credential without allowed hosts can be stored but not used.
	id := cl.createCredential(a, owner, with("allowed_hosts", nil))["id"].(string)
	_, _, err := a.s.creds.UseCredential(principalOf(t, a, owner), id)
	if credvault.ErrorReason(err) != "credential_not_usable" || credvault.ErrorCode(err) != credvault.EINVALID || !strings.Contains(credvault.ErrorMessage(err), "allowed_hosts") {
		t.Fatalf("use without allowed_hosts: %v", err)
	}
	// Bad updates change nothing either.
	var before string
	_ = a.s.db.Get(&before, `SELECT row_to_json(c)::text FROM credentials c WHERE id = $1`, id)
	for _, body := range []map[string]any{
		{"param_name": "Host"}, {"value": "x\ny"}, {"allowed_hosts": []string{"*"}}, {}, {"placement": "query", "param_name": "bad name"},
		{"value": "abc"}, {"value": "v-12345"}, {"param_name": "X-API-Key", "value": "v-12345678"},
	} {
		if r := cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, body); r.status != 400 {
			t.Errorf("PATCH %v: %d %s", body, r.status, r.body)
		}
	}
	var after string
	_ = a.s.db.Get(&after, `SELECT row_to_json(c)::text FROM credentials c WHERE id = $1`, id)
	if after != before {
		t.Fatalf("bad updates changed the row")
	}
}

func TestDeleteProtectionUsageAndAudit(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	id := cl.createCredential(a, owner, map[string]any{"name": "gh", "service": "github", "value": "ghp_abcdefghijklmnop"})["id"].(string)
	now := time.Now()
	err := a.s.store.RecordUsage(context.Background(), []credvault.Usage{
		{CredentialID: id, OrgID: res.OrgID, WorkflowID: "wf-billing", NodeID: "n1", UserID: &res.UserID, DestinationHost: "api.github.com", Status: 200, LatencyMS: 12, CreatedAt: now.Add(-time.Hour)},
		{CredentialID: id, OrgID: res.OrgID, WorkflowID: "wf-billing", NodeID: "n2", DestinationHost: "api.github.com", Status: 401, LatencyMS: 9, CreatedAt: now},
		{CredentialID: id, OrgID: res.OrgID, WorkflowID: "wf-old", DestinationHost: "api.github.com", Status: 200, CreatedAt: now.Add(-40 * 24 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	usage := cl.as(owner, "GET", a.url+"/v1/credentials/"+id+"/usage?limit=2", nil).json(t)
	if len(usage["data"].([]any)) != 2 || usage["next_cursor"] == nil {
		t.Fatalf("usage page: %v", usage)
	}
	r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+id, nil)
	if r.status != 409 || r.errCode(t) != "credential_in_use" {
		t.Fatalf("delete in use: %d %s", r.status, r.body)
	}
	wfs := r.json(t)["error"].(map[string]any)["details"].(map[string]any)["workflows"].([]any)
	if len(wfs) != 1 || wfs[0].(map[string]any)["workflow_id"] != "wf-billing" || wfs[0].(map[string]any)["uses"].(float64) != 2 {
		t.Fatalf("workflows in 409: %v (the 40-day-old use must not count)", wfs)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+id+"?force=maybe", nil); r.status != 400 {
		t.Fatalf("force=maybe: %d", r.status)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+id+"?force=true", nil); r.status != 204 {
		t.Fatalf("forced delete: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "GET", a.url+"/v1/credentials/"+id, nil); r.status != 404 {
		t.Fatalf("after delete: %d", r.status)
	}
	audit := cl.as(owner, "GET", a.url+"/v1/audit?resource_type=credential&resource_id="+id, nil)
	var actions []string
	for _, e := range audit.json(t)["data"].([]any) {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	if strings.Join(actions, ",") != "credential.delete,credential.create" {
		t.Fatalf("audit actions %v", actions)
	}
	page1 := cl.as(owner, "GET", a.url+"/v1/audit?limit=1", nil).json(t)
	page2 := cl.as(owner, "GET", a.url+"/v1/audit?limit=1&cursor="+page1["next_cursor"].(string), nil).json(t)
	if page1["data"].([]any)[0].(map[string]any)["id"] == page2["data"].([]any)[0].(map[string]any)["id"] {
		t.Fatalf("audit pages overlap")
	}
	if r := cl.as(owner, "GET", a.url+"/v1/audit?cursor=x", nil); r.status != 400 {
		t.Fatalf("bad audit cursor: %d", r.status)
	}
}

func TestCredentialListingAndServices(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "member"})
	mID := r.json(t)["id"].(string)
	_, member := cl.createKey(a, owner, map[string]any{"name": "m", "scopes": []string{"credentials:read", "credentials:write"}, "user_id": mID})
	services := cl.as(member, "GET", a.url+"/v1/services", nil)
	for _, want := range []string{"stripe", "openai", "sendgrid", "github", "slack"} {
		if !strings.Contains(string(services.body), `"id":"`+want+`"`) {
			t.Errorf("no %s preset", want)
		}
	}
	mine := cl.createCredential(a, member, map[string]any{"name": "mine", "service": "slack", "value": "xoxb-123456789"})["id"].(string)
	// X-API-Key is credvault's own auth header by default, and also the
	// header many APIs take their key in: the proxy strips the caller's
	// credvault key before injecting, so a credential may use it.
	anthropic := cl.createCredential(a, owner, map[string]any{"name": "claude", "service": "anthropic", "value": "sk-ant-123456789"})
	if anthropic["param_name"] != "x-api-key" && anthropic["param_name"] != "X-Api-Key" {
		t.Errorf("anthropic preset: %v", anthropic)
	}
	got := cl.as(owner, "GET", a.url+"/v1/credentials/"+anthropic["id"].(string), nil).json(t)
	if fmt.Sprint(got["test_request"].(map[string]any)["headers"]) != "map[anthropic-version:2023-06-01]" {
		t.Errorf("test request headers not kept: %v", got["test_request"])
	}
	shared := cl.createCredential(a, owner, map[string]any{"name": "team", "service": "stripe", "value": "sk_test_123456789", "sharing": map[string]any{"mode": "team"}})["id"].(string)
	hidden := cl.createCredential(a, owner, map[string]any{"name": "private", "service": "stripe", "value": "sk_test_987654321"})["id"].(string)
	list := func(q string) string { return string(cl.as(member, "GET", a.url+"/v1/credentials"+q, nil).body) }
	for q, want := range map[string][]string{
		"":                   {mine, shared},
		"?scope=mine":        {mine},
		"?scope=shared":      {shared},
		"?service=stripe":    {shared},
		"?service=github":    {},
		"?scope=all&limit=1": {shared}, // newest first
	} {
		got := list(q)
		for _, id := range []string{mine, shared, hidden} {
			if strings.Contains(got, id) != contains(want, id) {
				t.Errorf("list%s: has %s = %v, want %v", q, id, !contains(want, id), contains(want, id))
			}
		}
	}
	if r := cl.as(member, "GET", a.url+"/v1/credentials?scope=everything", nil); r.status != 400 {
		t.Errorf("bad scope: %d", r.status)
	}
	// The owner (an org owner) sees all three.
	all := string(cl.as(owner, "GET", a.url+"/v1/credentials", nil).body)
	for _, id := range []string{mine, shared, hidden} {
		if !strings.Contains(all, id) {
			t.Errorf("owner does not see %s", id)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestEditNeverRestoresAnOlderCiphertext: an edit that loaded the
// credential before a rotation committed must not write the old
// ciphertext back.
func TestEditNeverRestoresAnOlderCiphertext(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	id := cl.createCredential(a, owner, map[string]any{"name": "c", "service": "openai", "value": "sk-before-rotation-1"})["id"].(string)
	stale, err := a.s.store.FindCredentialByID(context.Background(), res.OrgID, id)
	if err != nil {
		t.Fatal(err)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "sk-after-rotation-22"}); r.status != 200 {
		t.Fatalf("rotate: %d", r.status)
	}
	stale.Name = "renamed by a slow editor"
	if err := a.s.store.UpdateCredential(context.Background(), stale, false); err != nil {
		t.Fatal(err)
	}
	_, v, err := a.s.creds.UseCredential(principalOf(t, a, owner), id)
	if err != nil || v.Reveal() != "sk-after-rotation-22" {
		t.Fatalf("after a racing edit the value is %v", err)
	}
}

// vaultSwitch puts a proxy in front of the cluster's Vault for the
// instances started after it; storing true makes the proxy drop every
// connection (Vault down), false lets them through again.
func (cl *cluster) vaultSwitch() *atomic.Bool {
	var down atomic.Bool
	target, _ := url.Parse(cl.vault.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	cl.t.Cleanup(proxy.Close)
	cl.env["VAULT_ADDR"] = proxy.URL
	return &down
}
