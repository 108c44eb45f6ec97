package credvault

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Limits on API key input.
const (
	maxTags          = 20
	maxTagKeyLen     = 64
	maxTagValueLen   = 256
	maxRateRequests  = 1_000_000
	maxRateWindow    = 86_400
	maxGraceSeconds  = 30 * 86_400
	maxKeyLifetime   = 10 * 365 * 24 * time.Hour
	defaultKeyMode   = "live"
	maxEnvLabelLen   = 63
	maxExpiresWithin = 3650
	defaultKeyExpiry = "never"
)

var expiresIn = map[string]time.Duration{
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
	"90d": 90 * 24 * time.Hour,
}

// APIKeyService holds the rules for inbound keys: a key is its creator's
// unless an owner or admin names another user or asks for a service key,
// and a key never carries a scope its creator lacks.
type APIKeyService struct {
	Store  APIKeyStore
	Users  UserStore
	Minter KeyMinter
	// JWT issues keys of format "jwt"; nil refuses them.
	JWT JWTMinter
	// Integrations resolves integration_id on create and move; nil
	// refuses integration_id.
	Integrations IntegrationStore
	Now          func() time.Time
}

// CreateAPIKeyInput is POST /v1/api-keys.
type CreateAPIKeyInput struct {
	Name        string
	Scopes      []string
	ExpiresIn   string
	ExpiresAt   *time.Time
	Mode        string // "live" or "test"; see keyModeAndLabel
	Environment string // free label
	Tags        map[string]string
	RateLimit   *RateLimit
	Kind        string
	UserID      string
	Format      string  // "opaque" (default) or "jwt"
	Agent       *string // agent or integration label of a JWT key
	// IntegrationID puts the key in an integration of the caller's org.
	IntegrationID string
}

func (s *APIKeyService) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CreateAPIKey issues a key and returns its metadata and the key itself,
// which is shown this once. Errors: EFORBIDDEN (scope keys:write; another
// user's or a service key without owner/admin role; a scope the caller
// lacks), EINVALID (bad expiry, scopes, tags, rate limit, user).
func (s *APIKeyService) CreateAPIKey(ctx context.Context, in CreateAPIKeyInput) (*APIKey, Secret, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, Secret{}, err
	}
	if err := requireScope(p, ScopeKeysWrite); err != nil {
		return nil, Secret{}, err
	}
	k := &APIKey{OrgID: p.OrgID, Name: strings.TrimSpace(in.Name), Kind: in.Kind}
	if k.Format, k.Agent, err = checkFormat(in.Format, in.Agent); err != nil {
		return nil, Secret{}, err
	}
	if k.Kind == "" {
		k.Kind = KeyKindUser
	}
	if k.Mode, k.Environment, err = keyModeAndLabel(in.Mode, in.Environment); err != nil {
		return nil, Secret{}, err
	}
	if err := s.resolveOwner(ctx, p, k, in.UserID); err != nil {
		return nil, Secret{}, err
	}
	if k.Scopes, err = NormalizeScopes("scopes", in.Scopes); err != nil {
		return nil, Secret{}, err
	}
	if len(k.Scopes) == 0 {
		return nil, Secret{}, Errorf(EINVALID, "field \"scopes\" must list at least one scope")
	}
	if err := CheckKeyScopes(k.Kind, k.Scopes); err != nil {
		return nil, Secret{}, err
	}
	if missing := ungrantable(p, k.Scopes); len(missing) > 0 {
		return nil, Secret{}, &Error{Code: EFORBIDDEN, Reason: "insufficient_scope",
			Message: "a key cannot carry scopes its creator lacks: " + strings.Join(missing, ", ")}
	}
	if k.ExpiresAt, err = s.expiry(in.ExpiresIn, in.ExpiresAt); err != nil {
		return nil, Secret{}, err
	}
	if k.Tags, err = checkTags(in.Tags); err != nil {
		return nil, Secret{}, err
	}
	if err := checkRateLimit(in.RateLimit); err != nil {
		return nil, Secret{}, err
	}
	k.RateLimit = in.RateLimit
	if k.IntegrationID, err = s.checkIntegration(ctx, p.OrgID, in.IntegrationID); err != nil {
		return nil, Secret{}, err
	}
	parent, err := s.creatorKey(ctx, p)
	if err != nil {
		return nil, Secret{}, err
	}
	if err := capToCreator(k, parent, in.ExpiresIn, in.ExpiresAt != nil); err != nil {
		return nil, Secret{}, err
	}
	setCreator(k, p, parent)
	secret, err := s.mintFormat(ctx, k)
	if err != nil {
		return nil, Secret{}, err
	}
	ev := newAuditEvent(ctx, p.OrgID, "api_key.create", "api_key", "", map[string]any{
		"display": k.Display, "kind": k.Kind, "scopes": k.Scopes, "mode": k.Mode, "environment": k.Environment, "format": k.Format,
	})
	if k.IntegrationID != nil {
		ev.Data["integration_id"] = *k.IntegrationID
	}
	if err := s.Store.CreateAPIKey(ctx, k, ev); err != nil {
		return nil, Secret{}, err
	}
	return k, secret, nil
}

