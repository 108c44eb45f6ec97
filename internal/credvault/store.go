package credvault

import (
	"cmp"
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Page is keyset pagination: items after Cursor, at most Limit. Cursor is
// the encoded KeysetCursor of the last item of the previous page ("" for
// the first page).
type Page struct {
	Cursor string
	Limit  int
}

// KeysetCursor is a position in a newest-first listing (created_at DESC,
// id DESC): the created_at and id of the last item shown. Its encoded form
// is opaque to clients.
type KeysetCursor struct {
	CreatedAt time.Time
	ID        string
}

// Encode returns the cursor as an opaque URL-safe token: base64url of
// "<unix microseconds>:<id>" (PostgreSQL keeps microseconds).
func (c KeysetCursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.ID))
}

// ParseKeysetCursor decodes a token made by Encode; ok is false for
// anything else. An id that is not a UUID is refused too, so that what
// reaches SQL is always well formed.
func ParseKeysetCursor(s string) (c KeysetCursor, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, false
	}
	ts, id, found := strings.Cut(string(b), ":")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !found || err != nil || !IsUUID(id) {
		return c, false
	}
	return KeysetCursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}, true
}

// IsUUID reports whether s is a UUID in its 36-character text form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if ch != '-' {
				return false
			}
		case '0' <= ch && ch <= '9', 'a' <= ch && ch <= 'f', 'A' <= ch && ch <= 'F':
		default:
			return false
		}
	}
	return true
}

// UserStore persists orgs and users. Every method that changes something
// takes the audit event to write in the same transaction.
type UserStore interface {
	// CreateOrgWithOwner creates an org, its first owner and the owner's
	// first key at once. ECONFLICT when the org name is taken.
	CreateOrgWithOwner(ctx context.Context, org *Org, owner *User, key *APIKey, ev *AuditEvent) error
	// FindOrgByName returns ENOTFOUND when there is none.
	FindOrgByName(ctx context.Context, name string) (*Org, error)
	// CreateUser returns ECONFLICT when the email is taken in the org.
	CreateUser(ctx context.Context, u *User, ev *AuditEvent) error
	// FindUserByID returns ENOTFOUND for an id outside orgID.
	FindUserByID(ctx context.Context, orgID, id string) (*User, error)
	FindUsers(ctx context.Context, orgID string, page Page) ([]*User, error)
	// UpdateUser applies upd; ECONFLICT when it would leave the org without
	// an owner. Role changes invalidate the user's cached keys everywhere
	// and, in the same transaction, revoke the service keys the user
	// created that RoleAllowsServiceKey no longer allows for the new role,
	// and the keys they made for others that RoleAllowsKeyFor no longer
	// allows (their ids go into ev.Data["revoked_keys"]).
	UpdateUser(ctx context.Context, orgID, id string, upd UserUpdate, ev *AuditEvent) (*User, error)
	// DeleteUser removes the user and their keys and revokes every service
	// key they created and every key they made for someone else, in one
	// transaction (refused by every instance at
	// once); ECONFLICT for the last owner.
	DeleteUser(ctx context.Context, orgID, id string, ev *AuditEvent) error
}

// UserUpdate holds the fields a PATCH may change; nil leaves one as it is.
type UserUpdate struct {
	Name *string
	Role *Role
}

