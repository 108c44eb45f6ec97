package devtransit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestSealStatusForBaoStatus: GET sys/seal-status answers without a token
// in OpenBao's shape, which `bao status` reads (initialized, sealed, a
// Shamir seal's t and n, version), sealed or not; against a real server
// the shape is checked the same way.
func TestSealStatusForBaoStatus(t *testing.T) {
	addr, token := target(t)
	c := newClient(t, addr, token)
	anon := clone(t, c)
	anon.ClearToken()
	ss, err := anon.Sys().SealStatusWithContext(context.Background())
	if err != nil {
		t.Fatalf("seal-status without a token: %v", err)
	}
	if !ss.Initialized || ss.Sealed || ss.Type == "" || ss.T < 1 || ss.N < ss.T || ss.Version == "" || ss.ClusterID == "" {
		t.Errorf("seal-status: %+v", ss)
	}
	res := raw(t, anon, "GET", "sys/seal-status", nil)
	for _, field := range []string{"type", "initialized", "sealed", "t", "n", "progress", "nonce", "version", "migration", "recovery_seal"} {
		if _, ok := res.body[field]; !ok {
			t.Errorf("seal-status has no %q: %s", field, res.text)
		}
	}
	if realServer() {
		return
	}
	if !strings.HasPrefix(ss.Version, "2.6.") {
		t.Errorf("devtransit's seal-status version %q, want OpenBao's 2.6", ss.Version)
	}
	if r := raw(t, c, "PUT", "sys/seal-status", map[string]any{}); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT sys/seal-status: %d, want 405", r.status)
	}
}

// TestSealStatusWhileSealed: a sealed devtransit still answers
// seal-status (200, sealed, no cluster) while every other call is 503.
func TestSealStatusWhileSealed(t *testing.T) {
	localOnly(t, "Seal")
	s, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	s.Seal()
	res := raw(t, c, "GET", "sys/seal-status", nil)
	if res.status != 200 || res.body["sealed"] != true || res.body["cluster_id"] != nil {
		t.Errorf("sealed seal-status: %d %s", res.status, res.text)
	}
}

// TestHealthReportsOpenBaoVersion: sys/health names the OpenBao release
// devtransit follows, not a Vault one, and mounts report OpenBao's
// builtin plugin version.
func TestHealthReportsOpenBaoVersion(t *testing.T) {
	localOnly(t, "the version is devtransit's own")
	_, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	h, err := c.Sys().HealthWithContext(context.Background())
	if err != nil || !strings.HasPrefix(h.Version, "2.6.") {
		t.Fatalf("health version: %+v %v", h, err)
	}
	res := raw(t, c, "GET", "sys/mounts/transit", nil)
	if v, _ := res.body["running_plugin_version"].(string); !strings.HasSuffix(v, "+builtin.bao") {
		t.Errorf("mount running_plugin_version %q, want OpenBao's +builtin.bao", res.body["running_plugin_version"])
	}
}

// TestWrongTokenAsOpenBao: an unknown token is 403 with OpenBao's bare
// "permission denied" (HashiCorp Vault adds "invalid token"; the
// conformance test accepts both against a real server).
func TestWrongTokenAsOpenBao(t *testing.T) {
	localOnly(t, "the text is OpenBao's, Vault's differs")
	_, addr := startLocal(t, Options{})
	c := newClient(t, addr, "devtransit-wrong-token")
	res := raw(t, c, "PUT", "transit/encrypt/k", map[string]any{"plaintext": ptA})
	if res.status != 403 || !slices.Equal(errorsOf(res.body), []string{wantBadTokenOpenBao}) {
		t.Errorf("wrong token: %d %s, want 403 %q", res.status, res.text, wantBadTokenOpenBao)
	}
}

// TestKeyReadCarriesSoftDeleted: key reads carry OpenBao's soft_deleted
// (false: devtransit never soft-deletes); a real Vault has no such field.
func TestKeyReadCarriesSoftDeleted(t *testing.T) {
	addr, token := target(t)
	c := newClient(t, addr, token)
	e := setup(t, c)
	e.mustWrite(t, "keys/sd", nil)
	sec, err := c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/sd")
	if err != nil || sec == nil {
		t.Fatalf("read: %v %v", sec, err)
	}
	v, ok := sec.Data["soft_deleted"]
	if (ok && v != false) || (!ok && !realServer()) {
		t.Errorf("soft_deleted: %v (present %v), want false", v, ok)
	}
}

// TestFormEncodedBodies: a body sent as application/x-www-form-urlencoded
// is read as a form, as OpenBao reads it (bao write sends JSON, curl -d a
// form): the key is created with the form's fields, and encrypt takes a
// percent-encoded base64 plaintext. A JSON text under that content type
// is still JSON.
func TestFormEncodedBodies(t *testing.T) {
	addr, token := target(t)
	c := newClient(t, addr, token)
	e := setup(t, c)
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, addr+"/v1/"+e.mount+"/"+path, strings.NewReader(body))
		req.Header.Set("X-Vault-Token", token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("keys/form", "type=ed25519&exportable=false"); st != 200 && st != 204 {
		t.Fatalf("form key create: %d %s", st, body)
	}
	sec, err := c.Logical().ReadWithContext(context.Background(), e.mount+"/keys/form")
	if err != nil || sec == nil || sec.Data["type"] != "ed25519" {
		t.Fatalf("key made from a form: %v %v", sec, err)
	}
	e.mustWrite(t, "keys/formenc", nil)
	if st, body := post("encrypt/formenc", "plaintext="+url.QueryEscape(ptA)); st != 200 || !strings.Contains(body, `"ciphertext":"vault:v1:`) {
		t.Errorf("form encrypt: %d %s", st, body)
	}
	if st, body := post("encrypt/formenc", `{"plaintext":"`+ptA+`"}`); st != 200 || !strings.Contains(body, `"ciphertext":"vault:v1:`) {
		t.Errorf("JSON under the form content type: %d %s", st, body)
	}
}