// resolveOwner decides whose key it is.
func (s *APIKeyService) resolveOwner(ctx context.Context, p *Principal, k *APIKey, userID string) error {
	switch k.Kind {
	case KeyKindService:
		if userID != "" {
			return Errorf(EINVALID, "field \"user_id\" must be empty for a service key (it has no user)")
		}
		return requireManager(p, "create service keys")
	case KeyKindUser:
	default:
		return Errorf(EINVALID, "field \"kind\" must be one of: user service")
	}
	if userID == "" {
		if p.UserID == "" {
			return Errorf(EINVALID, "field \"user_id\" is required when a service key creates a user key")
		}
		userID = p.UserID
	}
	if userID != p.UserID {
		if err := requireManager(p, "create keys for other users"); err != nil {
			return err
		}
		target, err := s.Users.FindUserByID(ctx, p.OrgID, userID)
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return Errorf(EINVALID, "field \"user_id\": no such user in your org")
			}
			return err
		}
		if err := ownersOnly(p, target.Role); err != nil {
			return err
		}
	}
	k.UserID = &userID
	return nil
}

// keyModeAndLabel decides a new key's mode and environment label. The mode
// is "live" or "test" (default live). Clients written before the two were
// apart send the mode as "environment": "live"|"test" without "mode"; such
// a request gets that mode and keeps "live"/"test" as its label, so that
// it reads back exactly as before. Errors: EINVALID naming the field.
func keyModeAndLabel(mode, env string) (string, string, error) {
	switch mode {
	case "live", "test":
	case "":
		mode = defaultKeyMode
		if env == "live" || env == "test" {
			mode = env
		}
	default:
		return "", "", Errorf(EINVALID, "field \"mode\" must be one of: live test")
	}
	if err := CheckEnvironmentLabel("environment", env); err != nil {
		return "", "", err
	}
	return mode, env, nil
}

// CheckEnvironmentLabel accepts "" or 1-63 characters of lower-case
// letters, digits, ".", "_" and "-", starting with a letter or digit
// ("production", "staging", "eu-west.dev"). Errors: EINVALID naming field.
func CheckEnvironmentLabel(field, env string) error {
	if env == "" {
		return nil
	}
	ok := len(env) <= maxEnvLabelLen
	for i := 0; ok && i < len(env); i++ {
		ch := env[i]
		alnum := ('a' <= ch && ch <= 'z') || ('0' <= ch && ch <= '9')
		ok = alnum || (i > 0 && (ch == '.' || ch == '_' || ch == '-'))
	}
	if !ok {
		return Errorf(EINVALID, "field %q must be 1-%d lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. production, staging)", field, maxEnvLabelLen)
	}
	return nil
}

func (s *APIKeyService) mint(k *APIKey) (Secret, error) {
	m, err := s.Minter.Mint(k.Mode)
	if err != nil {
		return Secret{}, err
	}
	k.Hash, k.Prefix, k.Last4 = m.Hash, m.Prefix, m.Last4
	k.Display = m.Prefix + "_…" + m.Last4
	return m.Key, nil
}

