package main

import (
	"strings"
	"testing"
	"time"
)

// org is the cast of the "use without seeing" tests: an owner, an admin,
// three members (a `use` sharee, a `manage` sharee, one without a share),
// each holding a user key with scope admin, and the owner's runner.
type org struct {
	cl                    *cluster
	a                     *instance
	orgID                 string
	ownerID, adminID      string
	useID, manageID, noID string
	owner, admin          string // keys
	use, manage, none     string // keys
	runner                string // service key with credentials:resolve
}

func newOrg(t *testing.T, cl *cluster, a *instance) *org {
	t.Helper()
	res, owner := cl.bootstrap(a, "acme")
	o := &org{cl: cl, a: a, orgID: res.OrgID, ownerID: res.UserID, owner: owner}
	user := func(email, role string) (string, string) {
		u := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": email, "role": role}).json(t)
		id := u["id"].(string)
		_, key := cl.createKey(a, owner, map[string]any{"name": email, "scopes": []string{"admin"}, "user_id": id})
		return id, key
	}
	o.adminID, o.admin = user("admin@acme.test", "admin")
	o.useID, o.use = user("use@acme.test", "member")
	o.manageID, o.manage = user("manage@acme.test", "member")
	o.noID, o.none = user("none@acme.test", "member")
	_, o.runner = cl.createKey(a, owner, map[string]any{"name": "runner", "kind": "service", "scopes": []string{"credentials:use", "credentials:resolve"}})
	return o
}

