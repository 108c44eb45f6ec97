package vault

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"credvault/internal/credvault"
)

// SigningKeyInfo is what credvault reads from its transit signing key
// (CREDVAULT_SIGNING_KEY): its versions' Ed25519 public keys and the range
// of versions allowed to verify.
type SigningKeyInfo struct {
	Name                 string
	Type                 string
	Derived              bool
	LatestVersion        int
	MinDecryptionVersion int
	// PublicKeys holds every version's raw 32-byte public key and
	// creation_time, below MinDecryptionVersion too (callers decide what
	// to publish).
	PublicKeys map[int]credvault.SigningKeyVersion
}

// ReadSigningKey reads a transit signing key (needs `read` on
// <mount>/keys/<name>). Errors: EUNAVAILABLE wrapping ErrKeyNotFound when
// it is missing, EUNAVAILABLE when Vault is down, EINTERNAL for an answer
// that is not an ed25519 key's.
func (c *Client) ReadSigningKey(ctx context.Context, name string) (SigningKeyInfo, error) {
	s, err := c.api.Logical().ReadWithContext(ctx, fmt.Sprintf("%s/keys/%s", c.mount, name))
	if err != nil {
		return SigningKeyInfo{}, translate(err, "vault read signing key")
	}
	if s == nil || s.Data == nil {
		return SigningKeyInfo{}, &credvault.Error{Code: credvault.EUNAVAILABLE, Err: ErrKeyNotFound,
			Message: fmt.Sprintf("transit signing key %q not found on mount %q", name, c.mount)}
	}
	ki := SigningKeyInfo{Name: name, PublicKeys: map[int]credvault.SigningKeyVersion{}}
	ki.Type, _ = s.Data["type"].(string)
	ki.Derived, _ = s.Data["derived"].(bool)
	if ki.LatestVersion, err = jsonInt(s.Data["latest_version"]); err != nil {
		return ki, credvault.Wrap(credvault.EINTERNAL, err, "vault read signing key: latest_version")
	}
	if ki.MinDecryptionVersion, err = jsonInt(s.Data["min_decryption_version"]); err != nil {
		return ki, credvault.Wrap(credvault.EINTERNAL, err, "vault read signing key: min_decryption_version")
	}
	if ki.Type != "ed25519" || ki.Derived {
		return ki, nil // CheckSigningKey says what is wrong
	}
	keys, _ := s.Data["keys"].(map[string]any)
	for v, raw := range keys {
		n, err := strconv.Atoi(v)
		entry, ok := raw.(map[string]any)
		if err != nil || !ok {
			return ki, credvault.Errorf(credvault.EINTERNAL, "vault read signing key: unexpected keys entry %q", v)
		}
		text, _ := entry["public_key"].(string)
		pub, err := base64.StdEncoding.DecodeString(text)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return ki, credvault.Errorf(credvault.EINTERNAL, "vault read signing key: version %d has no Ed25519 public key", n)
		}
		created, err := time.Parse(time.RFC3339Nano, fmt.Sprint(entry["creation_time"]))
		if err != nil {
			return ki, credvault.Errorf(credvault.EINTERNAL, "vault read signing key: version %d has no RFC 3339 creation_time", n)
		}
		ki.PublicKeys[n] = credvault.SigningKeyVersion{Public: ed25519.PublicKey(pub), Created: created}
	}
	return ki, nil
}

// CheckSigningKey verifies, at start-up, that the signing key exists and
// is a non-derived ed25519 key (a derived key has no single public key to
// publish). Errors: EUNAVAILABLE (missing, Vault down) or EINVALID (wrong
// type), each saying how to fix it.
func (c *Client) CheckSigningKey(ctx context.Context, name string) error {
	ki, err := c.ReadSigningKey(ctx, name)
	if err != nil {
		if ErrorIs(err, ErrKeyNotFound) {
			return &credvault.Error{Code: credvault.EUNAVAILABLE, Err: ErrKeyNotFound, Message: fmt.Sprintf(
				"transit signing key %q not found on mount %q: create it with `vault write %s/keys/%s type=ed25519` (or set CREDVAULT_SIGNING_KEY)",
				name, c.mount, c.mount, name)}
		}
		return err
	}
	if ki.Type != "ed25519" || ki.Derived {
		return credvault.Errorf(credvault.EINVALID,
			"transit signing key %q on mount %q is a %s key (derived: %v): JWT API keys need a non-derived ed25519 key; create one with `vault write %s/keys/<name> type=ed25519` and set CREDVAULT_SIGNING_KEY",
			name, c.mount, ki.Type, ki.Derived, c.mount)
	}
	return nil
}

