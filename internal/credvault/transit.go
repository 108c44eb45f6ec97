package credvault

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// TransitItem is one input of a batch transit call. Context is the raw
// derivation context; Plaintext is for encrypt, Ciphertext for decrypt and
// rewrap.
type TransitItem struct {
	Plaintext  []byte
	Ciphertext string
	Context    []byte
}

// TransitResult is one output of a batch transit call, in input order.
type TransitResult struct {
	Ciphertext string
	Plaintext  []byte
	KeyVersion int
	Err        error
}

// Transit is the encryption service credentials are stored through (Vault's
// transit engine). Errors: EUNAVAILABLE when Vault is down; EINTERNAL for a
// ciphertext Vault refuses (wrong context, altered data).
type Transit interface {
	Encrypt(ctx context.Context, plaintext, derivation []byte) (string, error)
	Decrypt(ctx context.Context, ciphertext string, derivation []byte) ([]byte, error)
}

// ErrUndecryptable is the cause a Transit carries when Vault refuses a
// stored ciphertext: wrong derivation context, altered data, or a key
// version that was retired (min_decryption_version) or never existed on
// this key (a Vault whose keys were lost). Retrying cannot help.
var ErrUndecryptable = errors.New("vault refused the stored ciphertext")

// ReasonUndecryptable is the API error code of a credential whose stored
// value Vault refuses to decrypt (HTTP 500, documented in api/openapi.yaml).
const ReasonUndecryptable = "credential_undecryptable"

// Rewrapper is what the rewrap job needs from Vault.
type Rewrapper interface {
	RewrapBatch(ctx context.Context, items []TransitItem) ([]TransitResult, error)
	LatestVersion(ctx context.Context) (int, error)
	SetMinDecryptionVersion(ctx context.Context, v int) error
}

// CredentialContext is the derivation context of a credential's value. It
// binds a ciphertext to its org and row: moved to another row or org, it no
// longer decrypts.
func CredentialContext(orgID, credentialID string) []byte {
	return []byte("org:" + orgID + "|cred:" + credentialID)
}

// CiphertextVersion returns N of a "vault:vN:..." ciphertext. Errors:
// EINVALID when the text is not in that form.
func CiphertextVersion(ciphertext string) (int, error) {
	rest, ok := strings.CutPrefix(ciphertext, "vault:v")
	if !ok {
		return 0, Errorf(EINVALID, "ciphertext has no vault:v prefix")
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, Errorf(EINVALID, "ciphertext has no version separator")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return 0, Errorf(EINVALID, "ciphertext version %q is not a positive number", num)
	}
	return n, nil
}
