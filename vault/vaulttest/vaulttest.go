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
}

// Real reports whether tests run against a real Vault or OpenBao.
func Real() bool { return os.Getenv("VAULT_ADDR") != "" && os.Getenv("VAULT_TOKEN") != "" }

// Start returns a target with a fresh transit mount. Against a real server
// it enables transit at a random path and disables it when the test ends;
// in-process it starts a dev transit server on a loopback port with its
// own data directory.
func Start(t testing.TB) *Target {
	t.Helper()
	tg := &Target{Mount: "cvtest-" + randomHex(6)}
	if Real() {
		tg.Addr, tg.Token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	} else {
		tg.Token = "test-root-" + randomHex(8)
		srv, err := devtransit.New(devtransit.Options{Token: tg.Token, DataDir: t.TempDir()})
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