func (s *APIKeyService) expiry(in string, at *time.Time) (*time.Time, error) {
	if in != "" && at != nil {
		return nil, Errorf(EINVALID, "set either \"expires_in\" or \"expires_at\", not both")
	}
	if at != nil {
		now := s.now()
		if !at.After(now) {
			return nil, Errorf(EINVALID, "field \"expires_at\" must be in the future")
		}
		if at.Sub(now) > maxKeyLifetime {
			return nil, Errorf(EINVALID, "field \"expires_at\" must be within 10 years")
		}
		t := at.UTC()
		return &t, nil
	}
	if in == "" {
		in = defaultKeyExpiry
	}
	if in == "never" {
		return nil, nil
	}
	d, ok := expiresIn[in]
	if !ok {
		return nil, Errorf(EINVALID, "field \"expires_in\" must be one of: 7d 30d 90d never")
	}
	t := s.now().Add(d).UTC()
	return &t, nil
}

func checkTags(tags map[string]string) (map[string]string, error) {
	if len(tags) > maxTags {
		return nil, Errorf(EINVALID, "field \"tags\" holds at most %d entries", maxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > maxTagKeyLen {
			return nil, Errorf(EINVALID, "field \"tags\": keys must be 1-%d characters", maxTagKeyLen)
		}
		if len(v) > maxTagValueLen {
			return nil, Errorf(EINVALID, "field \"tags\": value of %q is longer than %d characters", k, maxTagValueLen)
		}
	}
	if tags == nil {
		tags = map[string]string{}
	}
	return tags, nil
}

func checkRateLimit(rl *RateLimit) error {
	if rl == nil {
		return nil
	}
	if rl.Requests < 1 || rl.Requests > maxRateRequests {
		return Errorf(EINVALID, "field \"rate_limit.requests\" must be from 1 to %d", maxRateRequests)
	}
	if rl.WindowSeconds < 1 || rl.WindowSeconds > maxRateWindow {
		return Errorf(EINVALID, "field \"rate_limit.window_seconds\" must be from 1 to %d", maxRateWindow)
	}
	return nil
}

// FindAPIKey returns a key's metadata. Errors: EFORBIDDEN (scope
// keys:read; another user's key without owner/admin role), ENOTFOUND.
func (s *APIKeyService) FindAPIKey(ctx context.Context, id string) (*APIKey, error) {
	_, k, err := s.load(ctx, id, ScopeKeysRead, "see other users' keys")
	return k, err
}

// APIKeyQuery is what GET /v1/api-keys filters by; see APIKeyFilter.
// ExpiresWithinDays, when set, keeps active keys that expire within that
// many days (0 = already due, up to 3650).
type APIKeyQuery struct {
	UserID            string
	Status            string
	Environment       string
	Tag               string // "key" or "key=value"
	CreatedBy         string
	Query             string
	ExpiresWithinDays *int
	IntegrationID     string // an integration id, or IntegrationNone
	Enabled           string // "", "true" or "false": the key's own switch
}

// FindAPIKeys lists keys newest first: the caller's own, or for owners and
// admins every key of the org (or one user's, with UserID). CreatedBy
// narrows to the keys one user created, or with CreatedByLegacy to legacy
// keys whose creator is unknown. Revoked and expired keys are hidden
// unless Status asks for them. Errors: EFORBIDDEN;
// EINVALID naming the query parameter.
func (s *APIKeyService) FindAPIKeys(ctx context.Context, q APIKeyQuery, page Page) ([]*APIKey, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysRead); err != nil {
		return nil, err
	}
	f := APIKeyFilter{UserID: q.UserID, Status: q.Status, Environment: q.Environment, CreatedBy: q.CreatedBy,
		Query: strings.TrimSpace(q.Query), Now: s.now(), Page: page}
	switch f.Status {
	case "", KeyStatusActive, KeyStatusRevoked, KeyStatusExpired, KeyStatusAll:
	default:
		return nil, Errorf(EINVALID, "query parameter \"status\" must be one of: active revoked expired all")
	}
	if err := CheckEnvironmentLabel("environment", f.Environment); err != nil {
		return nil, Errorf(EINVALID, "query parameter %s", strings.TrimPrefix(ErrorMessage(err), "field "))
	}
	if f.TagKey, f.TagValue, err = parseTagFilter(q.Tag); err != nil {
		return nil, err
	}
	if f.IntegrationID, f.Enabled, err = q.switchFilters(); err != nil {
		return nil, err
	}
	if len(f.Query) > 200 {
		return nil, Errorf(EINVALID, "query parameter \"q\" is longer than 200 characters")
	}
	if q.ExpiresWithinDays != nil {
		d := *q.ExpiresWithinDays
		if d < 0 || d > maxExpiresWithin {
			return nil, Errorf(EINVALID, "query parameter \"expires_within\" must be a number of days from 0 to %d", maxExpiresWithin)
		}
		by := f.Now.Add(time.Duration(d) * 24 * time.Hour)
		f.ExpiresBy = &by
	}
	if !p.Manager() {
		if f.UserID != "" && f.UserID != p.UserID {
			return nil, requireManager(p, "list other users' keys")
		}
		f.UserID = p.UserID
	}
	return s.Store.FindAPIKeys(ctx, p.OrgID, f)
}

