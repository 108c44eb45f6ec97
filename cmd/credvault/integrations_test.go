package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitForStatus calls fn until it answers want (and, when code is set, that
// error code), failing after limit; it returns how long that took.
func waitForStatus(t *testing.T, what string, limit time.Duration, want int, code string, fn func() response) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := fn()
		if r.status == want && (code == "" || r.errCode(t) == code) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: still %d %s after %s, want %d %s", what, r.status, r.body, time.Since(start), want, code)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// feedReasons reads the whole revocation feed and returns the reasons of
// the entries for jti, in order.
func feedReasons(t *testing.T, cl *cluster, inst *instance, key, jti string) []string {
	t.Helper()
	r := cl.as(key, "GET", inst.url+"/v1/api-keys/revocations?since=0&limit=1000", nil)
	if r.status != 200 {
		t.Fatalf("revocation feed: %d %s", r.status, r.body)
	}
	var out []string
	for _, e := range r.json(t)["data"].([]any) {
		m := e.(map[string]any)
		if m["jti"] == jti {
			out = append(out, m["reason"].(string))
		}
	}
	return out
}

// TestIntegrationDisableReachesEveryInstance runs two instances on one
// database. An opaque and a JWT key of one integration, each with a rate
// limit, are used (and cached) on B; disabling the integration through A
// makes B answer 403 integration_disabled for both, on the API, on
// forward-auth and in POST /v1/api-keys/verify, within 1 s; the feed
// tells offline verifiers. Enabling it restores both, with the rate-limit
// window as it was (the refused calls took nothing from it), and revokes
// nothing.
func TestIntegrationDisableReachesEveryInstance(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, map[string]string{"CREDVAULT_ISSUER": "https://credvault.acme.test"})
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, gateway := cl.createKey(a, owner, map[string]any{"name": "gateway", "scopes": []string{"keys:verify"}})
	r := cl.as(owner, "POST", a.url+"/v1/integrations", map[string]any{"name": "support bot", "agent": "claude", "environment": "production", "tags": map[string]string{"team": "cx"}})
	if r.status != 201 {
		t.Fatalf("create integration: %d %s", r.status, r.body)
	}
	integ := r.json(t)
	iid := integ["id"].(string)
	if integ["enabled"] != true || integ["agent"] != "claude" {
		t.Fatalf("integration: %v", integ)
	}
	limit := map[string]any{"requests": 100, "window_seconds": 3600}
	keys := map[string]string{}
	ids := map[string]string{}
	for _, format := range []string{"opaque", "jwt"} {
		id, key := cl.createKey(a, owner, map[string]any{"name": format, "scopes": []string{"keys:read"}, "format": format,
			"integration_id": iid, "rate_limit": limit})
		keys[format], ids[format] = key, id
	}
	got := cl.as(owner, "GET", a.url+"/v1/api-keys?integration_id="+iid, nil).json(t)["data"].([]any)
	if len(got) != 2 {
		t.Fatalf("keys of the integration: %d, want 2", len(got))
	}
	var worst time.Duration
	for round := range 3 {
		remaining := map[string]string{}
		for _, format := range []string{"opaque", "jwt"} { // cached on B
			r := cl.as(keys[format], "GET", b.url+"/v1/whoami", nil)
			if r.status != 200 {
				t.Fatalf("B before disable (%s): %d %s", format, r.status, r.body)
			}
			remaining[format] = r.header.Get("RateLimit-Remaining")
		}
		start := time.Now()
		if r := cl.as(owner, "PATCH", a.url+"/v1/integrations/"+iid, map[string]any{"enabled": false}); r.status != 200 || r.json(t)["enabled"] != false {
			t.Fatalf("disable on A: %d %s", r.status, r.body)
		}
		for _, format := range []string{"opaque", "jwt"} {
			key := keys[format]
			d := waitForStatus(t, "B after disable ("+format+")", time.Second, 403, "integration_disabled", func() response {
				r := cl.as(key, "GET", b.url+"/v1/whoami", nil)
				if r.status == 200 { // accepted before the notification arrived
					remaining[format] = r.header.Get("RateLimit-Remaining")
				}
				return r
			})
			for range 5 { // refusals take nothing from the window
				cl.as(key, "GET", b.url+"/v1/whoami", nil)
			}
			if el := time.Since(start); el > worst {
				worst = el
			}
			t.Logf("round %d %s: B answers 403 integration_disabled %s after the disable on A (%s of polling)", round, format, time.Since(start).Round(time.Millisecond), d.Round(time.Millisecond))
			if r := cl.call("GET", b.url+"/v1/auth/check", map[string]string{"X-API-Key": key}, nil); r.status != 403 || r.errCode(t) != "integration_disabled" {
				t.Fatalf("forward-auth on B (%s): %d %s", format, r.status, r.body)
			}
			v := cl.as(gateway, "POST", b.url+"/v1/api-keys/verify", map[string]any{"key": key})
			if m := v.json(t); v.status != 200 || m["valid"] != false || m["code"] != "INTEGRATION_DISABLED" || m["key_id"] != ids[format] {
				t.Fatalf("verify on B (%s): %d %s", format, v.status, v.body)
			}
		}
		if got := feedReasons(t, cl, a, gateway, ids["jwt"]); len(got) != 2*round+1 || got[len(got)-1] != "disabled" {
			t.Fatalf("feed for the JWT key after disable: %v", got)
		}
		if got := feedReasons(t, cl, a, gateway, ids["opaque"]); len(got) != 0 {
			t.Fatalf("feed holds the opaque key (offline verifiers only check JWTs): %v", got)
		}
		start = time.Now()
		if r := cl.as(owner, "PATCH", a.url+"/v1/integrations/"+iid, map[string]any{"enabled": true}); r.status != 200 {
			t.Fatalf("enable on A: %d %s", r.status, r.body)
		}
		for _, format := range []string{"opaque", "jwt"} {
			key := keys[format]
			var first response
			waitForStatus(t, "B after enable ("+format+")", time.Second, 200, "", func() response {
				first = cl.as(key, "GET", b.url+"/v1/whoami", nil)
				return first
			})
			before, _ := strconv.Atoi(remaining[format])
			if got := first.header.Get("RateLimit-Remaining"); got != strconv.Itoa(before-1) {
				t.Fatalf("%s: RateLimit-Remaining %s after enable, want %d (the window as it was, less this call)", format, got, before-1)
			}
			t.Logf("round %d %s: B accepts the key again %s after the enable on A", round, format, time.Since(start).Round(time.Millisecond))
		}
		if got := feedReasons(t, cl, a, gateway, ids["jwt"]); got[len(got)-1] != "enabled" {
			t.Fatalf("feed for the JWT key after enable: %v", got)
		}
	}
	t.Logf("slowest disable seen on B: %s", worst.Round(time.Millisecond))
	for _, format := range []string{"opaque", "jwt"} {
		k := cl.as(owner, "GET", a.url+"/v1/api-keys/"+ids[format], nil).json(t)
		if k["status"] != "active" || k["revoked_at"] != nil || k["enabled"] != true || k["integration_id"] != iid {
			t.Fatalf("%s key after the rounds: %v", format, k)
		}
	}
	if worst > time.Second {
		t.Fatalf("slowest propagation %s, want within 1s", worst)
	}
	// The refusals are counted by code on B, scraped without a key in sight
	// (the scrape also goes into allResponses, searched below).
	const metric = `credvault_key_verifications_total{code="INTEGRATION_DISABLED"}`
	if n := scrape(t, cl, b)[metric]; n < 6 {
		t.Errorf("%s = %v on B, want at least 6 (one forward-auth and one verify per key and round)", metric, n)
	}
	// Every switch is audited as such.
	audit := cl.as(owner, "GET", a.url+"/v1/audit?action=integration.disable&resource_id="+iid, nil)
	if n := len(audit.json(t)["data"].([]any)); n != 3 {
		t.Errorf("%d integration.disable events, want 3", n)
	}
	for _, key := range keys {
		if n := strings.Count(cl.allResponses(), key); n != 1 {
			t.Errorf("a key appears in %d responses, want 1 (its creation)", n)
		}
		for _, inst := range []*instance{a, b} {
			if strings.Contains(inst.logs.String(), key) {
				t.Errorf("a key is in the logs")
			}
		}
	}
}