// APIKeyStore persists API keys. Revoke and roll notify every instance so
// that their verification caches drop the key at once.
type APIKeyStore interface {
	// CreateAPIKey stores k. For a service key whose CreatedBy names a
	// person, it re-reads their role under a lock in the same transaction:
	// EFORBIDDEN when they are gone or their role no longer allows a
	// service key with k's scopes (a deletion or demotion committed
	// meanwhile). RollAPIKey inserts next under the same check.
	CreateAPIKey(ctx context.Context, k *APIKey, ev *AuditEvent) error
	// FindAPIKeyByID returns ENOTFOUND for an id outside orgID.
	FindAPIKeyByID(ctx context.Context, orgID, id string) (*APIKey, error)
	FindAPIKeys(ctx context.Context, orgID string, f APIKeyFilter) ([]*APIKey, error)
	// RollAPIKey stores next and makes the old key expire at oldExpiresAt
	// (the end of the grace period), pointing it at next.
	RollAPIKey(ctx context.Context, orgID, oldID string, next *APIKey, oldExpiresAt time.Time, ev *AuditEvent) error
	// RevokeAPIKey marks the key revoked (idempotent) and returns it.
	RevokeAPIKey(ctx context.Context, orgID, id string, ev *AuditEvent) (*APIKey, error)
	// UpdateAPIKey applies upd and tells every instance to reload the key;
	// ENOTFOUND for an id outside orgID.
	UpdateAPIKey(ctx context.Context, orgID, id string, upd APIKeyUpdate, ev *AuditEvent) (*APIKey, error)
	// FindAuthKeyByHash is the verification lookup; ENOTFOUND when no key
	// has that hash.
	FindAuthKeyByHash(ctx context.Context, hash [32]byte) (*AuthKey, error)
	// SetAPIKeyDisabled switches the key's own state (disabledBy "" for
	// no user) and tells every instance to reload it; ENOTFOUND for an id
	// outside orgID, ECONFLICT for a revoked key.
	SetAPIKeyDisabled(ctx context.Context, orgID, id string, disabled bool, disabledBy string, ev *AuditEvent) (*APIKey, error)
	// FindRevocations lists orgID's JWT keys that stopped being valid
	// before their exp (revoked, rolled, deleted), after cursor since, in
	// cursor order.
	FindRevocations(ctx context.Context, orgID string, since int64, limit int) ([]*Revocation, error)
}

// APIKeyFilter narrows a key listing, newest first. Zero fields do not
// filter, except Status: "" hides revoked and expired keys.
type APIKeyFilter struct {
	UserID      string // "" = every user's (managers only)
	Status      string // "" or "active", "revoked", "expired", "all"
	Environment string // exact label
	TagKey      string // keys whose tags hold this key…
	TagValue    *string
	CreatedBy   string     // a user id, CreatedByLegacy, or "" for any creator
	Query       string     // case-insensitive substring of the name
	ExpiresBy   *time.Time // active keys expiring before this time
	// IntegrationID keeps the keys of one integration; IntegrationNone
	// keeps the keys of none.
	IntegrationID string
	// Enabled keeps the keys whose own switch is on (true) or off (false).
	Enabled *bool
	Now     time.Time // what "expired" is measured against
	Page
}

// Key statuses, as listings filter them.
const (
	KeyStatusActive  = "active"
	KeyStatusRevoked = "revoked"
	KeyStatusExpired = "expired"
	KeyStatusAll     = "all"
)

// APIKeyUpdate holds what PATCH /v1/api-keys/{id} may change; nil leaves a
// field as it is. The service only lets a change narrow what a key may do.
type APIKeyUpdate struct {
	Name        *string
	Environment *string
	Tags        map[string]string // nil: unchanged
	Scopes      []string          // nil: unchanged
	RateLimit   *RateLimit
	ExpiresAt   *time.Time
	// IntegrationID moves the key: nil leaves it, "" detaches it.
	IntegrationID *string
}

// IntegrationNone as APIKeyFilter.IntegrationID lists the keys that belong
// to no integration.
const IntegrationNone = "none"

// CreatedByLegacy as APIKeyFilter.CreatedBy lists the legacy keys: those
// no known person stands behind.
const CreatedByLegacy = "legacy"

// EndpointStore persists the endpoint registry.
type EndpointStore interface {
	CreateEndpoint(ctx context.Context, e *Endpoint, ev *AuditEvent) error
	// FindEndpoint looks an endpoint up by id or, within orgID, by name.
	// orgID "" searches by id across orgs (forward-auth without a key).
	FindEndpoint(ctx context.Context, orgID, idOrName string) (*Endpoint, error)
	FindEndpoints(ctx context.Context, orgID string, page Page) ([]*Endpoint, error)
	UpdateEndpoint(ctx context.Context, orgID, id string, upd EndpointUpdate, ev *AuditEvent) (*Endpoint, error)
	DeleteEndpoint(ctx context.Context, orgID, id string, ev *AuditEvent) error
}