// count runs a count(*) query.
func (o *org) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := o.a.s.db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// credentialState is everything of a stored credential an edit could change.
func (o *org) credentialState(t *testing.T, id string) string {
	t.Helper()
	var s string
	if err := o.a.s.db.Get(&s, `SELECT concat_ws('|', name, placement, param_name, value_prefix, username, base_url, allowed_hosts::text, ciphertext, sharing_mode, updated_at::text)
		FROM credentials WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNobodySeesAValue replays issue 9's cases 1, 2 and 5 and their
// variations: who asks (owner, admin, member with use, manage or nothing,
// user or service key) and where the value goes (header, query, bearer).
// Every refusal writes nothing but, for a resolve, its audit row; no
// member's response ever holds a value.
func TestNobodySeesAValue(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	o := newOrg(t, cl, a)
	good := newUpstream(t, nil)
	evil := newUpstream(t, nil)

	values := map[string]string{}
	creds := map[string]string{}
	shared := map[string]any{"mode": "members", "members": []map[string]string{
		{"user_id": o.useID, "permission": "use"}, {"user_id": o.manageID, "permission": "manage"}}}
	for _, pl := range []map[string]any{
		{"placement": "header", "param_name": "X-Secret"}, {"placement": "query", "param_name": "api_key"}, {"placement": "bearer"},
		{"placement": "basic", "username": "AC-planted-user"},
	} {
		name := pl["placement"].(string)
		values[name] = "sk_live_" + name + "_PLANTED_9f3a7c"
		body := map[string]any{"name": name, "value": values[name], "base_url": good.URL, "allowed_hosts": []string{good.HostP}, "sharing": shared}
		for k, v := range pl {
			body[k] = v
		}
		creds[name] = cl.createCredential(a, o.owner, body)["id"].(string)
	}
	values["personal"] = "sk_live_personal_PLANTED_51e0d2"
	creds["personal"] = cl.createCredential(a, o.owner, map[string]any{"name": "mine", "placement": "header", "param_name": "X-Secret",
		"value": values["personal"], "base_url": good.URL, "allowed_hosts": []string{good.HostP}})["id"].(string)
	_, adminService := cl.createKey(a, o.admin, map[string]any{"name": "admin-svc", "kind": "service", "scopes": []string{"admin"}})

	// Case 1 and 5: /v1/inject hands a value out only to a runner acting
	// for a user who may use the credential; every attempt is audited.
	type injectCase struct {
		name, key, acting, cred, url string
		status                       int
		outcome                      string
	}
	var injects []injectCase
	for _, pl := range []string{"header", "query", "bearer"} {
		injects = append(injects,
			injectCase{"owner user key with admin", o.owner, "", pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"admin user key with admin", o.admin, "", pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"use sharee with admin", o.use, "", pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"manage sharee with admin", o.manage, "", pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"user key naming an acting user", o.manage, o.useID, pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"admin's service key with admin", adminService, o.useID, pl, good.URL + "/x", 403, "insufficient_scope"},
			injectCase{"runner without acting user", o.runner, "", pl, good.URL + "/x", 400, "acting_user_required"},
			injectCase{"runner for a user without a share", o.runner, o.noID, pl, good.URL + "/x", 404, "not_found"},
			injectCase{"runner towards another host", o.runner, o.useID, pl, evil.URL + "/x", 403, "egress_denied"},
		)
	}
	injects = append(injects,
		injectCase{"runner for a member, owner's personal credential", o.runner, o.useID, "personal", good.URL + "/x", 404, "not_found"},
		injectCase{"admin user key, owner's personal credential", o.admin, "", "personal", good.URL + "/x", 403, "insufficient_scope"},
		injectCase{"runner for an unknown user", o.runner, "00000000-0000-0000-0000-000000000000", "header", good.URL + "/x", 400, "invalid"},
	)
	for _, tc := range injects {
		t.Run("inject/"+tc.cred+"/"+tc.name, func(t *testing.T) {
			before := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.resolve' AND resource_id = $1 AND data->>'outcome' = $2`, creds[tc.cred], tc.outcome)
			h := map[string]string{"X-API-Key": tc.key}
			if tc.acting != "" {
				h["X-Credvault-Acting-User"] = tc.acting
			}
			r := cl.call("POST", a.url+"/v1/inject", h, map[string]any{"credential_id": creds[tc.cred], "request": map[string]any{"url": tc.url}})
			if r.status != tc.status {
				t.Fatalf("got %d, want %d: %s", r.status, tc.status, r.body)
			}
			if strings.Contains(string(r.body), values[tc.cred]) {
				t.Fatalf("the value is in the response: %s", r.body)
			}
			after := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.resolve' AND resource_id = $1 AND data->>'outcome' = $2`, creds[tc.cred], tc.outcome)
			if after != before+1 {
				t.Fatalf("audit rows with outcome %s: %d -> %d, want one more", tc.outcome, before, after)
			}
		})
	}
	if n := evil.conns.Load(); n != 0 {
		t.Fatalf("the other host got %d connections", n)
	}
	// A refusal after the runner named its user records who it acted for,
	// the actor being that user.
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.resolve' AND data->>'outcome' = 'egress_denied'
		AND data->>'acting_user' = $1 AND actor_id = $1`, o.useID); n != 3 {
		t.Fatalf("egress refusals recorded for the acting user: %d, want 3", n)
	}

	// credentials:resolve is never on a user key, and only owners hand it
	// to a service key; refusals write nothing.
	_, keyRunner := cl.createKey(a, o.owner, map[string]any{"name": "key-runner", "kind": "service", "scopes": []string{"keys:write", "credentials:resolve"}})
	keysBefore := o.count(t, `SELECT count(*) FROM api_keys`)
	for _, tc := range []struct {
		name, key string
		body      map[string]any
		status    int
	}{
		{"owner: member's user key with resolve", o.owner, map[string]any{"name": "x", "scopes": []string{"credentials:use", "credentials:resolve"}, "user_id": o.useID}, 400},
		{"owner: own user key with resolve", o.owner, map[string]any{"name": "x", "scopes": []string{"credentials:resolve"}}, 400},
		{"admin: service key with resolve", o.admin, map[string]any{"name": "x", "kind": "service", "scopes": []string{"credentials:resolve"}}, 403},
		{"admin's service key: service key with resolve", adminService, map[string]any{"name": "x", "kind": "service", "scopes": []string{"credentials:resolve"}}, 403},
		{"member: own key with resolve", o.use, map[string]any{"name": "x", "scopes": []string{"credentials:resolve"}}, 400},
		{"runner: user key with resolve", keyRunner, map[string]any{"name": "x", "scopes": []string{"credentials:resolve"}, "user_id": o.useID}, 400},
	} {
		r := cl.as(tc.key, "POST", a.url+"/v1/api-keys", tc.body)
		if r.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
		if tc.status == 400 && !strings.Contains(r.errMessage(t), `"scopes"`) {
			t.Errorf("%s: message does not name scopes: %s", tc.name, r.body)
		}
	}
	// A user key that carries resolve from before (planted) cannot be
	// rolled into a new one.
	legacyID, _ := cl.createKey(a, o.owner, map[string]any{"name": "old", "scopes": []string{"credentials:use"}, "user_id": o.useID})
	if _, err := a.s.db.Exec(`UPDATE api_keys SET scopes = scopes || '{credentials:resolve}' WHERE id = $1`, legacyID); err != nil {
		t.Fatal(err)
	}
	keysBefore++
	if r := cl.as(o.owner, "POST", a.url+"/v1/api-keys/"+legacyID+"/roll", nil); r.status != 400 || !strings.Contains(r.errMessage(t), `"scopes"`) {
		t.Errorf("roll a user key with resolve: %d %s", r.status, r.body)
	}
	if n := o.count(t, `SELECT count(*) FROM api_keys`); n != keysBefore {
		t.Errorf("refused keys were written: %d keys, want %d", n, keysBefore)
	}

	// Case 2: a change that widens where a value may go needs the value,
	// from everybody; without it nothing changes.
	// Each widening edit, in a form valid for the credential's placement
	// (bearer has neither param_name nor value_prefix).
	widen := map[string]map[string]map[string]any{
		"base_url": {
			"header": {"base_url": evil.URL, "allowed_hosts": []string{evil.HostP}},
			"query":  {"base_url": evil.URL, "allowed_hosts": []string{evil.HostP}},
			"bearer": {"base_url": evil.URL, "allowed_hosts": []string{evil.HostP}},
		},
		"allowed_hosts": {
			"header": {"allowed_hosts": []string{good.HostP, evil.HostP}},
			"query":  {"allowed_hosts": []string{evil.HostP, good.HostP}},
			"bearer": {"allowed_hosts": []string{good.HostP, evil.HostP}},
		},
		"placement": {
			"header": {"placement": "query", "param_name": "leak"},
			"query":  {"placement": "header", "param_name": "X-Leak"},
			"bearer": {"placement": "header", "param_name": "X-Leak"},
		},
		"param_name": {
			"header": {"param_name": "X-Echo-Me"},
			"query":  {"param_name": "leak"},
		},
		"value_prefix": {
			"header": {"value_prefix": "leak "},
		},
		// The username sits in front of the value inside the one encoded
		// "username:value": changing it is changing a value prefix.
		"username": {
			"basic": {"username": "AC-other-user"},
		},
	}
	for _, f := range []string{"base_url", "allowed_hosts"} {
		widen[f]["basic"] = widen[f]["bearer"]
	}
	widen["placement"]["basic"] = map[string]any{"placement": "header", "param_name": "X-Leak", "username": ""}
	callers := []struct {
		name, key string
		status    int
		code      string
	}{
		{"owner", o.owner, 400, "value_required"},
		{"admin", o.admin, 400, "value_required"},
		{"manage sharee", o.manage, 400, "value_required"},
		{"use sharee", o.use, 403, "forbidden_permission"},
		{"no share", o.none, 404, "not_found"},
		{"admin's service key", adminService, 400, "value_required"},
	}
	for field, byPlacement := range widen {
		for pl, body := range byPlacement {
			for _, c := range callers {
				t.Run("widen/"+field+"/"+pl+"/"+c.name, func(t *testing.T) {
					id := creds[pl]
					before := o.credentialState(t, id)
					refusals := `SELECT count(*) FROM audit_events WHERE action = 'credential.update_refused' AND resource_id = $1`
					audited := o.count(t, refusals, id)
					r := cl.as(c.key, "PATCH", a.url+"/v1/credentials/"+id, body)
					if r.status != c.status || r.errCode(t) != c.code {
						t.Fatalf("got %d %s, want %d %s: %s", r.status, r.errCode(t), c.status, c.code, r.body)
					}
					if c.code == "value_required" && !strings.Contains(r.errMessage(t), `"`+field+`"`) {
						t.Fatalf("message does not name %s: %s", field, r.body)
					}
					if after := o.credentialState(t, id); after != before {
						t.Fatalf("the credential changed:\n%s\n%s", before, after)
					}
					want := audited
					if c.code == "value_required" {
						want++ // the refused redirect is on record; a 403/404 is not an edit at all
					}
					if got := o.count(t, refusals, id); got != want {
						t.Fatalf("credential.update_refused rows: %d, want %d", got, want)
					}
				})
			}
		}
	}
	// The value still goes only where it went.
	for _, pl := range []string{"header", "query", "bearer", "basic"} {
		if r := cl.as(o.use, "GET", a.url+"/v1/proxy/"+creds[pl]+"/after", nil); r.status != 200 {
			t.Fatalf("proxy after the refused edits: %d %s", r.status, r.body)
		}
	}
	if n := evil.conns.Load(); n != 0 {
		t.Fatalf("the other host got %d connections", n)
	}
	// Narrowing needs no value, and is audited.
	if r := cl.as(o.manage, "PATCH", a.url+"/v1/credentials/"+creds["header"], map[string]any{"allowed_hosts": []string{good.HostP}, "name": "renamed"}); r.status != 200 {
		t.Fatalf("narrowing edit: %d %s", r.status, r.body)
	}
	// With the value, widening is allowed (the value is the caller's own)
	// and audited as widening.
	r := cl.as(o.manage, "PATCH", a.url+"/v1/credentials/"+creds["bearer"], map[string]any{"base_url": evil.URL, "allowed_hosts": []string{evil.HostP}, "value": "sharee-own-value-123"})
	if r.status != 200 || r.json(t)["hint"] != "••••-123" {
		t.Fatalf("widening with the value: %d %s", r.status, r.body)
	}
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.update' AND resource_id = $1 AND data->'widened' ? 'base_url' AND data->'hosts_added' ? $2`, creds["bearer"], evil.HostP); n != 1 {
		t.Fatalf("widening audit rows: %d", n)
	}
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.update' AND resource_id = $1 AND data->'fields' ? 'name'`, creds["header"]); n != 1 {
		t.Fatalf("narrowing audit rows: %d", n)
	}

	// No member's response, no audit row and no log line holds a value.
	everything := cl.allResponses() + a.logs.String()
	var audit string
	_ = a.s.db.Get(&audit, `SELECT coalesce(string_agg(data::text, ' '), '') FROM audit_events`)
	for name, v := range values {
		if strings.Contains(everything, v) || strings.Contains(audit, v) {
			t.Errorf("the %s value was shown", name)
		}
	}

	// Positive controls, last (they hand the value to the runner): the
	// runner resolves for the use sharee, with every placement.
	for _, pl := range []string{"header", "query"} {
		r := cl.call("POST", a.url+"/v1/inject", map[string]string{"X-API-Key": o.runner},
			map[string]any{"credential_id": creds[pl], "acting_user": o.useID, "request": map[string]any{"url": good.URL + "/x"}})
		if r.status != 200 || !strings.Contains(string(r.body), values[pl]) {
			t.Errorf("runner resolves %s: %d %s", pl, r.status, r.body)
		}
	}
}