// TestAPIKeyDisableEnable: a key alone is switched off (403
// api_key_disabled on the other instance within 1 s, DISABLED from
// verify) and on again; listings show and filter the switch; a member
// cannot undo a manager's switch; a revoked key cannot be switched.
func TestAPIKeyDisableEnable(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, map[string]string{"CREDVAULT_ISSUER": "https://credvault.acme.test"})
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, gateway := cl.createKey(a, owner, map[string]any{"name": "gateway", "scopes": []string{"keys:verify"}})
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "name": "M", "role": "member"})
	memberID := r.json(t)["id"].(string)
	_, member := cl.createKey(a, owner, map[string]any{"name": "m", "scopes": []string{"keys:read", "keys:write"}, "user_id": memberID})
	id, key := cl.createKey(a, member, map[string]any{"name": "mine", "scopes": []string{"keys:read"}, "format": "jwt",
		"rate_limit": map[string]any{"requests": 5, "window_seconds": 3600}})
	if r := cl.as(key, "GET", b.url+"/v1/whoami", nil); r.status != 200 || r.header.Get("RateLimit-Remaining") != "4" {
		t.Fatalf("B before: %d %q", r.status, r.header.Get("RateLimit-Remaining"))
	}
	remaining := 4
	start := time.Now()
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/disable", nil); r.status != 200 || r.json(t)["enabled"] != false || r.json(t)["disabled_at"] == nil {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	waitForStatus(t, "B after key disable", time.Second, 403, "api_key_disabled", func() response {
		r := cl.as(key, "GET", b.url+"/v1/whoami", nil)
		if r.status == 200 { // accepted before the notification arrived
			remaining, _ = strconv.Atoi(r.header.Get("RateLimit-Remaining"))
		}
		return r
	})
	t.Logf("B answers 403 api_key_disabled %s after the disable on A", time.Since(start).Round(time.Millisecond))
	if r := cl.call("GET", b.url+"/v1/auth/check", map[string]string{"Authorization": "Bearer " + key}, nil); r.status != 403 || r.errCode(t) != "api_key_disabled" {
		t.Fatalf("forward-auth: %d %s", r.status, r.body)
	}
	if v := cl.as(gateway, "POST", b.url+"/v1/api-keys/verify", map[string]any{"key": key}).json(t); v["code"] != "DISABLED" || v["valid"] != false {
		t.Fatalf("verify: %v", v)
	}
	// Listings show and filter the switch.
	off := cl.as(owner, "GET", a.url+"/v1/api-keys?enabled=false", nil).json(t)["data"].([]any)
	if len(off) != 1 || off[0].(map[string]any)["id"] != id {
		t.Fatalf("enabled=false lists %v", off)
	}
	// The member may not undo the owner's switch; disabling again is a no-op.
	if r := cl.as(member, "POST", a.url+"/v1/api-keys/"+id+"/enable", nil); r.status != 403 || r.errCode(t) != "forbidden_role" {
		t.Fatalf("member enables the owner's switch: %d %s", r.status, r.body)
	}
	if r := cl.as(member, "POST", a.url+"/v1/api-keys/"+id+"/disable", nil); r.status != 200 {
		t.Fatalf("disable again: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/enable", nil); r.status != 200 || r.json(t)["enabled"] != true {
		t.Fatalf("owner enables: %d %s", r.status, r.body)
	}
	var first response
	waitForStatus(t, "B after key enable", time.Second, 200, "", func() response {
		first = cl.as(key, "GET", b.url+"/v1/whoami", nil)
		return first
	})
	if got := first.header.Get("RateLimit-Remaining"); got != strconv.Itoa(remaining-1) {
		t.Fatalf("RateLimit-Remaining %s after enable, want %d (refusals took nothing from the window)", got, remaining-1)
	}
	// A member switches their own key off and on.
	if r := cl.as(member, "POST", a.url+"/v1/api-keys/"+id+"/disable", nil); r.status != 200 {
		t.Fatalf("member disables: %d %s", r.status, r.body)
	}
	if r := cl.as(member, "POST", a.url+"/v1/api-keys/"+id+"/enable", nil); r.status != 200 {
		t.Fatalf("member enables their own switch: %d %s", r.status, r.body)
	}
	if got := feedReasons(t, cl, a, gateway, id); strings.Join(got, ",") != "disabled,enabled,disabled,enabled" {
		t.Fatalf("feed: %v", got)
	}
	// Switching with a body, or a revoked key, is refused.
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/disable", map[string]any{"why": "x"}); r.status != 400 || !strings.Contains(r.errMessage(t), "why") {
		t.Fatalf("disable with unknown field: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/disable", nil); r.status != 409 {
		t.Fatalf("disable a revoked key: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/00000000-0000-0000-0000-000000000000/enable", nil); r.status != 404 {
		t.Fatalf("enable an unknown key: %d", r.status)
	}
	audit := cl.as(owner, "GET", a.url+"/v1/audit?resource_id="+id, nil).json(t)["data"].([]any)
	actions := map[string]int{}
	for _, e := range audit {
		actions[e.(map[string]any)["action"].(string)]++
	}
	if actions["api_key.disable"] != 2 || actions["api_key.enable"] != 2 {
		t.Fatalf("audit actions %v, want 2 disable and 2 enable (no-ops not audited)", actions)
	}
	if n := strings.Count(cl.allResponses(), key); n != 1 {
		t.Errorf("the key appears in %d responses, want 1 (its creation)", n)
	}
}

// TestIntegrationsManage: the listing's filters and keyset pages, roles,
// org isolation, moving keys, deleting, and usage per day.
func TestIntegrationsManage(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	mk := func(body map[string]any) string {
		t.Helper()
		r := cl.as(owner, "POST", a.url+"/v1/integrations", body)
		if r.status != 201 {
			t.Fatalf("create %v: %d %s", body, r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	i1 := mk(map[string]any{"name": "billing", "environment": "production", "tags": map[string]string{"team": "fin"}})
	i2 := mk(map[string]any{"name": "support", "agent": "claude", "enabled": false})
	i3 := mk(map[string]any{"name": "Support-EU", "environment": "staging", "tags": map[string]string{"team": "cx"}})
	list := func(key, q string) []string {
		t.Helper()
		r := cl.as(key, "GET", a.url+"/v1/integrations"+q, nil)
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", q, r.status, r.body)
		}
		var out []string
		for _, e := range r.json(t)["data"].([]any) {
			out = append(out, e.(map[string]any)["id"].(string))
		}
		return out
	}
	for q, want := range map[string][]string{
		"":                        {i3, i2, i1},
		"?enabled=false":          {i2},
		"?enabled=true":           {i3, i1},
		"?environment=production": {i1},
		"?agent=claude":           {i2},
		"?tag=team":               {i3, i1},
		"?tag=team%3Dcx":          {i3},
		"?q=support":              {i3, i2},
		"?q=%25":                  nil,
	} {
		if got := list(owner, q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("list %q: got %v, want %v", q, got, want)
		}
	}
	// Keyset pages.
	p1 := cl.as(owner, "GET", a.url+"/v1/integrations?limit=2", nil).json(t)
	cur, _ := p1["next_cursor"].(string)
	if cur == "" || len(p1["data"].([]any)) != 2 {
		t.Fatalf("first page: %v", p1)
	}
	if got := list(owner, "?limit=2&cursor="+cur); fmt.Sprint(got) != fmt.Sprint([]string{i1}) {
		t.Fatalf("second page: %v", got)
	}
	// Another org sees none of them.
	if got := list(other, ""); len(got) != 0 {
		t.Fatalf("other org lists %v", got)
	}
	if r := cl.as(other, "GET", a.url+"/v1/integrations/"+i1, nil); r.status != 404 {
		t.Fatalf("other org reads: %d", r.status)
	}
	if r := cl.as(other, "PATCH", a.url+"/v1/integrations/"+i1, map[string]any{"enabled": false}); r.status != 404 {
		t.Fatalf("other org disables: %d", r.status)
	}
	if r := cl.as(other, "POST", a.url+"/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "integration_id": i1}); r.status != 400 || !strings.Contains(r.errMessage(t), "integration_id") {
		t.Fatalf("other org's key into it: %d %s", r.status, r.body)
	}
	// A member reads them but does not change them.
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "name": "M", "role": "member"})
	_, member := cl.createKey(a, owner, map[string]any{"name": "m", "scopes": []string{"keys:read", "keys:write"}, "user_id": r.json(t)["id"]})
	if got := list(member, ""); len(got) != 3 {
		t.Fatalf("member lists %v", got)
	}
	for _, req := range []struct{ method, path string }{{"POST", ""}, {"PATCH", "/" + i1}, {"DELETE", "/" + i1}} {
		if r := cl.as(member, req.method, a.url+"/v1/integrations"+req.path, map[string]any{"name": "n"}); r.status != 403 {
			t.Errorf("member %s: %d %s", req.method, r.status, r.body)
		}
	}
	// Keys move between integrations; a member cannot take their key out
	// of a disabled one.
	kid, _ := cl.createKey(a, member, map[string]any{"name": "mk", "scopes": []string{"keys:read"}, "integration_id": i2})
	if r := cl.as(member, "PATCH", a.url+"/v1/api-keys/"+kid, map[string]any{"integration_id": nil}); r.status != 403 {
		t.Fatalf("member moves out of a disabled integration: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/api-keys/"+kid, map[string]any{"integration_id": i1}); r.status != 200 || r.json(t)["integration_id"] != i1 {
		t.Fatalf("owner moves the key: %d %s", r.status, r.body)
	}
	if got := cl.as(owner, "GET", a.url+"/v1/api-keys?integration_id=none", nil).json(t)["data"].([]any); len(got) != 2 {
		t.Fatalf("keys of no integration: %d, want 2 (owner's and member's bootstrap keys)", len(got))
	}
	// A roll keeps the integration; a disabled key is not rolled.
	r = cl.as(owner, "POST", a.url+"/v1/api-keys/"+kid+"/roll", map[string]any{"grace_seconds": 0})
	if r.status != 201 || r.json(t)["integration_id"] != i1 {
		t.Fatalf("roll: %d %s", r.status, r.body)
	}
	kid = r.json(t)["id"].(string)
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+kid+"/disable", nil)
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+kid+"/roll", nil); r.status != 409 || !strings.Contains(r.errMessage(t), "disabled") {
		t.Fatalf("roll a disabled key: %d %s", r.status, r.body)
	}
	// Delete: refused while a usable key belongs to it.
	if r := cl.as(owner, "DELETE", a.url+"/v1/integrations/"+i1, nil); r.status != 409 || r.errCode(t) != "integration_has_keys" {
		t.Fatalf("delete with a key: %d %s", r.status, r.body)
	}
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+kid+"/revoke", nil)
	if r := cl.as(owner, "DELETE", a.url+"/v1/integrations/"+i1, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "GET", a.url+"/v1/integrations/"+i1, nil); r.status != 404 {
		t.Fatalf("deleted integration: %d", r.status)
	}
	if k := cl.as(owner, "GET", a.url+"/v1/api-keys/"+kid, nil).json(t); k["integration_id"] != nil {
		t.Fatalf("revoked key still names the deleted integration: %v", k)
	}
	// PATCH: rename, clear the agent, retag; nothing to change is a 400.
	if r := cl.as(owner, "PATCH", a.url+"/v1/integrations/"+i2, map[string]any{"name": "helpdesk", "agent": nil, "tags": map[string]string{"a": "b"}}); r.status != 200 || r.json(t)["agent"] != nil || r.json(t)["name"] != "helpdesk" {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/integrations/"+i2, map[string]any{}); r.status != 400 {
		t.Fatalf("empty patch: %d", r.status)
	}
}