// TestDerivedEd25519: a derived ed25519 key signs with a key per context,
// as OpenBao does: the signature verifies under its context only, the
// key read has no public key without a context and, for a context, the
// one that checks the signature; signing without a context is refused
// (OpenBao: 500 with its wrapped missing-context message).
func TestDerivedEd25519(t *testing.T) {
	addr, token := target(t)
	c := newClient(t, addr, token)
	e := setup(t, c)
	e.mustWrite(t, "keys/dsig", map[string]any{"type": "ed25519", "derived": true})
	in := base64.StdEncoding.EncodeToString([]byte("header.payload"))
	sig := e.mustWrite(t, "sign/dsig", map[string]any{"input": in, "context": ctxA}).Data["signature"].(string)
	for _, tc := range []struct {
		ctx  string
		want bool
	}{{ctxA, true}, {ctxB, false}} {
		res := e.mustWrite(t, "verify/dsig", map[string]any{"input": in, "signature": sig, "context": tc.ctx})
		if res.Data["valid"] != tc.want {
			t.Errorf("verify under context %q: %v, want %v", tc.ctx, res.Data["valid"], tc.want)
		}
	}
	read := func(ctx string) string {
		t.Helper()
		path := e.mount + "/keys/dsig"
		sec, err := c.Logical().ReadWithDataWithContext(context.Background(), path, map[string][]string{"context": {ctx}})
		if ctx == "" {
			sec, err = c.Logical().ReadWithContext(context.Background(), path)
		}
		if err != nil || sec == nil {
			t.Fatalf("read: %v %v", sec, err)
		}
		v1, _ := sec.Data["keys"].(map[string]any)["1"].(map[string]any)
		pub, _ := v1["public_key"].(string)
		return pub
	}
	if pub := read(""); pub != "" {
		t.Errorf("public key without a context: %q, want none", pub)
	}
	pub, err := base64.StdEncoding.DecodeString(read(ctxA))
	sigBytes, err2 := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "vault:v1:"))
	msg, _ := base64.StdEncoding.DecodeString(in)
	if err != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sigBytes) {
		t.Errorf("the public key read for the context does not verify the signature (%v %v)", err, err2)
	}
	r := raw(t, c, "PUT", e.mount+"/sign/dsig", map[string]any{"input": in})
	errs := errorsOf(r.body)
	openbao := r.status == 500 && slices.Equal(errs, []string{multiErr("error deriving key: " + errMsgMissingContext)})
	vault := realServer() && r.status == 400 && len(errs) == 1 && strings.Contains(errs[0], "missing 'context'")
	if !openbao && !vault {
		t.Errorf("sign without a context: %d %s", r.status, r.text)
	}
}

// TestDerivedEd25519WithoutContextAsOpenBao: signing or verifying with a
// derived ed25519 key and no context fails in keysutil's Policy.GetKey,
// whose error SignWithOptions and VerifySignatureWithOptions wrap as an
// internal error "error deriving key: ..." (sdk/helper/keysutil/policy.go
// in openbao/openbao): a single request answers 500 with that text
// wrapped, a batch item carries the text (sign's batch answers 200).
func TestDerivedEd25519WithoutContextAsOpenBao(t *testing.T) {
	addr, token := target(t)
	c := newClient(t, addr, token)
	e := setup(t, c)
	e.mustWrite(t, "keys/dnoctx", map[string]any{"type": "ed25519", "derived": true})
	in := base64.StdEncoding.EncodeToString([]byte("header.payload"))
	sig := e.mustWrite(t, "sign/dnoctx", map[string]any{"input": in, "context": ctxA}).Data["signature"].(string)
	want := "error deriving key: " + errMsgMissingContext
	accept := func(what string, r rawResult) {
		t.Helper()
		errs := errorsOf(r.body)
		if r.status == 500 && slices.Equal(errs, []string{multiErr(want)}) {
			return
		}
		if realServer() && len(errs) == 1 && strings.Contains(errs[0], "missing 'context'") {
			return // HashiCorp Vault's wording
		}
		t.Errorf("%s without a context: %d %s, want 500 %q", what, r.status, r.text, want)
	}
	accept("sign", raw(t, c, "PUT", e.mount+"/sign/dnoctx", map[string]any{"input": in}))
	accept("verify", raw(t, c, "PUT", e.mount+"/verify/dnoctx", map[string]any{"input": in, "signature": sig}))
	r := raw(t, c, "PUT", e.mount+"/sign/dnoctx", map[string]any{"batch_input": []map[string]any{{"input": in}}})
	items, _ := r.body["data"].(map[string]any)["batch_results"].([]any)
	if len(items) != 1 {
		t.Fatalf("batch sign without a context: %d %s", r.status, r.text)
	}
	if msg, _ := items[0].(map[string]any)["error"].(string); msg != want && !(realServer() && strings.Contains(msg, "missing 'context'")) {
		t.Errorf("batch sign item without a context: %q, want %q", msg, want)
	}
}
