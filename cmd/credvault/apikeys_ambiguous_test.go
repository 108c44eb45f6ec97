package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSeveralKeysInOneRequest is issue 21 item 9: a request authenticates
// as exactly one key. Two different keys (two X-API-Key lines, X-API-Key
// plus Authorization: Bearer, or a configured header) are a 400
// ambiguous_api_key naming the headers, on the API, forward-auth, verify,
// the proxy and the console's key sign-in, and nothing is written;
// identical copies of one key, and an Authorization of another scheme next
// to a key, are served.
func TestSeveralKeysInOneRequest(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_AUTH_HEADERS": "X-API-Key,Authorization,nected-api-key"})
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "acme")
	_, other := cl.createKey(inst, owner, map[string]any{"name": "other", "scopes": []string{"keys:read"}})
	_, verifier := cl.createKey(inst, owner, map[string]any{"name": "gateway", "scopes": []string{"keys:verify"}})

	send := func(method, path string, h http.Header, body any) (int, map[string]any, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
			h.Set("Content-Type", "application/json")
		}
		req, err := http.NewRequest(method, inst.url+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m, string(raw)
	}
	headers := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h[http.CanonicalHeaderKey(kv[i])] = append(h[http.CanonicalHeaderKey(kv[i])], kv[i+1])
		}
		return h
	}
	keysBefore := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`)

	ambiguous := map[string]http.Header{
		"two X-API-Key lines":               headers("X-API-Key", owner, "X-API-Key", other),
		"X-API-Key and Bearer":              headers("X-API-Key", owner, "Authorization", "Bearer "+other),
		"two Authorization lines":           headers("Authorization", "Bearer "+owner, "Authorization", "Bearer "+other),
		"a configured header and X-API-Key": headers("X-API-Key", owner, "nected-api-key", other),
		"a valid and an unknown key":        headers("X-API-Key", owner, "X-API-Key", owner[:len(owner)-8]+"AAAAAAAA"),
	}
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/whoami", nil},
		{"POST", "/v1/api-keys", map[string]any{"name": "never", "scopes": []string{"keys:read"}}},
		{"GET", "/v1/auth/check?scope=keys:read", nil},
		{"POST", "/v1/api-keys/verify", map[string]any{"key": other}},
		{"GET", "/v1/proxy/00000000-0000-0000-0000-000000000000/x", nil},
	}
	for name, h := range ambiguous {
		for _, rt := range routes {
			if rt.path == "/v1/api-keys/verify" {
				// verify's caller is the gateway; the key it checks is in the body.
				h = h.Clone()
				for _, vs := range h {
					vs[0] = strings.Replace(vs[0], owner, verifier, 1)
				}
			}
			status, m, raw := send(rt.method, rt.path, h.Clone(), rt.body)
			code := ""
			if e, ok := m["error"].(map[string]any); ok {
				code, _ = e["code"].(string)
			}
			if status != 400 || code != "ambiguous_api_key" {
				t.Errorf("%s, %s %s: %d %s, want 400 ambiguous_api_key", name, rt.method, rt.path, status, raw)
			}
			for _, k := range []string{owner, other, verifier} {
				if strings.Contains(raw, k) {
					t.Errorf("%s, %s: the refusal shows a key", name, rt.path)
				}
			}
		}
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`); n != keysBefore {
		t.Errorf("api_keys went from %d to %d rows", keysBefore, n)
	}
	if st, m, _ := send("GET", "/v1/whoami", headers("X-API-Key", owner, "Authorization", "Bearer "+other), nil); st == 400 {
		if msg := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "X-API-Key and Authorization") {
			t.Errorf("message %q does not name both headers", msg)
		}
	}

	for name, h := range map[string]http.Header{
		"two identical X-API-Key lines":        headers("X-API-Key", owner, "X-API-Key", owner),
		"the same key in X-API-Key and Bearer": headers("X-API-Key", owner, "Authorization", "Bearer "+owner),
		"X-API-Key and Basic authorization":    headers("X-API-Key", owner, "Authorization", "Basic dXNlcjpwYXNz"),
	} {
		if st, _, raw := send("GET", "/v1/whoami", h, nil); st != 200 {
			t.Errorf("%s: %d %s, want 200", name, st, raw)
		}
	}

	// The console's key sign-in reads one api_key.
	b := newBrowserish(t, inst.url)
	tok := b.csrf("/sign-in")
	if p := b.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {owner, other}}, nil); p.status != 400 || !strings.Contains(p.body, "different API keys") {
		t.Errorf("console sign-in with two keys: %d, want 400 naming the ambiguity", p.status)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions`); n != 0 {
		t.Errorf("%d console sessions after refused sign-ins", n)
	}
	if p := b.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {owner, owner}}, nil); p.status != 303 {
		t.Errorf("console sign-in with one key twice: %d, want 303", p.status)
	}
}