// UpdateAPIKeyInput is PATCH /v1/api-keys/{id}: nil leaves a field as it
// is. ClearRateLimit and ClearExpiry mark an explicit null, which would
// widen the key and is refused.
type UpdateAPIKeyInput struct {
	Name           *string
	Environment    *string
	Tags           map[string]string
	Scopes         []string
	RateLimit      *RateLimit
	ClearRateLimit bool
	ExpiresAt      *time.Time
	ExpiresIn      string
	ClearExpiry    bool
	// IntegrationID moves the key to another integration of the org;
	// ClearIntegration (an explicit null) takes it out of its integration.
	IntegrationID    *string
	ClearIntegration bool
}

// UpdateAPIKey edits a key's metadata and narrows what it may do: its name,
// environment label and tags change freely; its scopes may only shrink, its
// rate limit only fall (fewer requests and no higher rate), its expiry only
// come earlier. A JWT key's scopes and expiry are claims of its signed
// token and do not change (signedClaimsFixed). The change reaches every instance's cache at once. The same
// people may edit a key as may revoke it. Errors: EFORBIDDEN, ENOTFOUND,
// EINVALID naming the field (a widening, or a bad value); ECONFLICT for a
// revoked key's scopes, limit or expiry (it can never be used again).
func (s *APIKeyService) UpdateAPIKey(ctx context.Context, id string, in UpdateAPIKeyInput) (*APIKey, error) {
	p, k, err := s.load(ctx, id, ScopeKeysWrite, "edit other users' keys")
	if err != nil {
		return nil, err
	}
	upd, changed, err := s.narrow(k, in)
	if err != nil {
		return nil, err
	}
	if upd.IntegrationID, err = s.moveIntegration(ctx, p, k, in); err != nil {
		return nil, err
	}
	if upd.IntegrationID != nil {
		changed = append(changed, "integration_id")
	}
	if len(changed) == 0 {
		return nil, Errorf(EINVALID, "nothing to change: send name, environment, tags, scopes, rate_limit, expires_at, expires_in or integration_id")
	}
	ev := newAuditEvent(ctx, p.OrgID, "api_key.update", "api_key", id, map[string]any{"display": k.Display, "changed": changed})
	return s.Store.UpdateAPIKey(ctx, p.OrgID, id, upd, ev)
}

