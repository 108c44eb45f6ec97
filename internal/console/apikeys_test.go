package console

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestAPIKeyInputFromForm: the form's format, agent, mode and label reach
// the service as typed, except that an empty agent box is no agent (so an
// opaque key can be made with the box left empty) and spaces around the
// label are dropped.
func TestAPIKeyInputFromForm(t *testing.T) {
	base := map[string]string{"name": " k ", "expires_in": "30d"}
	with := func(kv ...string) map[string]string {
		f := map[string]string{}
		for k, v := range base {
			f[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return f
	}
	in, err := apiKeyInput(with("format", "jwt", "agent", " bot ", "mode", "test", "environment", " staging "), []string{"keys:read"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "k" || in.Format != "jwt" || in.Agent == nil || *in.Agent != " bot " || in.Mode != "test" || in.Environment != "staging" {
		t.Errorf("jwt form: %+v", in)
	}
	in, err = apiKeyInput(with("format", "opaque", "agent", "", "mode", "live", "environment", ""), nil)
	if err != nil || in.Agent != nil || in.Format != "opaque" || in.Environment != "" {
		t.Errorf("opaque form with an empty agent box: %+v %v", in, err)
	}
}

// TestInvalidField: the field a service message names is the one the form
// marks.
func TestInvalidField(t *testing.T) {
	for msg, want := range map[string]string{
		`field "agent" must be 1-200 characters`:            "agent",
		`field "environment" must be 1-63 lower-case …`:     "environment",
		`query parameter "environment" must be 1-63 …`:      "environment",
		`a key cannot carry scopes its creator lacks: a, b`: "",
		`the "agent" field`:                                 "",
	} {
		if got := invalidField(credvault.Errorf(credvault.EINVALID, "%s", msg)); got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
}

// TestAPIKeyPagesRender: the reveal shows a JWT key whole in a wrapping
// text area; the key page shows format, agent (escaped), mode and label
// and never the key; the list shows a key without a label as "none".
func TestAPIKeyPagesRender(t *testing.T) {
	c := newTestConsole(t)
	signedIn := func(data any) *view {
		return &view{Title: "t", Nav: "api-keys", CSRF: "token", Data: data,
			Me: &me{UserID: "u1", Email: "ada@example.com", Role: credvault.RoleOwner, Manager: true}}
	}
	token := "eyJhbGciOiJFZERTQSJ9." + strings.Repeat("eyJzdWIiOiJ1MSJ9", 30) + ".c2lnbmF0dXJl"
	var buf bytes.Buffer
	if err := c.execute(&buf, "reveal", signedIn(revealData{Key: token, JWT: true, Display: "jwt_test_…dXJl", Name: "bot",
		Canonical: "/api-keys/k1"})); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.Contains(page, `class="mono secret" readonly`) || !strings.Contains(page, ">"+token+"</textarea>") ||
		strings.Contains(page, `type="text" readonly`) {
		t.Errorf("JWT reveal is not one whole token in a wrapping text area:\n%s", page)
	}

	agent := `<script>alert(1)</script>`
	k := &credvault.APIKey{ID: "k1", Name: "bot", Kind: credvault.KeyKindUser, Format: credvault.KeyFormatJWT, Agent: &agent,
		Mode: "test", Environment: "staging", Display: "jwt_test_…dXJl", Scopes: []string{"keys:read"}, CreatedAt: time.Now()}
	buf.Reset()
	if err := c.execute(&buf, "apikey", signedIn(apiKeyData{K: k, Status: "active", Owner: personRef{Label: "ada@example.com", ID: "u1"},
		Chart: verificationsChart(nil, time.Now(), "none yet")})); err != nil {
		t.Fatal(err)
	}
	page = buf.String()
	for _, want := range []string{`id="format">JWT<`, `id="agent">&lt;script&gt;alert(1)&lt;/script&gt;<`, `id="mode">test<`,
		`id="environment">staging<`, `id="display">jwt_test_…dXJl<`} {
		if !strings.Contains(page, want) {
			t.Errorf("key page lacks %s", want)
		}
	}
	if strings.Contains(page, agent) || strings.Contains(page, "eyJ") {
		t.Error("key page has the agent unescaped or a token")
	}

	plain := &credvault.APIKey{ID: "k2", Name: "plain", Kind: credvault.KeyKindUser, Format: credvault.KeyFormatOpaque, Mode: "live",
		Display: "cv_live_…abcd", Scopes: []string{"keys:read"}, CreatedAt: time.Now()}
	buf.Reset()
	if err := c.execute(&buf, "apikeys", signedIn(apiKeysData{Total: 1, Rows: []apiKeyRow{{K: plain, Status: "active", Owner: personRef{Label: "ada@example.com", ID: "u1"}}}})); err != nil {
		t.Fatal(err)
	}
	page = buf.String()
	// The list keeps the columns that fit a phone (name and key, owner,
	// status, last used, expiry); format, mode and label are on the
	// key's page, checked above.
	for _, want := range []string{`<a href="/api-keys/k2">plain</a>`, "cv_live_…abcd", "<summary>ada@example.com</summary>",
		"<code>u1</code>", `status-active`, `<span class="muted">never</span>`, "1 key<"} {
		if !strings.Contains(page, want) {
			t.Errorf("list row lacks %s:\n%s", want, page)
		}
	}
	if n := strings.Count(page, `<th scope="col"`); n != 5 {
		t.Errorf("the list has %d columns, want 5", n)
	}
}