// TestIntegrationUsage: verifications are counted per integration and
// day, by outcome, and read through GET /v1/integrations/{id}/usage.
func TestIntegrationUsage(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "POST", a.url+"/v1/integrations", map[string]any{"name": "bot"})
	iid := r.json(t)["id"].(string)
	_, key := cl.createKey(a, owner, map[string]any{"name": "k", "scopes": []string{"keys:read"}, "integration_id": iid,
		"rate_limit": map[string]any{"requests": 3, "window_seconds": 3600}})
	for range 4 { // 3 valid, 1 rate-limited
		cl.as(key, "GET", a.url+"/v1/whoami", nil)
	}
	cl.as(owner, "PATCH", a.url+"/v1/integrations/"+iid, map[string]any{"enabled": false})
	waitForStatus(t, "disabled", time.Second, 403, "integration_disabled", func() response { return cl.as(key, "GET", a.url+"/v1/whoami", nil) })
	cl.as(key, "GET", a.url+"/v1/whoami", nil) // one more refusal, at least 2 in all
	deadline := time.Now().Add(5 * time.Second)
	for {
		u := cl.as(owner, "GET", a.url+"/v1/integrations/"+iid+"/usage?days=7", nil)
		if u.status != 200 {
			t.Fatalf("usage: %d %s", u.status, u.body)
		}
		m := u.json(t)
		days := m["days"].([]any)
		total := m["total"].(map[string]any)
		reasons := total["refused_by_reason"].(map[string]any)
		if len(days) == 7 && total["valid"] == float64(3) && total["rate_limited"] == float64(1) && reasons["integration_disabled"].(float64) >= 2 && total["refused"] == reasons["integration_disabled"] {
			today := days[6].(map[string]any)
			if today["day"] != time.Now().UTC().Format("2006-01-02") || today["valid"] != float64(3) {
				t.Fatalf("today: %v", today)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage never showed the calls: %s", u.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, q := range []string{"?days=0", "?days=91", "?days=x", "?day=7"} {
		if r := cl.as(owner, "GET", a.url+"/v1/integrations/"+iid+"/usage"+q, nil); r.status != 400 {
			t.Errorf("usage%s: %d", q, r.status)
		}
	}
	if r := cl.as(owner, "GET", a.url+"/v1/integrations/00000000-0000-0000-0000-000000000000/usage", nil); r.status != http.StatusNotFound {
		t.Errorf("usage of an unknown integration: %d", r.status)
	}
}