// narrow checks in against the key k and returns the update and the names
// of the fields it changes.
func (s *APIKeyService) narrow(k *APIKey, in UpdateAPIKeyInput) (APIKeyUpdate, []string, error) {
	var upd APIKeyUpdate
	changed := []string{}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || len(name) > 200 {
			return upd, nil, Errorf(EINVALID, "field \"name\" must be 1-200 characters")
		}
		upd.Name, changed = &name, append(changed, "name")
	}
	if in.Environment != nil {
		if err := CheckEnvironmentLabel("environment", *in.Environment); err != nil {
			return upd, nil, err
		}
		upd.Environment, changed = in.Environment, append(changed, "environment")
	}
	if in.Tags != nil {
		tags, err := checkTags(in.Tags)
		if err != nil {
			return upd, nil, err
		}
		upd.Tags, changed = tags, append(changed, "tags")
	}
	usage := in.Scopes != nil || in.RateLimit != nil || in.ClearRateLimit || in.ExpiresAt != nil || in.ExpiresIn != "" || in.ClearExpiry
	if usage && k.RevokedAt != nil {
		return upd, nil, Errorf(ECONFLICT, "this key is revoked: its scopes, rate limit and expiry no longer matter")
	}
	if err := signedClaimsFixed(k, in); err != nil {
		return upd, nil, err
	}
	if in.Scopes != nil {
		scopes, err := NormalizeScopes("scopes", in.Scopes)
		if err != nil {
			return upd, nil, err
		}
		if len(scopes) == 0 {
			return upd, nil, Errorf(EINVALID, "field \"scopes\" must list at least one scope; revoke the key instead")
		}
		if wider := MissingScopes(k.Scopes, scopes); len(wider) > 0 {
			return upd, nil, Errorf(EINVALID, "field \"scopes\" may only narrow a key; it does not hold: %s (create a new key instead)", strings.Join(wider, ", "))
		}
		upd.Scopes, changed = scopes, append(changed, "scopes")
	}
	if in.ClearRateLimit {
		return upd, nil, Errorf(EINVALID, "field \"rate_limit\" may only be lowered, not removed")
	}
	if in.RateLimit != nil {
		if err := checkRateLimit(in.RateLimit); err != nil {
			return upd, nil, err
		}
		if old := k.RateLimit; old != nil && !lowerRate(*in.RateLimit, *old) {
			return upd, nil, Errorf(EINVALID, "field \"rate_limit\" may only be lowered: at most %d requests and no more than %d per %d seconds", old.Requests, old.Requests, old.WindowSeconds)
		}
		rl := *in.RateLimit
		upd.RateLimit, changed = &rl, append(changed, "rate_limit")
	}
	if in.ClearExpiry || in.ExpiresIn == "never" {
		return upd, nil, Errorf(EINVALID, "field \"expires_at\" may only be brought forward, not removed")
	}
	if in.ExpiresAt != nil || in.ExpiresIn != "" {
		at, err := s.expiry(in.ExpiresIn, in.ExpiresAt)
		if err != nil {
			return upd, nil, err
		}
		if k.ExpiresAt != nil && at.After(*k.ExpiresAt) {
			return upd, nil, Errorf(EINVALID, "field \"expires_at\" may only be brought forward: the key expires at %s", k.ExpiresAt.UTC().Format(time.RFC3339))
		}
		upd.ExpiresAt, changed = at, append(changed, "expires_at")
	}
	return upd, changed, nil
}

// signedClaimsFixed refuses to change what a JWT key's token carries as
// claims (scope, exp): offline verifiers trust the token and the JWKS
// alone, so credvault narrowing its own record would leave them accepting
// the wider key. Such a key is replaced instead. Errors: EINVALID
// naming the field.
func signedClaimsFixed(k *APIKey, in UpdateAPIKeyInput) error {
	if k.Format != KeyFormatJWT {
		return nil
	}
	field := ""
	switch {
	case in.Scopes != nil:
		field = "scopes"
	case in.ExpiresAt != nil || in.ClearExpiry:
		field = "expires_at"
	case in.ExpiresIn != "":
		field = "expires_in"
	default:
		return nil
	}
	return Errorf(EINVALID, "field %q cannot change on a JWT key: it is signed into the token as a claim, which offline verifiers trust; create a key with the new value and revoke this one", field)
}

