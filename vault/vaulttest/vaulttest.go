// Package vaulttest gives tests a Vault transit engine to talk to: the
// in-process dev transit server by default, or the real Vault/OpenBao named
// by VAULT_ADDR and VAULT_TOKEN. The same tests then prove that credvault
// works against both, with no code change.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"credvault/vault/devtransit"
)

// Target is a transit engine for one test: Addr and Token reach it, Mount
// is a transit mount private to this test. Dev is the in-process server
// (nil against a real Vault), for tests that need its test hooks.
type Target struct {
	Addr  string
	Token string
	Mount string
	Dev   *devtransit.Server
	API   *vaultapi.Client

	appRole *devtransit.AppRole // the in-process server's role, if any
}

// Real reports whether tests run against a real Vault or OpenBao.
func Real() bool { return os.Getenv("VAULT_ADDR") != "" && os.Getenv("VAULT_TOKEN") != "" }

// Start returns a target with a fresh transit mount. Against a real server
// it enables transit at a random path and disables it when the test ends;
// in-process it starts a dev transit server on a loopback port with its
// own data directory.
func Start(t testing.TB) *Target {
	t.Helper()
	return StartDev(t, devtransit.Options{})
}

// StartDev is Start with options for the in-process server (its Token and
// DataDir are set here); against a real server the options are ignored, so
// a test relying on them checks Dev != nil or skips with a reason.
func StartDev(t testing.TB, opts devtransit.Options) *Target {
	t.Helper()
	tg := &Target{Mount: "cvtest-" + randomHex(6)}
	if Real() {
		tg.Addr, tg.Token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	} else {
		tg.Token = "test-root-" + randomHex(8)
		opts.Token, opts.DataDir = tg.Token, t.TempDir()
		tg.appRole = opts.AppRole
		srv, err := devtransit.New(opts)
		if err != nil {
			t.Fatalf("vaulttest: devtransit: %v", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("vaulttest: devtransit Serve: %v", err)
			}
		})
		tg.Addr, tg.Dev = "http://"+ln.Addr().String(), srv
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = tg.Addr
	api, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api.SetToken(tg.Token)
	tg.API = api
	if err := api.Sys().Mount(tg.Mount, &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("vaulttest: enable transit at %s: %v", tg.Mount, err)
	}
	t.Cleanup(func() {
		if err := api.Sys().Unmount(tg.Mount); err != nil {
			t.Errorf("vaulttest: disable %s: %v", tg.Mount, err)
		}
	})
	return tg
}

// CreateKey creates a transit key on the target's mount.
func (tg *Target) CreateKey(t testing.TB, name string, derived bool) {
	t.Helper()
	_, err := tg.API.Logical().Write(tg.Mount+"/keys/"+name, map[string]any{"derived": derived})
	if err != nil {
		t.Fatalf("vaulttest: create key %s: %v", name, err)
	}
}

// ShortLivedToken returns a fresh renewable token that lives at most maxTTL
// (a "fresh login"). Against a real server it is a child of VAULT_TOKEN
// made with auth/token/create (policy root, explicit_max_ttl); in-process
// it is an AppRole login, so the server must have been started by StartDev
// with an AppRole whose TokenMaxTTL is maxTTL.
func (tg *Target) ShortLivedToken(t testing.TB, maxTTL time.Duration) string {
	t.Helper()
	if tg.Dev == nil {
		renewable := true
		sec, err := tg.API.Auth().Token().Create(&vaultapi.TokenCreateRequest{
			Policies: []string{"root"}, TTL: maxTTL.String(), ExplicitMaxTTL: maxTTL.String(), Renewable: &renewable,
		})
		if err != nil || sec == nil || sec.Auth == nil {
			t.Fatalf("vaulttest: create a short-lived token: %v", err)
		}
		return sec.Auth.ClientToken
	}
	if tg.appRole == nil || tg.appRole.TokenMaxTTL != maxTTL {
		t.Fatalf("vaulttest: ShortLivedToken(%v) needs StartDev with an AppRole whose TokenMaxTTL is %v", maxTTL, maxTTL)
	}
	sec, err := tg.API.Logical().Write("auth/approle/login", map[string]any{"role_id": tg.appRole.RoleID, "secret_id": tg.appRole.SecretID})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("vaulttest: approle login: %v", err)
	}
	return sec.Auth.ClientToken
}

// CreateSigningKey creates a non-derived ed25519 key, the kind that signs
// credvault's JWT API keys (CREDVAULT_SIGNING_KEY).
func (tg *Target) CreateSigningKey(t testing.TB, name string) {
	t.Helper()
	if _, err := tg.API.Logical().Write(tg.Mount+"/keys/"+name, map[string]any{"type": "ed25519"}); err != nil {
		t.Fatalf("vaulttest: create signing key %s: %v", name, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
