package vault

import (
	"context"
	"fmt"

	vaultapi "github.com/hashicorp/vault/api"

	"credvault/internal/credvault"
)

// KeyInfo is what credvault needs to know about its transit key.
type KeyInfo struct {
	Type                 string
	Derived              bool
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int
}

// ReadKey reads the transit key's metadata (needs `read` on
// <mount>/keys/<key>). Errors: EUNAVAILABLE wrapping ErrKeyNotFound when the
// key or mount is missing, EUNAVAILABLE when Vault is down.
func (c *Client) ReadKey(ctx context.Context) (KeyInfo, error) {
	path := fmt.Sprintf("%s/keys/%s", c.mount, c.key)
	s, err := c.api.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return KeyInfo{}, translate(err, "vault read key")
	}
	if s == nil || s.Data == nil {
		return KeyInfo{}, &credvault.Error{Code: credvault.EUNAVAILABLE, Err: ErrKeyNotFound,
			Message: fmt.Sprintf("transit key %q not found on mount %q", c.key, c.mount)}
	}
	var ki KeyInfo
	ki.Type, _ = s.Data["type"].(string)
	ki.Derived, _ = s.Data["derived"].(bool)
	for field, dst := range map[string]*int{
		"latest_version":         &ki.LatestVersion,
		"min_decryption_version": &ki.MinDecryptionVersion,
		"min_encryption_version": &ki.MinEncryptionVersion,
	} {
		n, err := jsonInt(s.Data[field])
		if err != nil {
			return KeyInfo{}, credvault.Wrap(credvault.EINTERNAL, err, "vault read key: field %s", field)
		}
		*dst = n
	}
	return ki, nil
}

// CheckKey verifies, at start-up, that the transit key exists and is a
// derived key. credvault binds every ciphertext to its row through the
// derivation context, and Vault silently ignores a context on a key that is
// not derived, so such a key would void that binding. Errors: EUNAVAILABLE
// (missing key, Vault down) or EINVALID (key not derived), each with a
// message that says how to fix it.
func (c *Client) CheckKey(ctx context.Context) error {
	ki, err := c.ReadKey(ctx)
	if err != nil {
		// Under the least-privilege policy a mistyped key name is not
		// "not found" but 403: the policy grants read on the right name
		// only. Both answers get the same hint.
		if ErrorIs(err, ErrKeyNotFound) || ErrorIs(err, ErrPermissionDenied) {
			cause := ErrKeyNotFound
			if ErrorIs(err, ErrPermissionDenied) {
				cause = ErrPermissionDenied
			}
			return &credvault.Error{Code: credvault.EUNAVAILABLE, Err: cause, Message: fmt.Sprintf(
				"transit key %q on mount %q is missing, or credvault's token may not read it (vault answered %s): "+
					"check CREDVAULT_TRANSIT_KEY and CREDVAULT_TRANSIT_MOUNT; create the key with `vault write -f %s/keys/%s derived=true` "+
					"(after `vault secrets enable -path=%s transit` if the mount is new); and make sure the token's policy (vault/policy.hcl) names %s/keys/%s",
				c.key, c.mount, map[error]string{ErrKeyNotFound: "not found", ErrPermissionDenied: "permission denied"}[cause],
				c.mount, c.key, c.mount, c.mount, c.key)}
		}
		return err
	}
	if !ki.Derived {
		return credvault.Errorf(credvault.EINVALID,
			"transit key %q on mount %q is not derived: credvault needs a derived key (derivation context binds each ciphertext to its row); create a new one with `vault write -f %s/keys/<name> derived=true` and set CREDVAULT_TRANSIT_KEY",
			c.key, c.mount, c.mount)
	}
	return nil
}

// EnsureKey enables the transit mount and creates the derived key when they
// are missing, then checks the key. It is for `credvault dev` only: in
// production the key is created by an operator and credvault's policy does
// not allow creating it.
func (c *Client) EnsureKey(ctx context.Context) error {
	mounts, err := c.api.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return translate(err, "vault list mounts")
	}
	if _, ok := mounts[c.mount+"/"]; !ok {
		if err := c.api.Sys().MountWithContext(ctx, c.mount, &vaultapi.MountInput{Type: "transit"}); err != nil {
			return translate(err, "vault enable transit")
		}
	}
	path := fmt.Sprintf("%s/keys/%s", c.mount, c.key)
	if _, err := c.api.Logical().WriteWithContext(ctx, path, map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
		return translate(err, "vault create key")
	}
	return c.CheckKey(ctx)
}

// LatestVersion is the key version new encryptions use. Errors as ReadKey.
func (c *Client) LatestVersion(ctx context.Context) (int, error) {
	ki, err := c.ReadKey(ctx)
	return ki.LatestVersion, err
}

// RotateKey adds a new version to the transit key; new encryptions use it
// and old ciphertexts still decrypt until min_decryption_version is raised.
func (c *Client) RotateKey(ctx context.Context) error {
	_, err := c.api.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/keys/%s/rotate", c.mount, c.key), nil)
	return translate(err, "vault rotate key")
}

// SetMinDecryptionVersion retires every key version below v: ciphertexts
// made with them no longer decrypt. Run it only after a complete rewrap.
func (c *Client) SetMinDecryptionVersion(ctx context.Context, v int) error {
	_, err := c.api.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/keys/%s/config", c.mount, c.key),
		map[string]any{"min_decryption_version": v})
	return translate(err, "vault configure key")
}
