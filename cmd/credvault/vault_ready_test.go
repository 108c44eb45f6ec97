package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"credvault/vault/devtransit"
)

// TestReadyzFollowsTheVaultToken: credvault runs on a token (from
// VAULT_TOKEN_FILE) with a short max TTL. Once it expires, every transit
// call fails, and /readyz must say so, naming the token, within 5 s; after
// a fresh login writes a new token to the file, /readyz?strict=1 is 200 again and
// credentials can be written, without a restart.
func TestReadyzFollowsTheVaultToken(t *testing.T) {
	const maxTTL = 3 * time.Second
	cl := newClusterDev(t, nil, devtransit.Options{AppRole: &devtransit.AppRole{
		RoleID: "readyz-role", SecretID: "readyz-secret", TokenTTL: maxTTL, TokenMaxTTL: maxTTL,
	}})
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	first := cl.vault.ShortLivedToken(t, maxTTL)
	issued := time.Now()
	if err := os.WriteFile(tokenFile, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(cl.env, "VAULT_TOKEN")
	cl.env["VAULT_TOKEN_FILE"] = tokenFile
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	if code, body := get(t, a.url+"/readyz"); code != 200 {
		t.Fatalf("readyz with a live token: %d %s", code, body)
	}

	// The token expires at issued+maxTTL; /readyz names it within 5 s (200
	// with vault in "degraded"; the strict form 503).
	waitStatus(t, a.url+"/readyz?strict=1", 503, "vault token is invalid or expired", time.Until(issued.Add(maxTTL))+5*time.Second)
	waitStatus(t, a.url+"/readyz", 200, `"degraded":["vault"]`, time.Second)
	if r := cl.as(owner, "POST", a.url+"/v1/credentials", map[string]any{"name": "x", "service": "openai", "value": "sk-ready-0001"}); r.status != 503 {
		t.Fatalf("a write while the token is expired: %d %s", r.status, r.body)
	}

	// A fresh login puts a new token in the file: ready again, no restart.
	second := cl.vault.ShortLivedToken(t, maxTTL)
	if err := os.WriteFile(tokenFile, []byte(second+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.url+"/readyz?strict=1", 200, `"vault":"ok"`, 10*time.Second)
	if r := cl.as(owner, "POST", a.url+"/v1/credentials", map[string]any{"name": "y", "service": "openai", "value": "sk-ready-0002"}); r.status != 201 {
		t.Fatalf("a write after the fresh login: %d %s", r.status, r.body)
	}

	logs := a.logs.String()
	for _, tok := range []string{first, second} {
		if strings.Contains(logs, tok) {
			t.Fatal("a token is in the log")
		}
	}
	if strings.Contains(logs, "maximum lifetime") {
		t.Error("the old catch-all renewal text is still logged")
	}
	if !strings.Contains(logs, "logged in again") {
		t.Errorf("no log line for the new login:\n%s", logs)
	}
}

// TestDevTransitJSONLimitFlag: the standalone dev transit server's string
// limit is configurable; nonsense values are refused before it starts.
func TestDevTransitJSONLimitFlag(t *testing.T) {
	for _, v := range []string{"0", "-2"} {
		var errOut strings.Builder
		err := run(context.Background(), []string{"credvault", "devtransit", "--max-request-json-strings", v, "--data", t.TempDir()},
			func(string) string { return "" }, io.Discard, &errOut)
		if err == nil || !strings.Contains(err.Error(), "--max-request-json-strings") {
			t.Errorf("--max-request-json-strings %s: err = %v", v, err)
		}
	}
}