// EnsureSigningKey creates the non-derived ed25519 signing key when it is
// missing, then checks it. For `credvault dev` only: in production an
// operator creates it and credvault's policy cannot.
func (c *Client) EnsureSigningKey(ctx context.Context, name string) error {
	path := fmt.Sprintf("%s/keys/%s", c.mount, name)
	if _, err := c.api.Logical().WriteWithContext(ctx, path, map[string]any{"type": "ed25519"}); err != nil {
		return translate(err, "vault create signing key")
	}
	return c.CheckSigningKey(ctx, name)
}

// Sign signs input with version (0 = the latest) of signing key name
// through transit/sign (needs `update` on <mount>/sign/<name>): the private
// key never leaves Vault. It returns the raw 64-byte Ed25519 signature and
// the version that made it. Errors: EUNAVAILABLE (Vault down, key missing,
// permission denied), EINTERNAL (an answer that is not an Ed25519
// signature).
func (c *Client) Sign(ctx context.Context, name string, input []byte, version int) (sig []byte, used int, err error) {
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe("sign", err, time.Since(start)) }()
	}
	s, err := c.api.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/sign/%s", c.mount, name),
		map[string]any{"input": b64(input), "key_version": version})
	if err != nil {
		return nil, 0, translate(err, "vault sign")
	}
	if s == nil || s.Data == nil {
		return nil, 0, credvault.Errorf(credvault.EINTERNAL, "vault sign: empty answer")
	}
	text, _ := s.Data["signature"].(string)
	return parseSignature(text)
}

// parseSignature splits "vault:v<N>:<base64>" into the signature and N.
func parseSignature(text string) ([]byte, int, error) {
	rest, ok := strings.CutPrefix(text, "vault:v")
	ver, enc, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(ver)
	if !ok || !ok2 || err != nil || n < 1 {
		return nil, 0, credvault.Errorf(credvault.EINTERNAL, "vault sign: signature is not vault:v<N>:<base64>")
	}
	sig, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, 0, credvault.Errorf(credvault.EINTERNAL, "vault sign: not an Ed25519 signature")
	}
	return sig, n, nil
}

// RotateSigningKey adds a version to signing key name; it is published in
// the JWKS at once and signs new keys after credvault.SigningPublishDelay. Operators (and tests) use it; credvault's policy does
// not grant it.
func (c *Client) RotateSigningKey(ctx context.Context, name string) error {
	_, err := c.api.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/keys/%s/rotate", c.mount, name), nil)
	return translate(err, "vault rotate signing key")
}

// SetSigningMinVersion makes versions below v stop verifying (keys they
// signed answer 401). Operators (and tests) use it.
func (c *Client) SetSigningMinVersion(ctx context.Context, name string, v int) error {
	_, err := c.api.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/keys/%s/config", c.mount, name),
		map[string]any{"min_decryption_version": v})
	return translate(err, "vault configure signing key")
}

// SigningKey is one transit signing key of a Client, in the shape the
// JWT key machinery consumes (apikey.SigningKeySource).
type SigningKey struct {
	c    *Client
	name string
}

// SigningKey returns the signing key name of c's mount.
func (c *Client) SigningKey(name string) SigningKey { return SigningKey{c: c, name: name} }

// Name is the transit key's name.
func (k SigningKey) Name() string { return k.name }

// PublicKeys returns every version's public key and creation time, and
// min_decryption_version. Errors as ReadSigningKey, and EINVALID when the
// key is not a non-derived ed25519 key.
func (k SigningKey) PublicKeys(ctx context.Context) (map[int]credvault.SigningKeyVersion, int, error) {
	ki, err := k.c.ReadSigningKey(ctx, k.name)
	if err != nil {
		return nil, 0, err
	}
	if ki.Type != "ed25519" || ki.Derived {
		return nil, 0, k.c.CheckSigningKey(ctx, k.name)
	}
	return ki.PublicKeys, ki.MinDecryptionVersion, nil
}

// Sign signs input with the given version. Errors as Client.Sign, and
// EINTERNAL when Vault signed with another version.
func (k SigningKey) Sign(ctx context.Context, input []byte, version int) ([]byte, error) {
	sig, used, err := k.c.Sign(ctx, k.name, input, version)
	if err == nil && used != version {
		return nil, credvault.Errorf(credvault.EINTERNAL, "vault sign: signed with version %d, asked for %d", used, version)
	}
	return sig, err
}