// lowerRate reports whether next allows no more than cur: no more
// requests in one window (the burst) and no higher average rate
// (requests/window compared by cross-multiplying, in integers).
func lowerRate(next, cur RateLimit) bool {
	return next.Requests <= cur.Requests &&
		int64(next.Requests)*int64(cur.WindowSeconds) <= int64(cur.Requests)*int64(next.WindowSeconds)
}

// RollAPIKey issues a replacement with the same settings; the old key keeps
// working for graceSeconds, then expires. The replacement's created_by is
// the roller (creatorOf), who receives its secret; it stays in the old
// key's integration. Errors: EFORBIDDEN, ENOTFOUND, EINVALID (grace out of
// range), ECONFLICT (revoked, expired, disabled or already rolled).
func (s *APIKeyService) RollAPIKey(ctx context.Context, id string, graceSeconds int) (*APIKey, Secret, error) {
	if graceSeconds < 0 || graceSeconds > maxGraceSeconds {
		return nil, Secret{}, Errorf(EINVALID, "field \"grace_seconds\" must be from 0 to %d", maxGraceSeconds)
	}
	p, old, err := s.load(ctx, id, ScopeKeysWrite, "roll other users' keys")
	if err != nil {
		return nil, Secret{}, err
	}
	if err := CheckKeyScopes(old.Kind, old.Scopes); err != nil {
		return nil, Secret{}, err
	}
	if missing := ungrantable(p, old.Scopes); len(missing) > 0 {
		return nil, Secret{}, &Error{Code: EFORBIDDEN, Reason: "insufficient_scope",
			Message: "rolling issues a key with the old key's scopes, and this API key lacks: " + strings.Join(missing, ", ")}
	}
	now := s.now()
	switch {
	case old.ReplacedBy != nil:
		return nil, Secret{}, Errorf(ECONFLICT, "this key was already rolled into %s; roll that one instead", *old.ReplacedBy)
	case old.Status(now) != "active":
		return nil, Secret{}, Errorf(ECONFLICT, "this key is %s and cannot be rolled; create a new key", old.Status(now))
	case !old.Enabled:
		// A roll issues a working key: it would step around the switch.
		return nil, Secret{}, Errorf(ECONFLICT, "this key is disabled: enable it (POST /v1/api-keys/{id}/enable) before rolling it")
	}
	next := &APIKey{
		OrgID: old.OrgID, UserID: old.UserID, Kind: old.Kind, Name: old.Name, Mode: old.Mode, Environment: old.Environment,
		Scopes: old.Scopes, Tags: old.Tags, RateLimit: old.RateLimit, ExpiresAt: old.ExpiresAt,
		Format: old.Format, Agent: old.Agent, IntegrationID: old.IntegrationID,
	}
	parent, err := s.creatorKey(ctx, p)
	if err != nil {
		return nil, Secret{}, err
	}
	clampToCreator(next, parent)
	// The replacement's secret is in the roller's hands, so its power
	// comes from the roller (who holds every scope it carries, checked
	// above): it is revoked with the roller, like a key they created.
	setCreator(next, p, parent)
	secret, err := s.mintFormat(ctx, next)
	if err != nil {
		return nil, Secret{}, err
	}
	oldEnd := now.Add(time.Duration(graceSeconds) * time.Second).UTC()
	if old.ExpiresAt != nil && old.ExpiresAt.Before(oldEnd) {
		oldEnd = *old.ExpiresAt
	}
	ev := newAuditEvent(ctx, p.OrgID, "api_key.roll", "api_key", old.ID, map[string]any{
		"grace_seconds": graceSeconds, "old_expires_at": oldEnd, "new_display": next.Display,
	})
	if err := s.Store.RollAPIKey(ctx, p.OrgID, old.ID, next, oldEnd, ev); err != nil {
		return nil, Secret{}, err
	}
	return next, secret, nil
}

// RevokeAPIKey revokes a key at once, on every instance. Revoking a
// revoked key changes nothing. Errors: EFORBIDDEN, ENOTFOUND.
func (s *APIKeyService) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	p, k, err := s.load(ctx, id, ScopeKeysWrite, "revoke other users' keys")
	if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil {
		return k, nil
	}
	ev := newAuditEvent(ctx, p.OrgID, "api_key.revoke", "api_key", id, map[string]any{"display": k.Display})
	WithEvent(ev, EventKeyRevoked, id, map[string]any{"key_id": id, "name": k.Name, "display": k.Display, "environment": k.Environment})
	return s.Store.RevokeAPIKey(ctx, p.OrgID, id, ev)
}