// EndpointUpdate holds the fields a PATCH may change.
type EndpointUpdate struct {
	Name           *string
	AuthMode       *string
	RequiredScopes *[]string
}

// AuditStore appends and reads audit events.
type AuditStore interface {
	CreateAuditEvent(ctx context.Context, ev *AuditEvent) error
	FindAuditEvents(ctx context.Context, orgID string, f AuditFilter) ([]*AuditEvent, error)
}

// AuditFilter narrows an audit listing; Cursor is an event id.
type AuditFilter struct {
	ResourceType string
	ResourceID   string
	ActorID      string
	Action       string
	Cursor       int64
	Limit        int
}

// KeyMinter makes new API keys: the key (shown once), its hash and the
// public parts listings show.
type KeyMinter interface {
	Mint(env string) (MintedKey, error)
}

// MintedKey is a freshly generated key.
type MintedKey struct {
	Key    Secret
	Hash   [32]byte
	Prefix string // "cv_live"
	Last4  string
	// SigningVersion is the signing key version of a JWT key, else 0.
	SigningVersion int
}

// JWTMinter issues signed (JWT) API keys: it signs k's claims through the
// transit signing key and returns the token with its hash. k.ID must be
// set (it is the jti). Errors: EUNAVAILABLE when Vault cannot sign.
type JWTMinter interface {
	MintJWT(ctx context.Context, k *APIKey) (MintedKey, error)
}

// Verification codes, as POST /v1/api-keys/verify reports them.
const (
	VerifyValid             = "VALID"
	VerifyPublicEndpoint    = "PUBLIC_ENDPOINT"
	VerifyMissing           = "MISSING"
	VerifyMalformed         = "MALFORMED"
	VerifyNotFound          = "NOT_FOUND"
	VerifyExpired           = "EXPIRED"
	VerifyRevoked           = "REVOKED"
	VerifyInsufficientScope = "INSUFFICIENT_SCOPE"
	VerifyRateLimited       = "RATE_LIMITED"
	// VerifyDisabled: the key itself is disabled (POST
	// /v1/api-keys/{id}/disable); VerifyIntegrationDisabled: its
	// integration is. Neither is revoked: enabling restores the key.
	VerifyDisabled            = "DISABLED"
	VerifyIntegrationDisabled = "INTEGRATION_DISABLED"
	// Codes of JWT keys only.
	VerifyBadSignature = "BAD_SIGNATURE"       // the signature does not match the header and payload
	VerifyUnknownKid   = "UNKNOWN_KID"         // no signing key version with that kid
	VerifyNotYetValid  = "NOT_YET_VALID"       // nbf is in the future
	VerifyWrongIssuer  = "WRONG_ISSUER"        // iss is not CREDVAULT_ISSUER
	VerifyKeyRetired   = "SIGNING_KEY_RETIRED" // signed by a version below min_decryption_version
)

// RateDecision is the rate limiter's answer for one request.
type RateDecision struct {
	Limited    bool // the key has a limit at all
	Allowed    bool
	Limit      int
	Remaining  int
	Reset      time.Duration
	RetryAfter time.Duration
}

// Verification is the result of checking a presented key: its code and,
// unless MALFORMED or NOT_FOUND, the key.
type Verification struct {
	Code string
	Key  *AuthKey
	Rate RateDecision
}

// KeyVerifier checks presented keys on the hot path (checksum, cache,
// expiry, revocation, rate limit). It never returns an error for a bad
// key, only a code; err is for PostgreSQL being down (EUNAVAILABLE).
type KeyVerifier interface {
	Verify(ctx context.Context, key string) (Verification, error)
}

