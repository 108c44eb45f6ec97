package main

import (
	"strings"
	"testing"
)

// TestCleartextDowngradeNeedsTheValue is issue 21 item 1: a credential
// without a base_url is sent over https only. Setting a base_url where
// there was none (http or https), like any change of its scheme, host or
// path scope, needs the value in the same request from everyone who may
// edit, and nothing changes without it; the refusal and the success are
// audited with widened ["base_url"] (never null), and the egress refusal
// speaks of no base_url the credential does not have.
func TestCleartextDowngradeNeedsTheValue(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	o := newOrg(t, cl, a)
	up := newUpstream(t, nil)
	const value = "sk_live_DOWNGRADE_planted_4c1e"
	id := cl.createCredential(a, o.owner, map[string]any{"name": "no-base", "placement": "bearer", "value": value,
		"allowed_hosts": []string{up.HostP}, "sharing": map[string]any{"mode": "members", "members": []map[string]string{
			{"user_id": o.manageID, "permission": "manage"}, {"user_id": o.useID, "permission": "use"}}}})["id"].(string)

	proxyPlain := func() response {
		return cl.call("GET", a.url+"/v1/proxy/"+id+"/x", map[string]string{"X-API-Key": o.use, "X-Credvault-Target": up.URL + "/x"}, nil)
	}
	r := proxyPlain()
	if r.status != 403 || r.errCode(t) != "egress_denied" {
		t.Fatalf("plain http without a base_url: %d %s", r.status, r.body)
	}
	if msg := r.errMessage(t); strings.Contains(msg, "base_url uses") || !strings.Contains(msg, "no base_url") {
		t.Errorf("refusal message %q speaks of a base_url the credential does not have", msg)
	}

	refusals := `SELECT count(*) FROM audit_events WHERE action = 'credential.update_refused' AND resource_id = $1 AND data->'widened' ? 'base_url'`
	for _, who := range []struct{ name, key string }{{"manage sharee", o.manage}, {"admin", o.admin}, {"owner", o.owner}} {
		for _, base := range []string{up.URL, up.URL + "/v1", "https://" + up.HostP} {
			before, audited := o.credentialState(t, id), o.count(t, refusals, id)
			r := cl.as(who.key, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"base_url": base})
			if r.status != 400 || r.errCode(t) != "value_required" || !strings.Contains(r.errMessage(t), `"base_url"`) {
				t.Fatalf("%s sets base_url %s without the value: %d %s", who.name, base, r.status, r.body)
			}
			if after := o.credentialState(t, id); after != before {
				t.Fatalf("%s: the credential changed", who.name)
			}
			if n := o.count(t, refusals, id); n != audited+1 {
				t.Fatalf("%s: %d refusal audit rows, want %d", who.name, n, audited+1)
			}
		}
	}
	if r := proxyPlain(); r.status != 403 {
		t.Fatalf("plain http after the refused edits: %d", r.status)
	}
	if n := up.conns.Load(); n != 0 {
		t.Fatalf("the upstream got %d connections over cleartext", n)
	}

	// An edit that widens nothing records widened [], not null.
	if r := cl.as(o.manage, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"name": "renamed"}); r.status != 200 {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.update' AND resource_id = $1 AND jsonb_typeof(data->'widened') = 'array'`, id); n != 1 {
		t.Fatalf("rename audit rows with a widened array: %d, want 1", n)
	}
	// With the value, the sharee may point it at cleartext (the value is
	// then theirs), and the event says so.
	if r := cl.as(o.manage, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"base_url": up.URL, "value": "sharee-own-value-456"}); r.status != 200 {
		t.Fatalf("base_url with the value: %d %s", r.status, r.body)
	}
	if n := o.count(t, `SELECT count(*) FROM audit_events WHERE action = 'credential.update' AND resource_id = $1 AND data->'widened' ? 'base_url' AND data->>'base_url_before' = ''`, id); n != 1 {
		t.Fatalf("widening audit rows: %d, want 1", n)
	}
	var audit string
	_ = a.s.db.Get(&audit, `SELECT coalesce(string_agg(data::text, ' '), '') FROM audit_events`)
	if strings.Contains(audit+cl.allResponses()+a.logs.String(), value) {
		t.Error("the value was shown")
	}
}