// TestKeyPowerEndsWithItsCreator replays case 3: the service keys an admin
// created (directly or through one another) stop working on every
// instance within a second of the admin's deletion; a demotion revokes
// those the new role does not allow and keeps the rest.
func TestKeyPowerEndsWithItsCreator(t *testing.T) {
	cl := newCluster(t, nil)
	a, b := cl.start(), cl.start()
	o := newOrg(t, cl, a)
	svcID, svc := cl.createKey(a, o.admin, map[string]any{"name": "a-svc", "kind": "service", "scopes": []string{"admin"}})
	chainID, chain := cl.createKey(a, svc, map[string]any{"name": "a-svc-2", "kind": "service", "scopes": []string{"users:write", "users:read"}})
	forMemberID, forMember := cl.createKey(a, o.admin, map[string]any{"name": "for-member", "scopes": []string{"credentials:use"}, "user_id": o.useID})
	for _, k := range []string{o.admin, svc, chain, forMember} {
		if r := cl.as(k, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
			t.Fatalf("before: %d", r.status)
		}
	}
	// created_by is shown and filters; the chained key stands on the admin.
	list := cl.as(o.owner, "GET", a.url+"/v1/api-keys?created_by="+o.adminID, nil).json(t)["data"].([]any)
	ids := ""
	for _, k := range list {
		ids += k.(map[string]any)["id"].(string) + " "
		if k.(map[string]any)["created_by"] != o.adminID {
			t.Errorf("filtered key created by %v", k.(map[string]any)["created_by"])
		}
	}
	if len(list) != 3 || !strings.Contains(ids, svcID) || !strings.Contains(ids, chainID) {
		t.Fatalf("keys created by the admin: %v", list)
	}
	if r := cl.as(o.owner, "GET", a.url+"/v1/api-keys?created_by=someone", nil); r.status != 400 {
		t.Fatalf("bad created_by: %d", r.status)
	}

	// A service key the owner made, rolled by the admin: the new secret is
	// the admin's, so it stands on the admin and goes with them.
	ownerSvcID, _ := cl.createKey(a, o.owner, map[string]any{"name": "owner-svc", "kind": "service", "scopes": []string{"keys:read"}})
	r := cl.as(o.admin, "POST", a.url+"/v1/api-keys/"+ownerSvcID+"/roll", nil)
	if r.status != 201 || r.json(t)["created_by"] != o.adminID {
		t.Fatalf("admin rolls the owner's service key: %d %s", r.status, r.body)
	}
	rolledByAdmin := r.json(t)["key"].(string)

	if r := cl.as(o.owner, "DELETE", a.url+"/v1/users/"+o.adminID, nil); r.status != 204 {
		t.Fatalf("delete admin: %d %s", r.status, r.body)
	}
	start := time.Now()
	waitFor(t, time.Second, func() bool {
		for _, k := range []string{o.admin, svc, chain, rolledByAdmin, forMember} {
			if cl.as(k, "GET", b.url+"/v1/whoami", nil).status != 401 {
				return false
			}
		}
		return true
	})
	t.Logf("refused on the second instance after %s", time.Since(start))
	if r := cl.as(svc, "POST", b.url+"/v1/users", map[string]any{"email": "new-admin@acme.test", "role": "admin"}); r.status != 401 {
		t.Fatalf("the deleted admin's service key creates an admin: %d", r.status)
	}
	// The key the admin made for a member went too (the admin received its
	// secret); the member's keys from anyone else stay.
	if r := cl.as(o.use, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("the member's key the owner made: %d", r.status)
	}
	if r := cl.as(o.owner, "POST", a.url+"/v1/api-keys/"+forMemberID+"/roll", map[string]any{"grace_seconds": 60}); r.status != 409 {
		t.Fatalf("roll the member's key the deleted admin made: %d %s", r.status, r.body)
	}
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'user.delete' AND data->'revoked_keys' ? $1 AND data->'revoked_keys' ? $2
		AND data->'revoked_keys' ? $3`, svcID, chainID, forMemberID); n != 1 {
		t.Fatalf("user.delete audit without the revoked keys")
	}

	// Demotions: an owner demoted to admin loses the runner keys they made
	// (admins cannot issue them) and keeps the rest; an admin demoted to
	// member loses every service key they made.
	u := cl.as(o.owner, "POST", a.url+"/v1/users", map[string]any{"email": "o2@acme.test", "role": "owner"}).json(t)
	_, o2 := cl.createKey(a, o.owner, map[string]any{"name": "o2", "scopes": []string{"admin"}, "user_id": u["id"]})
	_, runner := cl.createKey(a, o2, map[string]any{"name": "runner2", "kind": "service", "scopes": []string{"credentials:resolve"}})
	_, plain := cl.createKey(a, o2, map[string]any{"name": "plain", "kind": "service", "scopes": []string{"keys:read"}})
	// Keys o2 makes for other people: admins cannot make one for an owner,
	// members for nobody.
	_, forOwner := cl.createKey(a, o2, map[string]any{"name": "for-owner", "scopes": []string{"keys:read"}, "user_id": o.ownerID})
	_, forMember2 := cl.createKey(a, o2, map[string]any{"name": "for-member-2", "scopes": []string{"keys:read"}, "user_id": o.noID})
	if r := cl.as(o.owner, "PATCH", a.url+"/v1/users/"+u["id"].(string), map[string]any{"role": "admin"}); r.status != 200 {
		t.Fatalf("demote owner: %d %s", r.status, r.body)
	}
	waitFor(t, time.Second, func() bool {
		return cl.as(runner, "GET", b.url+"/v1/whoami", nil).status == 401 && cl.as(forOwner, "GET", b.url+"/v1/whoami", nil).status == 401
	})
	for _, k := range []string{plain, forMember2} {
		if r := cl.as(k, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
			t.Fatalf("a key the admin role allows: %d", r.status)
		}
	}
	if r := cl.as(o.owner, "PATCH", a.url+"/v1/users/"+u["id"].(string), map[string]any{"role": "member"}); r.status != 200 {
		t.Fatalf("demote admin: %d %s", r.status, r.body)
	}
	waitFor(t, time.Second, func() bool {
		return cl.as(plain, "GET", b.url+"/v1/whoami", nil).status == 401 && cl.as(forMember2, "GET", b.url+"/v1/whoami", nil).status == 401
	})
	// The demoted user's own key stays (it acts with their new role).
	if r := cl.as(o2, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("the demoted user's own key: %d", r.status)
	}
	// And a member's key cannot mint a new one in their name.
	if r := cl.as(o2, "POST", a.url+"/v1/api-keys", map[string]any{"name": "again", "kind": "service", "scopes": []string{"keys:read"}}); r.status != 403 {
		t.Fatalf("demoted user creates a service key: %d", r.status)
	}

	// A legacy service key (no creator on record, as migration 0004 marks
	// them) hands its mark on, and owners find both.
	legID, leg := cl.createKey(a, o.owner, map[string]any{"name": "old-svc", "kind": "service", "scopes": []string{"keys:write", "keys:read"}})
	if _, err := a.s.db.Exec(`UPDATE api_keys SET created_by = NULL, legacy = true WHERE id = $1`, legID); err != nil {
		t.Fatal(err)
	}
	childID, _ := cl.createKey(a, leg, map[string]any{"name": "legacy-child", "kind": "service", "scopes": []string{"keys:read"}})
	legacy := cl.as(o.owner, "GET", a.url+"/v1/api-keys?created_by=legacy", nil).json(t)["data"].([]any)
	found := map[string]bool{}
	for _, k := range legacy {
		m := k.(map[string]any)
		if m["legacy"] != true || m["created_by"] != nil {
			t.Errorf("legacy listing holds %v", m)
		}
		found[m["id"].(string)] = true
	}
	if len(legacy) != 2 || !found[legID] || !found[childID] {
		t.Fatalf("legacy keys: %v", legacy)
	}
}

// TestKeyNeverMintsMoreThanItHolds replays case 4: a child key's rate
// limit and expiry stay within its creator key's.
func TestKeyNeverMintsMoreThanItHolds(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	o := newOrg(t, cl, a)
	_, limited := cl.createKey(a, o.owner, map[string]any{"name": "limited", "scopes": []string{"keys:write", "keys:read"},
		"rate_limit": map[string]any{"requests": 50, "window_seconds": 60}, "expires_in": "7d"})
	r := cl.as(limited, "POST", a.url+"/v1/api-keys", map[string]any{"name": "child", "scopes": []string{"keys:read"}})
	if r.status != 201 {
		t.Fatalf("child: %d %s", r.status, r.body)
	}
	child := r.json(t)
	rl, _ := child["rate_limit"].(map[string]any)
	if rl == nil || rl["requests"].(float64) != 50 || rl["window_seconds"].(float64) != 60 || child["expires_at"] == nil {
		t.Fatalf("child inherits neither limit nor expiry: %s", r.body)
	}
	if child["created_by"] != o.ownerID {
		t.Fatalf("child created_by %v, want %s", child["created_by"], o.ownerID)
	}
	before := o.count(t, `SELECT count(*) FROM api_keys`)
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"rate_limit": map[string]any{"requests": 1000, "window_seconds": 60}}, "rate_limit"},
		{map[string]any{"rate_limit": map[string]any{"requests": 50, "window_seconds": 1}}, "rate_limit"},
		{map[string]any{"rate_limit": map[string]any{"requests": 100, "window_seconds": 120}}, "rate_limit"},
		{map[string]any{"expires_in": "30d"}, "expires_in"},
		{map[string]any{"expires_in": "never"}, "expires_in"},
		{map[string]any{"expires_at": time.Now().Add(60 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "expires_at"},
	} {
		body := map[string]any{"name": "c", "scopes": []string{"keys:read"}}
		for k, v := range tc.body {
			body[k] = v
		}
		r := cl.as(limited, "POST", a.url+"/v1/api-keys", body)
		if r.status != 400 || r.errCode(t) != "exceeds_creator_key" || !strings.Contains(r.errMessage(t), `"`+tc.field+`"`) {
			t.Errorf("%v: %d %s", tc.body, r.status, r.body)
		}
	}
	if n := o.count(t, `SELECT count(*) FROM api_keys`); n != before {
		t.Fatalf("refused keys were written: %d, want %d", n, before)
	}
	// Rolling an unlimited key with the limited one narrows the new key.
	id, _ := cl.createKey(a, o.owner, map[string]any{"name": "wide", "scopes": []string{"keys:read"}})
	r = cl.as(limited, "POST", a.url+"/v1/api-keys/"+id+"/roll", nil)
	rolled := r.json(t)
	if rl, _ := rolled["rate_limit"].(map[string]any); r.status != 201 || rl == nil || rl["requests"].(float64) != 50 || rolled["expires_at"] == nil {
		t.Fatalf("roll by a limited key: %d %s", r.status, r.body)
	}
}