// load reads a key of the caller's org that the caller may act on.
func (s *APIKeyService) load(ctx context.Context, id, scope, what string) (*Principal, *APIKey, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := requireScope(p, scope); err != nil {
		return nil, nil, err
	}
	k, err := s.Store.FindAPIKeyByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, nil, err
	}
	own := k.UserID != nil && *k.UserID == p.UserID
	if !own {
		if err := requireManager(p, what); err != nil {
			return nil, nil, err
		}
		// Rolling or revoking an owner's key is managing the owner.
		if scope == ScopeKeysWrite && k.UserID != nil {
			u, err := s.Users.FindUserByID(ctx, p.OrgID, *k.UserID)
			if err != nil {
				return nil, nil, err
			}
			if err := ownersOnly(p, u.Role); err != nil {
				return nil, nil, err
			}
		}
	}
	return p, k, nil
}

// ungrantable lists the scopes of want that p may not put on a key: those
// p lacks, except that an owner's key with ScopeAdmin may grant
// ScopeCredentialsResolve (to a service key: CheckKeyScopes), since admin
// no longer implies it and someone must be able to issue runners.
func ungrantable(p *Principal, want []string) []string {
	var out []string
	for _, w := range want {
		if HasScope(p.Scopes, w) {
			continue
		}
		if w == ScopeCredentialsResolve && p.Kind == KeyKindUser && p.Role == RoleOwner && HasScope(p.Scopes, ScopeAdmin) {
			continue
		}
		out = append(out, w)
	}
	return out
}

// creatorKey loads the key the caller authenticated with, whose limits a
// key it creates may not exceed; nil for a caller without a key (internal
// jobs). Errors: EUNAUTHORIZED when that key is gone.
func (s *APIKeyService) creatorKey(ctx context.Context, p *Principal) (*APIKey, error) {
	if p.KeyID == "" {
		return nil, nil
	}
	k, err := s.Store.FindAPIKeyByID(ctx, p.OrgID, p.KeyID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, &Error{Code: EUNAUTHORIZED, Reason: "revoked_api_key", Message: "API key was revoked: create a new one"}
	}
	return k, err
}

// setCreator records on k the person its power comes from (creatorOf),
// and marks a service key with no known person behind it as legacy.
func setCreator(k *APIKey, p *Principal, parent *APIKey) {
	var legacy bool
	k.CreatedBy, legacy = creatorOf(p, parent)
	k.Legacy = k.Kind == KeyKindService && (legacy || k.CreatedBy == nil)
}

// creatorOf is the person a new key's power comes from: the caller's user,
// or for a service key the person who created that key (so that removing
// them reaches every key minted down the chain). A service key without a
// known creator hands its legacy mark on.
func creatorOf(p *Principal, parent *APIKey) (*string, bool) {
	if p.UserID != "" {
		id := p.UserID
		return &id, false
	}
	if parent == nil {
		return nil, false
	}
	return parent.CreatedBy, parent.Legacy
}

// capToCreator keeps a new key within the key that creates it: its rate
// limit no looser than the creator's (inherited when absent), its expiry
// no later (inherited when absent). Errors: EINVALID exceeds_creator_key
// naming rate_limit, expires_in or expires_at.
func capToCreator(k *APIKey, parent *APIKey, expiresIn string, expiresAtGiven bool) error {
	if parent == nil {
		return nil
	}
	if prl := parent.RateLimit; prl != nil {
		switch {
		case k.RateLimit == nil:
			rl := *prl
			k.RateLimit = &rl
		case looserRate(k.RateLimit, prl):
			return &Error{Code: EINVALID, Reason: "exceeds_creator_key", Message: fmt.Sprintf(
				"field \"rate_limit\" must be at most the creating key's %d requests per %d seconds",
				prl.Requests, prl.WindowSeconds)}
		}
	}
	if pe := parent.ExpiresAt; pe != nil {
		field := "expires_in"
		if expiresAtGiven {
			field = "expires_at"
		}
		switch {
		case expiresIn == "" && !expiresAtGiven:
			t := *pe
			k.ExpiresAt = &t
		case k.ExpiresAt == nil || k.ExpiresAt.After(*pe):
			return &Error{Code: EINVALID, Reason: "exceeds_creator_key", Message: fmt.Sprintf(
				"field %q must end no later than the creating key, which expires at %s", field, pe.UTC().Format(time.RFC3339))}
		}
	}
	return nil
}

