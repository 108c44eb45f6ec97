package devtransit

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// Vault's texts, exactly as they come over the wire.
const (
	wantMissingContext = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
	wantAuthFailed     = "cipher: message authentication failed"
	wantTooOld         = "ciphertext or signature version is disallowed by policy (too old)"
	wantTooNew         = "invalid ciphertext: version is too new"
	wantNoPrefix       = "invalid ciphertext: no prefix"
	wantBadCTBase64    = "invalid ciphertext: could not decode base64"
	wantKeyNotFound    = "encryption key not found"
	wantMixedContext   = "context should be set either in all the request blocks or in none"
	wantBadToken       = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
	// OpenBao 2.x answers a wrong token with the bare text (Vault with the
	// multi-error above); both are 403 and the client reads neither text.
	wantBadTokenOpenBao = "permission denied"
)

var (
	ctxA = base64.StdEncoding.EncodeToString([]byte("org:0001|cred:0001"))
	ctxB = base64.StdEncoding.EncodeToString([]byte("org:0001|cred:0002"))
	ptA  = base64.StdEncoding.EncodeToString([]byte("sk_live_conformance"))
)

// b64Err is Go's (and so Vault's) error text for decoding s.
func b64Err(s string) string {
	_, err := base64.StdEncoding.DecodeString(s)
	return err.Error()
}

