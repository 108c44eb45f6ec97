package credvault

import (
	"context"
	"time"
	"unsafe"
)

// Role is a user's role in their org.
type Role string

// Roles, from most to least powerful. Owners and admins manage users,
// endpoints and every API key of the org; members manage their own keys.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// Manager reports whether r may manage users, endpoints and others' keys.
func (r Role) Manager() bool { return r == RoleOwner || r == RoleAdmin }

// Org is a tenant: a team whose users, keys and credentials are invisible
// to every other org.
type Org struct {
	ID        string    `json:"id" db:"id"`
	Name      string    `json:"name" db:"name"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// User belongs to exactly one org.
type User struct {
	ID        string    `json:"id" db:"id"`
	OrgID     string    `json:"org_id" db:"org_id"`
	Email     string    `json:"email" db:"email"`
	Name      string    `json:"name" db:"name"`
	Role      Role      `json:"role" db:"role"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
	UpdatedAt time.Time `json:"updated_at" db:"updated_at"`
}

// Key kinds: a user key acts as its user; a service key (for platform
// components) has no user and names the acting user per request.
const (
	KeyKindUser    = "user"
	KeyKindService = "service"
)

// RateLimit is a key's allowance: Requests per WindowSeconds.
type RateLimit struct {
	Requests      int `json:"requests"`
	WindowSeconds int `json:"window_seconds"`
}

