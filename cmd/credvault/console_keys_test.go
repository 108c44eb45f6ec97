package main

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	alertRe  = regexp.MustCompile(`<p class="error" role="alert"[^>]*>([^<]*)</p>`)
	secretRe = regexp.MustCompile(`(?s)<textarea id="secret"[^>]*>([^<]*)</textarea>`)
	keyIDRe  = regexp.MustCompile(`data-canonical="/api-keys/([0-9a-f-]{36})"`)
)

// alertOf is the text of a page's error message, unescaped.
func alertOf(body string) string {
	if m := alertRe.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// TestConsoleAPIKeyFormatModeLabel: the console's create form offers the
// format (opaque or JWT, with the agent label of a JWT key), the mode
// (live or test) and a free environment label; every bad value of those
// is a 400 that shows the form again with a message naming the field, and
// writes no key and no audit event. A JWT key created or rolled in the
// console is revealed once in full (it works on /v1/whoami) and its page
// then shows only prefix…last4; the list and detail pages show format, mode and
// label, and the list's status and label filters work (a bad label filter
// is a 400 naming the parameter).
func TestConsoleAPIKeyFormatModeLabel(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	b := newBrowserish(t, inst.url)
	if p := b.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey))); p.status != 303 {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	form := b.get("/api-keys/new").body
	for _, want := range []string{`name="format" value="opaque" checked`, `name="format" value="jwt"`, `id="k-agent" name="agent"`,
		`name="mode" value="live" checked`, `name="mode" value="test"`, `id="k-env" name="environment" type="text"`} {
		if !strings.Contains(form, want) {
			t.Errorf("create form lacks %s", want)
		}
	}
	tok := b.csrf("/api-keys/new")
	post := func(fields map[string]string) consolePage {
		v := url.Values{"csrf": {tok}, "name": {"console key"}, "scopes": {"keys:read"}, "expires_in": {"30d"}}
		for k, val := range fields {
			v.Set(k, val)
		}
		return b.post("/api-keys", v, nil)
	}
	keys := func() int { return countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`) }
	events := func() int {
		return countRows(t, cl.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'api_key.create'`)
	}

	keysBefore, eventsBefore := keys(), events()
	for _, tc := range []struct {
		name   string
		fields map[string]string
		field  string // named in the message
		marked bool   // the input is marked aria-invalid
	}{
		{"agent too long", map[string]string{"format": "jwt", "agent": strings.Repeat("a", 201)}, "agent", true},
		{"agent only spaces", map[string]string{"format": "jwt", "agent": "   "}, "agent", true},
		{"agent on an opaque key", map[string]string{"format": "opaque", "agent": "support-bot"}, "agent", true},
		{"label upper case", map[string]string{"format": "jwt", "environment": "Production"}, "environment", true},
		{"label with a space", map[string]string{"environment": "prod env"}, "environment", true},
		{"label too long", map[string]string{"environment": strings.Repeat("p", 64)}, "environment", true},
		{"label starts with a dash", map[string]string{"mode": "test", "environment": "-staging"}, "environment", true},
		{"unknown mode", map[string]string{"mode": "staging"}, "mode", false},
		{"unknown format", map[string]string{"format": "paseto"}, "format", false},
	} {
		p := post(tc.fields)
		msg := alertOf(p.body)
		if p.status != 400 || !strings.Contains(msg, `field "`+tc.field+`"`) {
			t.Errorf("%s: %d %q, want 400 naming field %q", tc.name, p.status, msg, tc.field)
			continue
		}
		if !strings.Contains(p.body, `id="k-name" name="name" type="text" required maxlength="200" value="console key"`) {
			t.Errorf("%s: the form is not shown again with what was typed", tc.name)
		}
		id := map[string]string{"agent": "k-agent", "environment": "k-env"}[tc.field]
		if marked := regexp.MustCompile(`id="` + id + `"[^>]*aria-invalid="true"`).MatchString(p.body); tc.marked && !marked {
			t.Errorf("%s: field %s not marked aria-invalid", tc.name, tc.field)
		}
		if strings.Contains(p.body, "eyJ") || strings.Contains(p.body, `id="secret"`) {
			t.Errorf("%s: a refused form shows a key", tc.name)
		}
	}
	if n := keys(); n != keysBefore {
		t.Errorf("refused forms stored %d keys", n-keysBefore)
	}
	if n := events(); n != eventsBefore {
		t.Errorf("refused forms wrote %d api_key.create events", n-eventsBefore)
	}

	// A JWT key in test mode for an agent, labelled staging.
	p := post(map[string]string{"format": "jwt", "agent": "  support-bot ", "mode": "test", "environment": " staging "})
	if p.status != 201 {
		t.Fatalf("create JWT key: %d %s", p.status, alertOf(p.body))
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("reveal Cache-Control = %q", cc)
	}
	m, idm := secretRe.FindStringSubmatch(p.body), keyIDRe.FindStringSubmatch(p.body)
	if m == nil || idm == nil {
		t.Fatalf("reveal page shows no JWT in a textarea or no key page:\n%s", p.body)
	}
	token, jwtID := html.UnescapeString(m[1]), idm[1]
	if !strings.HasPrefix(token, "eyJ") || strings.Count(token, ".") != 2 {
		t.Fatalf("revealed JWT key = %q", token)
	}
	if got := whoamiUser(t, cl, inst, token); got == "" {
		t.Fatal("whoami with the console's JWT key names no user")
	}
	api := cl.as(ownerKey, "GET", inst.url+"/v1/api-keys/"+jwtID, nil).json(t)
	if api["format"] != "jwt" || api["mode"] != "test" || api["environment"] != "staging" || api["agent"] != "support-bot" {
		t.Errorf("stored JWT key: format %v mode %v environment %v agent %v", api["format"], api["mode"], api["environment"], api["agent"])
	}
	display := "jwt_test_…" + token[len(token)-4:]
	detail := b.get("/api-keys/" + jwtID)
	if detail.status != 200 || strings.Contains(detail.body, token) || strings.Contains(detail.body, token[:40]) {
		t.Fatalf("key page: %d, or it shows the key", detail.status)
	}
	for _, want := range []string{`id="display">` + display + `<`, `id="format">JWT<`, `id="agent">support-bot<`,
		`id="mode">test<`, `id="environment">staging<`} {
		if !strings.Contains(detail.body, want) {
			t.Errorf("key page lacks %s", want)
		}
	}

	// Rolling it in the console reveals the replacement JWT whole, once.
	roll := b.post("/api-keys/"+jwtID+"/roll", url.Values{"csrf": {tok}, "grace_seconds": {"3600"}}, nil)
	rm := secretRe.FindStringSubmatch(roll.body)
	if roll.status != 201 || rm == nil || !strings.HasPrefix(html.UnescapeString(rm[1]), "eyJ") || html.UnescapeString(rm[1]) == token {
		t.Fatalf("roll of the JWT key: %d, reveal %v", roll.status, rm != nil)
	}
	if got := whoamiUser(t, cl, inst, html.UnescapeString(rm[1])); got == "" {
		t.Fatal("whoami with the rolled JWT key names no user")
	}

	// An opaque live key labelled production, and one with no label.
	if p := post(map[string]string{"name": "prod key", "format": "opaque", "mode": "live", "environment": "production"}); p.status != 201 {
		t.Fatalf("create opaque key: %d %s", p.status, alertOf(p.body))
	}
	if p := post(map[string]string{"name": "plain key"}); p.status != 201 {
		t.Fatalf("create key with the defaults: %d %s", p.status, alertOf(p.body))
	}
	plain := cl.as(ownerKey, "GET", inst.url+"/v1/api-keys?q=plain", nil).json(t)["data"].([]any)[0].(map[string]any)
	if plain["format"] != "opaque" || plain["mode"] != "live" || plain["environment"] != "" || plain["agent"] != nil {
		t.Errorf("defaults: %v", plain)
	}

	// The list shows name, owner, status and times; format, mode and
	// label are on each key's page (the list fits a phone).
	rowRe := regexp.MustCompile(`(?s)<tr>\s*<td><a href="/api-keys/([^"]+)">([^<]+)</a>`)
	fieldRe := regexp.MustCompile(`id="(format|mode|environment)">(.*?)</dd>`)
	listed := func(query string) (int, map[string]string) {
		p := b.get("/api-keys" + query)
		rows := map[string]string{}
		for _, r := range rowRe.FindAllStringSubmatch(p.body, -1) {
			d := b.get("/api-keys/" + r[1]).body
			f := map[string]string{}
			for _, m := range fieldRe.FindAllStringSubmatch(d, -1) {
				f[m[1]] = m[2]
			}
			if strings.Contains(f["environment"], "muted") {
				f["environment"] = "none"
			}
			rows[html.UnescapeString(r[2])] = f["format"] + " " + f["mode"] + " " + f["environment"]
		}
		if strings.Contains(p.body, token) {
			t.Errorf("list %s shows the JWT key", query)
		}
		return p.status, rows
	}
	_, all := listed("")
	for name, want := range map[string]string{"console key": "JWT test staging", "prod key": "opaque live production",
		"plain key": "opaque live none"} {
		if all[name] != want {
			t.Errorf("list row %q: %q, want %q", name, all[name], want)
		}
	}
	if _, rows := listed("?environment=staging"); len(rows) != 1 || rows["console key"] == "" {
		t.Errorf("environment=staging lists %v", rows)
	}
	if _, rows := listed("?status=active&environment=production"); len(rows) != 1 || rows["prod key"] == "" {
		t.Errorf("status=active&environment=production lists %v", rows)
	}
	rp := b.get("/api-keys?status=revoked")
	if rp.status != 200 || !strings.Contains(rp.body, `id="f-status"`) || !strings.Contains(rp.body, "No key matches") {
		t.Errorf("a filter that matches nothing: %d, filters or message missing", rp.status)
	}
	bad := b.get("/api-keys?environment=Prod%21")
	if msg := alertOf(bad.body); bad.status != 400 || !strings.Contains(msg, `"environment"`) {
		t.Errorf("bad label filter: %d %q, want 400 naming environment", bad.status, msg)
	}
	if !regexp.MustCompile(`id="f-env"[^>]*value="Prod!"[^>]*aria-invalid="true"`).MatchString(bad.body) {
		t.Error("bad label filter: the filter is not shown again marked invalid")
	}
	if strings.Contains(cl.allResponses(), token) {
		t.Error("an API response holds the JWT key made in the console")
	}
}