// clampToCreator narrows a rolled key to the rolling key's limits: the
// tighter rate limit and the earlier expiry of the two.
func clampToCreator(k *APIKey, parent *APIKey) {
	if parent == nil {
		return
	}
	if prl := parent.RateLimit; prl != nil && (k.RateLimit == nil || looserRate(k.RateLimit, prl)) {
		rl := *prl
		k.RateLimit = &rl
	}
	if pe := parent.ExpiresAt; pe != nil && (k.ExpiresAt == nil || k.ExpiresAt.After(*pe)) {
		t := *pe
		k.ExpiresAt = &t
	}
}

// looserRate reports whether a allows more than b: a larger burst, or a
// higher average rate (requests per second).
func looserRate(a, b *RateLimit) bool {
	return a.Requests > b.Requests ||
		int64(a.Requests)*int64(b.WindowSeconds) > int64(b.Requests)*int64(a.WindowSeconds)
}

// ownersOnly refuses a non-owner acting on an owner's keys: a key acts
// with its user's role, so issuing one for an owner would make its
// creator an owner.
func ownersOnly(p *Principal, target Role) error {
	if target == RoleOwner && p.Role != RoleOwner {
		return &Error{Code: EFORBIDDEN, Reason: "forbidden_role", Message: "only owners may create, roll, edit or revoke an owner's keys"}
	}
	return nil
}

// VerificationError turns a failed verification into the error the API
// answers with: 401 for missing, malformed, unknown, expired and revoked
// keys (each saying which), 429 when rate limited.
func VerificationError(v Verification) error {
	switch v.Code {
	case VerifyValid, VerifyPublicEndpoint:
		return nil
	case VerifyMissing:
		return &Error{Code: EUNAUTHORIZED, Reason: "missing_api_key", Message: "no API key: send it in the X-API-Key header or as Authorization: Bearer <key>"}
	case VerifyMalformed:
		return &Error{Code: EUNAUTHORIZED, Reason: "malformed_api_key", Message: "malformed API key: it is not a credvault key or it was mistyped (checksum mismatch); copy the whole key"}
	case VerifyNotFound:
		return &Error{Code: EUNAUTHORIZED, Reason: "unknown_api_key", Message: "unauthorized access"}
	case VerifyExpired:
		return &Error{Code: EUNAUTHORIZED, Reason: "expired_api_key", Message: "API key expired: roll it or create a new one"}
	case VerifyRevoked:
		return &Error{Code: EUNAUTHORIZED, Reason: "revoked_api_key", Message: "API key was revoked: create a new one"}
	case VerifyBadSignature, VerifyUnknownKid, VerifyNotYetValid, VerifyWrongIssuer, VerifyKeyRetired:
		return jwtVerificationError(v.Code)
	case VerifyRateLimited:
		secs := int(v.Rate.RetryAfter.Seconds() + 0.999)
		return &Error{Code: ERATELIMITED, Reason: "rate_limited", Message: fmt.Sprintf("rate limit exceeded: retry after %d second(s)", max(secs, 1))}
	case VerifyInsufficientScope:
		return &Error{Code: EFORBIDDEN, Reason: "insufficient_scope", Message: "this API key lacks a required scope"}
	case VerifyDisabled, VerifyIntegrationDisabled:
		return disabledError(v.Code)
	}
	return Errorf(EINTERNAL, "unknown verification code %s", v.Code)
}