// CredentialStore persists credentials, their shares and usage. Changes
// notify every instance ("cred:<id>") so that cached values are dropped.
type CredentialStore interface {
	// CreateCredential stores c (with its ciphertext) and its shares.
	// EINVALID when a shared user is not in the org.
	CreateCredential(ctx context.Context, c *Credential, ev *AuditEvent) error
	// FindCredentialByID returns ENOTFOUND for an id outside orgID.
	FindCredentialByID(ctx context.Context, orgID, id string) (*Credential, error)
	FindCredentials(ctx context.Context, orgID string, f CredentialFilter) ([]*Credential, error)
	// UpdateCredential stores c's editable fields, and its ciphertext only
	// when rotated.
	UpdateCredential(ctx context.Context, c *Credential, rotated bool, evs ...*AuditEvent) error
	// SetCredentialSharing replaces the mode and member list.
	SetCredentialSharing(ctx context.Context, c *Credential, evs ...*AuditEvent) error
	DeleteCredential(ctx context.Context, orgID, id string, ev *AuditEvent) error
	// RecentWorkflows lists workflows that used the credential since then.
	RecentWorkflows(ctx context.Context, credentialID string, since time.Time) ([]WorkflowUse, error)
	FindUsage(ctx context.Context, credentialID string, f UsageFilter) ([]*Usage, error)
	RecordUsage(ctx context.Context, uses []Usage) error

	// The rewrap job: ciphertexts older than version, of every kind
	// (CipherKinds, in that order, each in id order) after the cursor
	// afterID (a CipherRow.Cursor, or "" to start), in one org or all ("").
	CiphertextsBelow(ctx context.Context, orgID string, version int, afterID string, limit int) ([]CipherRow, error)
	CountCiphertextsBelow(ctx context.Context, orgID string, version int) (int, error)
	// UpdateCiphertexts replaces each row's ciphertext if it still holds
	// the old one (a concurrent rotation wins) and returns how many changed.
	UpdateCiphertexts(ctx context.Context, rows []CipherUpdate) (int, error)
}

// CredentialFilter narrows a credential listing to what the caller may use.
type CredentialFilter struct {
	UserID  string // the caller
	Manager bool   // the caller sees every credential of the org
	Service string
	Scope   string // "mine", "shared" or "all"
	Page
}

// UsageFilter pages through a credential's usage, newest first.
type UsageFilter struct {
	Cursor int64
	Limit  int
}

// Ciphertext kinds the rewrap job covers, in the order it does them.
const (
	// CipherValue is credentials.ciphertext: a static value or an OAuth
	// access token (context CredentialContext).
	CipherValue = "value"
	// CipherRefreshToken is an OAuth connection's refresh token (context
	// RefreshTokenContext).
	CipherRefreshToken = "refresh_token"
	// CipherAppSecret is an OAuth app's client secret (context
	// OAuthAppContext).
	CipherAppSecret = "oauth_app_secret"
)

// CipherKinds lists the ciphertext kinds in the rewrap job's order.
var CipherKinds = []string{CipherValue, CipherRefreshToken, CipherAppSecret}

// CipherRow is a stored ciphertext with what its context is made of. ID is
// the credential's id, or the app's for CipherAppSecret.
type CipherRow struct {
	Kind       string `db:"kind"` // one of CipherKinds; "" is CipherValue
	ID         string `db:"id"`
	OrgID      string `db:"org_id"`
	Ciphertext string `db:"ciphertext"`
}

// Context is the row's derivation context.
func (r CipherRow) Context() []byte {
	switch r.Kind {
	case CipherRefreshToken:
		return RefreshTokenContext(r.OrgID, r.ID)
	case CipherAppSecret:
		return OAuthAppContext(r.OrgID, r.ID)
	}
	return CredentialContext(r.OrgID, r.ID)
}

// Cursor is where a listing continues after r: "<kind>/<id>".
func (r CipherRow) Cursor() string {
	return cmp.Or(r.Kind, CipherValue) + "/" + r.ID
}

// CipherUpdate is one rewrapped ciphertext.
type CipherUpdate struct {
	Kind          string // as CipherRow.Kind
	ID            string
	OldCiphertext string
	NewCiphertext string
	KeyVersion    int
}