// APIKey is an inbound key's metadata. The key itself is never stored:
// only its SHA-256 (Hash), which never leaves the server either.
type APIKey struct {
	ID          string  `json:"id"`
	OrgID       string  `json:"org_id"`
	UserID      *string `json:"user_id"`
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	Mode        string  `json:"mode"`        // "live" or "test": the key's prefix, fixed at creation
	Environment string  `json:"environment"` // a free label: "production", "staging", …
	// Format is "opaque" (a random key) or "jwt" (a signed key, see
	// jwtkeys.go); Agent is the optional agent or integration label a JWT
	// carries as its "agent" claim.
	Format string  `json:"format"`
	Agent  *string `json:"agent"`
	// SigningVersion is the transit signing key version that signed a JWT
	// key (0 for opaque keys).
	SigningVersion int               `json:"-"`
	Prefix         string            `json:"-"`
	Last4          string            `json:"-"`
	Display        string            `json:"display"` // "cv_live_…a1B2"
	Scopes         []string          `json:"scopes"`
	Tags           map[string]string `json:"tags"`
	RateLimit      *RateLimit        `json:"rate_limit"`
	ExpiresAt      *time.Time        `json:"expires_at"`
	RevokedAt      *time.Time        `json:"revoked_at"`
	ReplacedBy     *string           `json:"replaced_by"`
	// CreatedBy is the person the key's power comes from: its creator,
	// or for a key a service key created, that service key's creator.
	// Deleting or demoting them revokes the service keys they stand behind.
	CreatedBy *string `json:"created_by"`
	// Legacy marks a service key from before creators were recorded, or
	// minted by one: no person stands behind it, so an owner should
	// review it (GET /v1/api-keys?created_by=legacy) and revoke it.
	Legacy bool `json:"legacy"`
	// IntegrationID is the integration the key belongs to, if any: while
	// that integration is disabled the key is refused (integration_disabled).
	IntegrationID *string `json:"integration_id"`
	// Enabled is false while the key itself is disabled (api_key_disabled),
	// since DisabledAt, by DisabledBy. Disabling revokes nothing.
	Enabled    bool       `json:"enabled"`
	DisabledAt *time.Time `json:"disabled_at"`
	DisabledBy *string    `json:"disabled_by"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Hash       [32]byte   `json:"-"`
}

// Status is "active", "expired" or "revoked" at time now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	}
	return "active"
}

// AuthKey is what verification needs to know about a key: the key row
// joined with its user's role. It is what the verification cache holds.
type AuthKey struct {
	ID     string
	OrgID  string
	UserID string // "" for service keys
	Kind   string
	Role   Role // the user's role; "" for service keys
	Scopes []string
	// ScopeHeader is Scopes comma-joined, made once when the key is loaded
	// rather than on every forward-auth answer.
	ScopeHeader string
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	RateLimit   *RateLimit
	Hash        [32]byte
	// Format is "opaque" or "jwt"; a JWT key also records the signing key
	// version that signed it, so that raising the signing key's minimum
	// version refuses it even from the cache.
	Format         string
	SigningVersion int
	// Disabled is the key's own switch; IntegrationID and
	// IntegrationDisabled its integration's (read with the key, and
	// dropped from every cache when either changes).
	Disabled            bool
	IntegrationID       string
	IntegrationDisabled bool
}

// Endpoint is an entry of the endpoint registry: a platform API whose
// verification needs no key ("none") or a key with its scopes ("private").
type Endpoint struct {
	ID             string    `json:"id"`
	OrgID          string    `json:"org_id"`
	Name           string    `json:"name"`
	AuthMode       string    `json:"auth_mode"`
	RequiredScopes []string  `json:"required_scopes"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Endpoint auth modes.
const (
	AuthModeNone    = "none"
	AuthModePrivate = "private"
)

// AuditEvent is one append-only record of who did what. Data never holds a
// secret: keys appear as ids and "prefix…last4" at most.
type AuditEvent struct {
	ID           int64          `json:"id"`
	OrgID        string         `json:"org_id"`
	ActorType    string         `json:"actor_type"`
	ActorID      string         `json:"actor_id"`
	Action       string         `json:"action"`
	ResourceType string         `json:"resource_type"`
	ResourceID   string         `json:"resource_id"`
	RequestID    string         `json:"request_id"`
	Data         map[string]any `json:"data"`
	CreatedAt    time.Time      `json:"created_at"`
	// Emit, when set, is the event this change tells the org's webhooks
	// (events.go): the store writes it, its deliveries and their jobs in
	// the transaction of the change (the outbox).
	Emit *Event `json:"-"`
}

// Principal is the authenticated caller of a request: the key and, for a
// user key, its user and role.
type Principal struct {
	OrgID  string
	UserID string // "" for a service key
	KeyID  string
	Kind   string
	Role   Role
	Scopes []string
}

// Manager reports whether the caller may manage users, endpoints and
// every key of its org: an owner's or admin's key, or a service key (only
// owners and admins can create service keys, and never with scopes beyond
// their own).
func (p *Principal) Manager() bool {
	return p.Kind == KeyKindService || p.Role.Manager()
}

// callerKey carries the caller and the request id in one context value
// (one allocation on the hot path instead of two).
type callerKey struct{}

type callerInfo struct {
	principal *Principal
	requestID string
}

// WithCaller returns ctx carrying the caller and the request id, which
// audit events record.
func WithCaller(ctx context.Context, p *Principal, requestID string) context.Context {
	return context.WithValue(ctx, callerKey{}, &callerInfo{principal: p, requestID: requestID})
}

// WithCallerCopy is WithCaller for a principal given by value and a
// request id given as bytes the caller may reuse afterwards: the context,
// the principal and (up to callerIDInline bytes) the id share one
// allocation, where WithCaller's context value, callerInfo, principal and
// id string are four. It is the authentication middleware's, once per
// request.
func WithCallerCopy(ctx context.Context, p Principal, requestID []byte) context.Context {
	c := &callerCtx{Context: ctx, p: p}
	c.info.principal = &c.p
	if n := len(requestID); n > 0 && n <= len(c.id) {
		copy(c.id[:], requestID)
		// c.id is written here only, before c is handed out: the string
		// it backs never changes.
		c.info.requestID = unsafe.String(&c.id[0], n)
	} else {
		c.info.requestID = string(requestID)
	}
	return c
}

// callerIDInline is how long a request id WithCallerCopy keeps without an
// allocation of its own: credvault's own ids (29 bytes at most) and UUIDs.
const callerIDInline = 48

// callerCtx is WithCallerCopy's context: ctx with the caller as the
// callerKey value, as WithCaller's context.WithValue gives.
type callerCtx struct {
	context.Context
	info callerInfo
	p    Principal
	id   [callerIDInline]byte
}

func (c *callerCtx) Value(key any) any {
	if _, ok := key.(callerKey); ok {
		return &c.info
	}
	return c.Context.Value(key)
}

// String names the context without its contents (the principal stays out
// of anything that prints a context), as context.WithValue's does.
func (c *callerCtx) String() string { return "credvault.WithCallerCopy" }

func callerOf(ctx context.Context) *callerInfo {
	ci, _ := ctx.Value(callerKey{}).(*callerInfo)
	if ci == nil {
		return &callerInfo{}
	}
	return ci
}

// WithPrincipal returns ctx carrying p (and the request id ctx had).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return WithCaller(ctx, p, callerOf(ctx).requestID)
}

// PrincipalFrom returns the caller of ctx, or nil for an anonymous context.
func PrincipalFrom(ctx context.Context) *Principal { return callerOf(ctx).principal }

// RequestIDFrom returns the request id of ctx, or "".
func RequestIDFrom(ctx context.Context) string { return callerOf(ctx).requestID }
