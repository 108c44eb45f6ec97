package credvault

import (
	"context"
	"crypto/ed25519"
	"strings"
	"time"

	"github.com/google/uuid"
)

// API key formats.
const (
	KeyFormatOpaque = "opaque"
	KeyFormatJWT    = "jwt"
	maxAgentLen     = 200
)

// JWKSMaxAge is how long a verifier may cache GET /.well-known/jwks.json
// (its Cache-Control max-age).
const JWKSMaxAge = 5 * time.Minute

// SigningKeyRefresh is how often every instance rereads the JWT signing
// key from Vault: a new version is in every instance's JWKS at most this
// long after Vault created it, and a raised min_decryption_version refuses
// old JWT keys within it.
const SigningKeyRefresh = 10 * time.Second

// SigningPublishDelay is how long a new signing-key version is published
// in the JWKS before credvault signs with it: the JWKS's max-age, plus the
// time every instance takes to reread the key, plus a minute for a
// credvault clock ahead of Vault's. A verifier that cached the JWKS just
// before the rotation holds the new kid by the time a key carries it, so
// it never needs to refetch on an unknown kid (jose, for one, will not
// within 30 s of its last fetch).
const SigningPublishDelay = JWKSMaxAge + SigningKeyRefresh + time.Minute

// SigningKeyVersion is one version of the transit signing key: its
// Ed25519 public key and when Vault created it (its creation_time).
type SigningKeyVersion struct {
	Public  ed25519.PublicKey
	Created time.Time
}

// Revocation is one entry of the revocation feed: a JWT key (jti = the key
// id) that stops being valid at NotAfter, before its own exp. NotAfter is
// the revocation time, or for a rolled key the end of its grace period
// (which may be in the future). Cursor orders the feed.
type Revocation struct {
	Cursor   int64     `json:"cursor"`
	JTI      string    `json:"jti"`
	NotAfter time.Time `json:"not_after"`
	Reason   string    `json:"reason"` // "revoked", "rolled" or "deleted"
}

// MaxJWTLen bounds a presented JWT key: credvault's own are about 500
// bytes; anything much longer is not one.
const MaxJWTLen = 4096

// LooksLikeJWS reports whether s has the shape of a compact JWS: a JSON
// header (base64url of `{"` starts "eyJ") and three dot-separated parts,
// at most MaxJWTLen long. It only routes a presented key (or refuses one
// in a URL); the JOSE library parses it.
func LooksLikeJWS(s string) bool {
	return len(s) > 3 && len(s) <= MaxJWTLen && s[:3] == "eyJ" && strings.Count(s, ".") == 2
}

// checkFormat validates the format and agent label of a new key.
func checkFormat(format string, agent *string) (string, *string, error) {
	switch format {
	case "":
		format = KeyFormatOpaque
	case KeyFormatOpaque, KeyFormatJWT:
	default:
		return "", nil, Errorf(EINVALID, "field \"format\" must be one of: opaque jwt")
	}
	if agent == nil {
		return format, nil, nil
	}
	a := strings.TrimSpace(*agent)
	switch {
	case format != KeyFormatJWT:
		return "", nil, Errorf(EINVALID, "field \"agent\" is only for format \"jwt\" (it becomes the key's agent claim)")
	case a == "" || len(a) > maxAgentLen:
		return "", nil, Errorf(EINVALID, "field \"agent\" must be 1-%d characters", maxAgentLen)
	}
	return format, &a, nil
}

// mintFormat issues k's key in its format. A JWT key gets its id here,
// because the id is the token's jti and the token is signed before the
// row is written.
func (s *APIKeyService) mintFormat(ctx context.Context, k *APIKey) (Secret, error) {
	if k.Format != KeyFormatJWT {
		k.Format = KeyFormatOpaque
		return s.mint(k)
	}
	if s.JWT == nil {
		return Secret{}, Errorf(EUNAVAILABLE, "JWT API keys are not configured on this server")
	}
	if k.Mode != "live" && k.Mode != "test" {
		return Secret{}, Errorf(EINVALID, "field \"mode\" must be one of: live test")
	}
	k.ID = uuid.NewString()
	m, err := s.JWT.MintJWT(ctx, k)
	if err != nil {
		return Secret{}, err
	}
	k.Hash, k.Prefix, k.Last4, k.SigningVersion = m.Hash, m.Prefix, m.Last4, m.SigningVersion
	k.Display = m.Prefix + "_…" + m.Last4
	return m.Key, nil
}

// FindRevocations is the revocation feed for offline verifiers of JWT
// keys: the org's keys that stopped being valid before their exp, after
// cursor since (0 = from the start), at most limit (1-1000, default 100).
// Errors: EFORBIDDEN (scope keys:verify), EINVALID (since or limit).
func (s *APIKeyService) FindRevocations(ctx context.Context, since int64, limit int) ([]*Revocation, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysVerify); err != nil {
		return nil, err
	}
	if since < 0 {
		return nil, Errorf(EINVALID, "query parameter \"since\" must be a cursor from an earlier answer (0 or more)")
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return nil, Errorf(EINVALID, "query parameter \"limit\" must be from 1 to 1000")
	}
	return s.Store.FindRevocations(ctx, p.OrgID, since, limit)
}

// jwtVerificationError is the 401 of a JWT key refused for a reason only
// signed keys have.
func jwtVerificationError(code string) error {
	e := &Error{Code: EUNAUTHORIZED}
	switch code {
	case VerifyBadSignature:
		e.Reason, e.Message = "invalid_signature", "JWT API key signature does not verify: the key was altered; use the key exactly as issued"
	case VerifyUnknownKid:
		e.Reason, e.Message = "unknown_kid", "JWT API key names a signing key (kid) credvault does not have: it was not issued by this credvault"
	case VerifyNotYetValid:
		e.Reason, e.Message = "not_yet_valid_api_key", "JWT API key is not valid yet (nbf is in the future): check the clocks or wait"
	case VerifyWrongIssuer:
		e.Reason, e.Message = "wrong_issuer", "JWT API key was issued by another issuer (iss): use a key this credvault issued"
	case VerifyKeyRetired:
		e.Reason, e.Message = "retired_signing_key", "JWT API key was signed by a signing key version that has been retired (min_decryption_version raised): roll it or create a new one"
	}
	return e
}