// TestConformance drives the server under test through the real vault/api
// client; against a real Vault/OpenBao (VAULT_ADDR, VAULT_TOKEN) the same
// cases run unchanged, except those needing in-process hooks.
func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		// local cases need the in-process server's hooks; they start their
		// own server and are skipped against a real one.
		local string
		run   func(t *testing.T, e *tenv)
	}{
		{"derived key without context", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "keys/d", map[string]any{"derived": true})
			_, err := e.write(t, "encrypt/d", map[string]any{"plaintext": ptA})
			wantAPIError(t, err, 400, wantMissingContext)
			ct := encrypt(t, e, "d", ptA, ctxA)
			_, err = e.write(t, "decrypt/d", map[string]any{"ciphertext": ct})
			wantAPIError(t, err, 400, wantMissingContext)
		}},
		{"wrong context", "", func(t *testing.T, e *tenv) {
			ct := encrypt(t, e, "d", ptA, ctxA)
			_, err := e.write(t, "decrypt/d", map[string]any{"ciphertext": ct, "context": ctxB})
			wantAPIError(t, err, 400, wantAuthFailed)
			if got := decrypt(t, e, "d", ct, ctxA); got != ptA {
				t.Errorf("got %q, want %q", got, ptA)
			}
		}},
		{"ciphertext older than min_decryption_version", "", func(t *testing.T, e *tenv) {
			ct := encrypt(t, e, "k", ptA, "")
			e.mustWrite(t, "keys/k/rotate", nil)
			e.mustWrite(t, "keys/k/config", map[string]any{"min_decryption_version": 2})
			_, err := e.write(t, "decrypt/k", map[string]any{"ciphertext": ct})
			wantAPIError(t, err, 400, wantTooOld)
			// A real server archives the versions below the minimum: the key
			// read lists only those still usable (keysutil handleArchiving),
			// and lowering the minimum brings them back.
			if got := keyVersionsListed(t, e, "k"); !slices.Equal(got, []string{"2"}) {
				t.Errorf("keys after raising the minimum: got %v, want [2]", got)
			}
			e.mustWrite(t, "keys/k/config", map[string]any{"min_decryption_version": 1})
			if got := keyVersionsListed(t, e, "k"); !slices.Equal(got, []string{"1", "2"}) {
				t.Errorf("keys after lowering the minimum: got %v, want [1 2]", got)
			}
			if got := decrypt(t, e, "k", ct, ""); got != ptA {
				t.Errorf("v1 ciphertext after lowering the minimum: got %q", got)
			}
		}},
		{"version too new", "", func(t *testing.T, e *tenv) {
			ct := encrypt(t, e, "k", ptA, "")
			_, err := e.write(t, "decrypt/k", map[string]any{"ciphertext": strings.Replace(ct, "vault:v1:", "vault:v9:", 1)})
			wantAPIError(t, err, 400, wantTooNew)
		}},
		{"unknown key", "", func(t *testing.T, e *tenv) {
			_, err := e.write(t, "decrypt/nope", map[string]any{"ciphertext": "vault:v1:AAAA"})
			wantAPIError(t, err, 400, wantKeyNotFound)
			res := raw(t, e.c, "GET", e.mount+"/keys/nope", nil)
			if res.status != 404 || strings.TrimSpace(res.text) != `{"errors":[]}` {
				t.Errorf("read unknown key: got %d %s, want 404 {\"errors\":[]}", res.status, res.text)
			}
			sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/nope")
			if sec != nil || err != nil {
				t.Errorf("Logical().Read unknown key: got %v %v, want nil nil", sec, err)
			}
		}},
		{"bad base64", "", func(t *testing.T, e *tenv) {
			_, err := e.write(t, "encrypt/k", map[string]any{"plaintext": "not base64!"})
			wantAPIError(t, err, 400, b64Err("not base64!"))
			encrypt(t, e, "k", ptA, "")
			_, err = e.write(t, "decrypt/k", map[string]any{"ciphertext": "vault:v1:not*base64"})
			wantAPIError(t, err, 400, wantBadCTBase64)
			_, err = e.write(t, "decrypt/k", map[string]any{"ciphertext": "AAAA"})
			wantAPIError(t, err, 400, wantNoPrefix)
			_, err = e.write(t, "decrypt/k", map[string]any{"ciphertext": "vault:v1:AAAA", "context": "%%"})
			wantAPIError(t, err, 400, b64Err("%%"))
		}},
		{"batch with one bad item", "", func(t *testing.T, e *tenv) {
			in := []any{
				map[string]any{"plaintext": ptA, "reference": "a"},
				map[string]any{"plaintext": "***", "reference": "b"},
				map[string]any{"plaintext": ptA, "reference": "c"},
			}
			res := raw(t, e.c, "PUT", e.mount+"/encrypt/k", map[string]any{"batch_input": in})
			items := batchResults(t, res, 400)
			if items[1]["error"] != b64Err("***") || items[1]["ciphertext"] != nil || items[1]["reference"] != "b" {
				t.Errorf("bad item: got %v", items[1])
			}
			for _, i := range []int{0, 2} {
				ct, _ := items[i]["ciphertext"].(string)
				if !strings.HasPrefix(ct, "vault:v1:") || items[i]["error"] != nil || num(t, items[i]["key_version"]) != 1 {
					t.Errorf("item %d: got %v, want a v1 ciphertext", i, items[i])
				}
			}
			res = raw(t, e.c, "PUT", e.mount+"/encrypt/k", map[string]any{"batch_input": in, "partial_failure_response_code": 207})
			batchResults(t, res, 207)
			dec := []any{
				map[string]any{"ciphertext": items[0]["ciphertext"]},
				map[string]any{"ciphertext": "vault:v1:AAAA"},
			}
			res = raw(t, e.c, "PUT", e.mount+"/decrypt/k", map[string]any{"batch_input": dec})
			ditems := batchResults(t, res, 400)
			if ditems[0]["plaintext"] != ptA || ditems[1]["error"] != "invalid ciphertext length" {
				t.Errorf("decrypt batch: got %v", ditems)
			}
		}},
		{"batch mixing context and no context", "", func(t *testing.T, e *tenv) {
			in := []any{map[string]any{"plaintext": ptA, "context": ctxA}, map[string]any{"plaintext": ptA}}
			res := raw(t, e.c, "PUT", e.mount+"/encrypt/d", map[string]any{"batch_input": in})
			if res.status != 400 || !slices.Equal(errorsOf(res.body), []string{wantMixedContext}) {
				t.Errorf("got %d %s, want 400 %q", res.status, res.text, wantMixedContext)
			}
		}},
		{"batch rewrap per-item errors", "", func(t *testing.T, e *tenv) {
			ct := encrypt(t, e, "d", ptA, ctxA)
			e.mustWrite(t, "keys/d/rotate", nil)
			in := []any{
				map[string]any{"ciphertext": ct, "context": ctxA, "reference": "ok"},
				map[string]any{"ciphertext": "garbage", "context": ctxA, "reference": "noprefix"},
				map[string]any{"ciphertext": strings.Replace(ct, "vault:v1:", "vault:v7:", 1), "context": ctxA},
				map[string]any{"ciphertext": ct, "context": ctxB},
			}
			res := raw(t, e.c, "PUT", e.mount+"/rewrap/d", map[string]any{"batch_input": in})
			items := batchResults(t, res, 200)
			newCT, _ := items[0]["ciphertext"].(string)
			if !strings.HasPrefix(newCT, "vault:v2:") || num(t, items[0]["key_version"]) != 2 || items[0]["reference"] != "ok" {
				t.Errorf("item 0: got %v, want a v2 ciphertext", items[0])
			}
			for i, want := range map[int]string{1: wantNoPrefix, 2: wantTooNew, 3: wantAuthFailed} {
				if items[i]["error"] != want || items[i]["ciphertext"] != nil {
					t.Errorf("item %d: got %v, want error %q", i, items[i], want)
				}
			}
			if got := decrypt(t, e, "d", newCT, ctxA); got != ptA {
				t.Errorf("rewrapped decrypts to %q, want %q", got, ptA)
			}
		}},
		{"no token and wrong token", "", func(t *testing.T, e *tenv) {
			anon := clone(t, e.c) // a clone carries no token
			res := raw(t, anon, "PUT", e.mount+"/encrypt/k", map[string]any{"plaintext": ptA})
			if res.status != 403 || !slices.Equal(errorsOf(res.body), []string{"permission denied"}) {
				t.Errorf("no token: got %d %s, want 403 permission denied", res.status, res.text)
			}
			wrong := clone(t, e.c)
			wrong.SetToken("devtransit-wrong-token")
			res = raw(t, wrong, "PUT", e.mount+"/encrypt/k", map[string]any{"plaintext": ptA})
			if got := errorsOf(res.body); res.status != 403 ||
				!(slices.Equal(got, []string{wantBadToken}) || slices.Equal(got, []string{wantBadTokenOpenBao})) {
				t.Errorf("wrong token: got %d %s, want 403 %q (Vault) or %q (OpenBao)", res.status, res.text, wantBadToken, wantBadTokenOpenBao)
			}
			if sec, _ := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/k"); sec != nil {
				t.Errorf("a refused request created key k")
			}
		}},
		{"create existing key changes nothing", "", func(t *testing.T, e *tenv) {
			first := e.mustWrite(t, "keys/d", map[string]any{"derived": true})
			again := e.mustWrite(t, "keys/d", map[string]any{"derived": false, "exportable": true})
			// Vault answers with the key and the warning "key d already
			// existed"; OpenBao with no warning. Anything else is a difference.
			if again != nil && !slices.Equal(again.Warnings, []string{"key d already existed"}) && len(again.Warnings) != 0 {
				t.Errorf("got warnings %q, want %q (Vault) or none (OpenBao)", again.Warnings, "key d already existed")
			}
			sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/d")
			if err != nil || sec == nil {
				t.Fatalf("read: %v %v", sec, err)
			}
			if sec.Data["derived"] != true || sec.Data["exportable"] != false || num(t, sec.Data["latest_version"]) != 1 {
				t.Errorf("existing key changed: got %v", sec.Data)
			}
			if first == nil || first.Data["kdf"] != "hkdf_sha256" || first.Data["type"] != "aes256-gcm96" {
				t.Errorf("new derived key: got %v", first)
			}
		}},
		{"key read shape", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "keys/k", nil)
			e.mustWrite(t, "keys/k/rotate", nil)
			sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/k")
			if err != nil || sec == nil {
				t.Fatalf("read: %v %v", sec, err)
			}
			d := sec.Data
			if num(t, d["latest_version"]) != 2 || num(t, d["min_decryption_version"]) != 1 || num(t, d["min_encryption_version"]) != 0 {
				t.Errorf("versions: got %v", d)
			}
			if d["derived"] != false || d["kdf"] != nil || d["supports_encryption"] != true || d["deletion_allowed"] != false {
				t.Errorf("flags: got %v", d)
			}
			keys, _ := d["keys"].(map[string]any)
			if len(keys) != 2 || num(t, keys["1"]) <= 0 || num(t, keys["2"]) <= 0 {
				t.Errorf("keys: got %v", d["keys"])
			}
			list, err := e.c.Logical().ListWithContext(context.Background(), e.mount+"/keys")
			if err != nil || list == nil || !slices.Equal(list.Data["keys"].([]any), []any{"k"}) {
				t.Errorf("list: got %v %v", list, err)
			}
		}},
		{"upsert on encrypt", "", func(t *testing.T, e *tenv) {
			encrypt(t, e, "up-derived", ptA, ctxA)
			encrypt(t, e, "up-plain", ptA, "")
			for name, derived := range map[string]bool{"up-derived": true, "up-plain": false} {
				sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/"+name)
				if err != nil || sec == nil || sec.Data["derived"] != derived {
					t.Errorf("%s: got %v %v, want derived %v", name, sec, err, derived)
				}
			}
		}},
		{"disable_upsert", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "config/keys", map[string]any{"disable_upsert": true})
			_, err := e.write(t, "encrypt/missing", map[string]any{"plaintext": ptA})
			wantAPIError(t, err, 400, wantKeyNotFound)
			sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/config/keys")
			if err != nil || sec.Data["disable_upsert"] != true {
				t.Errorf("config/keys: got %v %v", sec, err)
			}
		}},
		{"associated data", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "keys/k", nil)
			aad := base64.StdEncoding.EncodeToString([]byte("row-7"))
			enc := e.mustWrite(t, "encrypt/k", map[string]any{"plaintext": ptA, "associated_data": aad})
			ct := enc.Data["ciphertext"].(string)
			_, err := e.write(t, "decrypt/k", map[string]any{"ciphertext": ct})
			wantAPIError(t, err, 400, wantAuthFailed)
			dec := e.mustWrite(t, "decrypt/k", map[string]any{"ciphertext": ct, "associated_data": aad})
			if dec.Data["plaintext"] != ptA {
				t.Errorf("got %v, want %q", dec.Data["plaintext"], ptA)
			}
		}},
		{"datakey", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "keys/d", map[string]any{"derived": true})
			pk := e.mustWrite(t, "datakey/plaintext/d", map[string]any{"context": ctxA})
			wk := e.mustWrite(t, "datakey/wrapped/d", map[string]any{"context": ctxA, "bits": 128})
			if wk.Data["plaintext"] != nil || num(t, pk.Data["key_version"]) != 1 {
				t.Errorf("datakey: got %v / %v", pk.Data, wk.Data)
			}
			if got := decrypt(t, e, "d", pk.Data["ciphertext"].(string), ctxA); got != pk.Data["plaintext"] {
				t.Errorf("datakey ciphertext decrypts to %q, want %q", got, pk.Data["plaintext"])
			}
			raw, _ := base64.StdEncoding.DecodeString(decrypt(t, e, "d", wk.Data["ciphertext"].(string), ctxA))
			if len(raw) != 16 {
				t.Errorf("wrapped 128-bit datakey has %d bytes", len(raw))
			}
			_, err := e.write(t, "datakey/plaintext/d", map[string]any{"context": ctxA, "bits": 100})
			wantAPIError(t, err, 400, "invalid bit length")
		}},
		{"deletion", "", func(t *testing.T, e *tenv) {
			e.mustWrite(t, "keys/k", nil)
			_, err := e.c.Logical().DeleteWithContext(context.Background(), e.mount+"/keys/k")
			wantAPIError(t, err, 400, "error deleting policy k: deletion is not allowed for this key")
			e.mustWrite(t, "keys/k/config", map[string]any{"deletion_allowed": true})
			if _, err := e.c.Logical().DeleteWithContext(context.Background(), e.mount+"/keys/k"); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = e.c.Logical().DeleteWithContext(context.Background(), e.mount+"/keys/k")
			wantAPIError(t, err, 400, "error deleting policy k: could not delete key; not found")
		}},
		{"mount conflicts and unknown paths", "", func(t *testing.T, e *tenv) {
			res := raw(t, e.c, "POST", "sys/mounts/"+e.mount, map[string]any{"type": "transit"})
			if res.status != 400 || !slices.Equal(errorsOf(res.body), []string{"path is already in use at " + e.mount + "/"}) {
				t.Errorf("remount: got %d %s", res.status, res.text)
			}
			res = raw(t, e.c, "PUT", e.mount+"/no/such/path", map[string]any{})
			if res.status != 404 || !slices.Equal(errorsOf(res.body), []string{"1 error occurred:\n\t* unsupported path\n\n"}) {
				t.Errorf("unknown transit path: got %d %s", res.status, res.text)
			}
			res = raw(t, e.c, "GET", "cvtest-not-mounted/keys/x", nil)
			want := `no handler for route "cvtest-not-mounted/keys/x". route entry not found.`
			if res.status != 404 || !slices.Equal(errorsOf(res.body), []string{want}) {
				t.Errorf("unmounted path: got %d %s, want 404 %q", res.status, res.text, want)
			}
			mounts, err := e.c.Sys().ListMountsWithContext(context.Background())
			if err != nil || mounts[e.mount+"/"] == nil || mounts[e.mount+"/"].Type != "transit" {
				t.Errorf("ListMounts: got %v %v", mounts, err)
			}
		}},
		{"health and token lookup", "", func(t *testing.T, e *tenv) {
			h, err := e.c.Sys().HealthWithContext(context.Background())
			if err != nil || !h.Initialized || h.Sealed || h.Version == "" {
				t.Errorf("health: got %+v %v", h, err)
			}
			sec, err := e.c.Auth().Token().LookupSelfWithContext(context.Background())
			if err != nil {
				t.Fatalf("lookup-self: %v", err)
			}
			ttl, _ := sec.TokenTTL()
			renewable, _ := sec.TokenIsRenewable()
			policies, _ := sec.TokenPolicies()
			if ttl != 0 || renewable || !slices.Contains(policies, "root") {
				t.Errorf("root lookup-self: ttl %v renewable %v policies %v", ttl, renewable, policies)
			}
		}},
		{"sealed", "Seal", func(t *testing.T, _ *tenv) { testSealed(t) }},
		{"approle login, token expiry and renew-self", "AppRole and a fake clock", func(t *testing.T, _ *tenv) { testAppRole(t) }},
		{"bearer token header", "raw HTTP to the in-process server", func(t *testing.T, _ *tenv) { testBearer(t) }},
	}
	addr, token := target(t)
	c := newClient(t, addr, token)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.local != "" {
				localOnly(t, tc.local)
				tc.run(t, nil)
				return
			}
			tc.run(t, setup(t, c))
		})
	}
}

