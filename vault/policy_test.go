package vault

import (
	"os"
	"slices"
	"testing"

	"github.com/hashicorp/hcl"
)

// TestPolicyLeastPrivilege reads vault/policy.hcl as Vault does (HCL) and
// checks that the token may change only min_decryption_version in the key's
// config, may sign only with the JWT signing key, and may never create
// keys or manage transit.
func TestPolicyLeastPrivilege(t *testing.T) {
	raw, err := os.ReadFile("policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var pol struct {
		Path map[string]struct {
			Capabilities      []string            `hcl:"capabilities"`
			AllowedParameters map[string][]string `hcl:"allowed_parameters"`
		} `hcl:"path"`
	}
	if err := hcl.Unmarshal(raw, &pol); err != nil {
		t.Fatalf("policy.hcl does not parse: %v", err)
	}
	want := map[string][]string{
		"transit/encrypt/credvault":     {"update"},
		"transit/decrypt/credvault":     {"update"},
		"transit/rewrap/credvault":      {"update"},
		"transit/keys/credvault":        {"read"},
		"transit/keys/credvault/config": {"update"},
		"auth/token/renew-self":         {"update"},
		"auth/token/lookup-self":        {"read"},
		// JWT API keys: sign with the signing key, read its public keys.
		"transit/sign/credvault-jwt": {"update"},
		"transit/keys/credvault-jwt": {"read"},
	}
	if len(pol.Path) != len(want) {
		t.Errorf("policy has %d paths, want %d", len(pol.Path), len(want))
	}
	for p, caps := range want {
		got, ok := pol.Path[p]
		if !ok || !slices.Equal(got.Capabilities, caps) {
			t.Errorf("path %s: got %v, want capabilities %v", p, got.Capabilities, caps)
		}
	}
	cfg := pol.Path["transit/keys/credvault/config"].AllowedParameters
	if _, ok := cfg["min_decryption_version"]; !ok || len(cfg) != 1 {
		t.Errorf("config allowed_parameters: got %v, want only min_decryption_version", cfg)
	}
	for p, rule := range pol.Path {
		if p != "transit/keys/credvault/config" && len(rule.AllowedParameters) > 0 {
			t.Errorf("unexpected allowed_parameters on %s", p)
		}
	}
}
