package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.TransitMount != "transit" || cfg.TransitKey != "credvault" || cfg.SigningKey != "credvault-jwt" || cfg.Issuer != "" ||
		cfg.KeyPrefix != "cv" || cfg.SecretCacheTTL != 30*time.Second || cfg.EgressAllowPrivate ||
		strings.Join(cfg.AuthHeaders, ",") != "X-API-Key,Authorization" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadConfigFileVariants(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s.from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN_FILE": tokenFile, "CREDVAULT_SECRET_CACHE_TTL": "0",
		"CREDVAULT_AUTH_HEADERS": "X-API-Key, Authorization, nected-api-key"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VaultToken.Reveal() != "s.from-file" {
		t.Fatalf("token from file = %q", cfg.VaultToken.Reveal())
	}
	if cfg.SecretCacheTTL != 0 || strings.Join(cfg.AuthHeaders, ",") != "X-API-Key,Authorization,nected-api-key" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

// TestAuthHeadersAddToDefaults: CREDVAULT_AUTH_HEADERS adds headers; the
// defaults keep working (README and SPEC: "add e.g. nected-api-key").
func TestAuthHeadersAddToDefaults(t *testing.T) {
	for v, want := range map[string]string{
		"nected-api-key":                 "nected-api-key,X-API-Key,Authorization",
		"nected-api-key, x-api-key":      "nected-api-key,x-api-key,Authorization",
		"Authorization,X-Org-Key":        "Authorization,X-Org-Key,X-API-Key",
		"X-API-Key,Authorization,nected": "X-API-Key,Authorization,nected",
	} {
		cfg, err := loadConfig(envOf(map[string]string{"CREDVAULT_AUTH_HEADERS": v}))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := strings.Join(cfg.AuthHeaders, ","); got != want {
			t.Errorf("%q: headers %s, want %s", v, got, want)
		}
	}
}

func TestLoadConfigRejectsBadValues(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	cases := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"CREDVAULT_ADDR": "8080"}, "CREDVAULT_ADDR"},
		{map[string]string{"CREDVAULT_ADDR": ":99999"}, "CREDVAULT_ADDR"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{map[string]string{"VAULT_ADDR": "vault:8200"}, "VAULT_ADDR"},
		{map[string]string{"VAULT_ROLE_ID": "r"}, "VAULT_ROLE_ID"},
		{map[string]string{"CREDVAULT_TRANSIT_MOUNT": "bad mount"}, "CREDVAULT_TRANSIT_MOUNT"},
		{map[string]string{"CREDVAULT_TRANSIT_KEY": "a/b"}, "CREDVAULT_TRANSIT_KEY"},
		{map[string]string{"CREDVAULT_KEY_PREFIX": "Bad_"}, "CREDVAULT_KEY_PREFIX"},
		{map[string]string{"CREDVAULT_SIGNING_KEY": "a/b"}, "CREDVAULT_SIGNING_KEY"},
		{map[string]string{"CREDVAULT_SIGNING_KEY": "credvault"}, "CREDVAULT_SIGNING_KEY"},
		{map[string]string{"CREDVAULT_ISSUER": "credvault.example"}, "CREDVAULT_ISSUER"},
		{map[string]string{"CREDVAULT_ISSUER": "ftp://credvault.example"}, "CREDVAULT_ISSUER"},
		{map[string]string{"CREDVAULT_AUTH_HEADERS": "X-API-Key,Bad Header"}, "CREDVAULT_AUTH_HEADERS"},
		{map[string]string{"CREDVAULT_AUTH_HEADERS": "x-api-key,X-API-Key"}, "CREDVAULT_AUTH_HEADERS"},
		{map[string]string{"CREDVAULT_AUTH_HEADERS": " , "}, "CREDVAULT_AUTH_HEADERS"},
		{map[string]string{"REDIS_URL": "http://x"}, "REDIS_URL"},
		{map[string]string{"CREDVAULT_REDIS_TIMEOUT": "0"}, "CREDVAULT_REDIS_TIMEOUT"},
		{map[string]string{"CREDVAULT_REDIS_TIMEOUT": "11s"}, "CREDVAULT_REDIS_TIMEOUT"},
		{map[string]string{"CREDVAULT_SECRET_CACHE_TTL": "soon"}, "CREDVAULT_SECRET_CACHE_TTL"},
		{map[string]string{"CREDVAULT_SECRET_CACHE_TTL": "-1s"}, "CREDVAULT_SECRET_CACHE_TTL"},
		{map[string]string{"CREDVAULT_SECRET_CACHE_TTL": "48h"}, "CREDVAULT_SECRET_CACHE_TTL"},
		{map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "yes please"}, "CREDVAULT_EGRESS_ALLOW_PRIVATE"},
		{map[string]string{"CREDVAULT_LOG_LEVEL": "loud"}, "CREDVAULT_LOG_LEVEL"},
		{map[string]string{"CREDVAULT_PUBLIC_URL": "vault.example.com"}, "CREDVAULT_PUBLIC_URL"},
		{map[string]string{"CREDVAULT_PUBLIC_URL": "ftp://vault.example.com"}, "CREDVAULT_PUBLIC_URL"},
		{map[string]string{"CREDVAULT_PUBLIC_URL": "https://vault.example.com/console"}, "CREDVAULT_PUBLIC_URL"},
		{map[string]string{"CREDVAULT_PUBLIC_URL": "https://vault.example.com?x=1"}, "CREDVAULT_PUBLIC_URL"},
		{map[string]string{"VAULT_TOKEN": "a", "VAULT_TOKEN_FILE": empty}, "VAULT_TOKEN_FILE"},
		{map[string]string{"VAULT_TOKEN_FILE": filepath.Join(dir, "missing")}, "VAULT_TOKEN_FILE"},
		{map[string]string{"DATABASE_URL_FILE": empty}, "DATABASE_URL_FILE"},
	}
	for _, tc := range cases {
		_, err := loadConfig(envOf(tc.env))
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.wantVar+": ") || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q, want one line starting with %s", tc.env, msg, tc.wantVar)
		}
	}
}

func TestConfigErrorsNeverEchoSecrets(t *testing.T) {
	const pw = "hunter2-PLANTED"
	_, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://u:" + pw + "@h:notaport/db"}))
	if err == nil {
		t.Fatal("bad DATABASE_URL accepted")
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("error echoes the password: %v", err)
	}
}

func TestServeRefusesWithoutDatabaseURL(t *testing.T) {
	err := run(context.Background(), []string{"credvault", "serve"}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(cliMessage(err), "DATABASE_URL: required") || strings.Contains(cliMessage(err), "\n") {
		t.Fatalf("err = %v, want one line about DATABASE_URL", err)
	}
	err = run(context.Background(), []string{"credvault", "serve"}, envOf(map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/db"}), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(cliMessage(err), "VAULT_ADDR: required") {
		t.Fatalf("err = %v, want one line about VAULT_ADDR", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run(context.Background(), []string{"credvault", "fly"}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), []string{"credvault"}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("no command accepted")
	}
	if err := run(context.Background(), []string{"credvault", "migrate", "down"}, envOf(map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/db"}), io.Discard, io.Discard); err == nil {
		t.Fatal("migrate down accepted")
	}
}