// encrypt encrypts through the client and returns the ciphertext.
func encrypt(t *testing.T, e *tenv, key, pt, context string) string {
	t.Helper()
	body := map[string]any{"plaintext": pt}
	if context != "" {
		body["context"] = context
	}
	sec, err := e.write(t, "encrypt/"+key, body)
	if err != nil {
		t.Fatalf("encrypt %s: %v", key, err)
	}
	return sec.Data["ciphertext"].(string)
}

// decrypt decrypts through the client and returns the base64 plaintext.
func decrypt(t *testing.T, e *tenv, key, ct, context string) string {
	t.Helper()
	body := map[string]any{"ciphertext": ct}
	if context != "" {
		body["context"] = context
	}
	sec := e.mustWrite(t, "decrypt/"+key, body)
	pt, _ := sec.Data["plaintext"].(string)
	return pt
}

// batchResults checks a batch answer's status and envelope and returns its
// items: a failed batch still carries the normal body, no "errors".
func batchResults(t *testing.T, res rawResult, status int) []map[string]any {
	t.Helper()
	if res.status != status {
		t.Fatalf("got status %d, want %d: %s", res.status, status, res.text)
	}
	if _, has := res.body["errors"]; has {
		t.Fatalf("batch answer has top-level errors: %s", res.text)
	}
	data, _ := res.body["data"].(map[string]any)
	list, _ := data["batch_results"].([]any)
	if len(list) == 0 {
		t.Fatalf("no batch_results: %s", res.text)
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// keyVersionsListed returns the sorted version numbers a key read lists
// under "keys".
func keyVersionsListed(t *testing.T, e *tenv, name string) []string {
	t.Helper()
	sec, err := e.c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/"+name)
	if err != nil || sec == nil {
		t.Fatalf("read key %s: %v %v", name, sec, err)
	}
	keys, _ := sec.Data["keys"].(map[string]any)
	out := make([]string, 0, len(keys))
	for v := range keys {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
