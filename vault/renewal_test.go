package vault

import (
	"errors"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

// TestRenewalOutcomeIsHonest: the log names the max TTL only when a
// renewal was capped by it, and a refusal as a refusal with its reason.
func TestRenewalOutcomeIsHonest(t *testing.T) {
	denied := renewalOutcome(errors.New("Error making API request. Code: 403. Errors: * permission denied"), false)
	other := renewalOutcome(errors.New("Code: 400. Errors: * lease is not renewable"), true)
	capped := renewalOutcome(nil, true)
	for _, s := range []string{denied, other} {
		if strings.Contains(s, "maximum") || !strings.Contains(s, "refused") {
			t.Errorf("a refusal reads %q", s)
		}
	}
	if !strings.Contains(denied, "renew-self") || !strings.Contains(other, "lease is not renewable") {
		t.Errorf("refusals do not say why: %q / %q", denied, other)
	}
	if !strings.Contains(capped, "maximum TTL") {
		t.Errorf("a capped renewal reads %q", capped)
	}
	full := &vaultapi.Secret{Auth: &vaultapi.SecretAuth{LeaseDuration: 3600}}
	cut := &vaultapi.Secret{Auth: &vaultapi.SecretAuth{LeaseDuration: 20},
		Warnings: []string{`TTL of "1h0m0s" exceeded the effective max_ttl of "20s"; TTL value is capped accordingly`}}
	if cappedByMaxTTL(full) || !cappedByMaxTTL(cut) || !cappedByMaxTTL(&vaultapi.Secret{Auth: &vaultapi.SecretAuth{}}) {
		t.Error("cappedByMaxTTL")
	}
}
