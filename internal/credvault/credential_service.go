package credvault

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// deleteProtectionWindow is how far back DELETE looks for workflows that
// still use a credential.
const deleteProtectionWindow = 30 * 24 * time.Hour

// CredentialService holds the rules for outbound credentials: values are
// encrypted through Vault transit before anything is stored, are never
// returned, and only the owner, `manage` sharees and org admins change a
// credential.
type CredentialService struct {
	Store   CredentialStore
	Users   UserStore
	Transit Transit
	// Audit records events that belong to no write: a stored value Vault
	// refuses to decrypt, a refused attempt to widen a credential's reach.
	// nil records none.
	Audit AuditStore
	// Values caches decrypted values for injection; nil disables it.
	Values *ValueCache
	// ReservedHeaders are credvault's own API-key headers
	// (CREDVAULT_AUTH_HEADERS): a caller may not choose one of them as
	// param_name (CheckParamName). A preset that names an upstream's
	// documented header (Anthropic's x-api-key) keeps it.
	ReservedHeaders []string
	Now             func() time.Time
	// OAuth refreshes and revokes the tokens of oauth2 credentials
	// (OAuthService); nil leaves them unusable.
	OAuth OAuthTokens
}

// OAuthTokens is what credentials need from the OAuth side: a fresh token
// (see OAuthService.Token) and revocation at delete.
type OAuthTokens interface {
	Token(ctx context.Context, c *Credential, rejected int64) (*Credential, Secret, error)
	RevokeTokens(ctx context.Context, c *Credential) string
}

// CreateCredentialInput is POST /v1/credentials.
type CreateCredentialInput struct {
	Name         string
	Service      string
	Placement    string
	ParamName    string
	ValuePrefix  string
	Username     string
	Value        Secret
	BaseURL      string
	AllowedHosts []string
	Sharing      *Sharing
	TestRequest  *TestRequest
}

// CredentialUpdate is PATCH /v1/credentials/{id}; nil leaves a field as
// it is. A Value rotates the credential: same id, new ciphertext.
type CredentialUpdate struct {
	Name         *string
	Placement    *string
	ParamName    *string
	ValuePrefix  *string
	Username     *string
	Value        *Secret
	BaseURL      *string
	AllowedHosts *[]string
	TestRequest  *TestRequest
}

func (s *CredentialService) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CreateCredential encrypts the value and stores the credential. A known
// service fills in placement, param_name, base_url, allowed_hosts and the
// test request that the caller leaves out. If Vault fails nothing is
// stored. Errors: EFORBIDDEN (scope credentials:write), EINVALID (a field,
// named), EUNAVAILABLE (Vault or PostgreSQL down).
func (s *CredentialService) CreateCredential(ctx context.Context, in CreateCredentialInput) (*Credential, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeCredentialsWrite); err != nil {
		return nil, err
	}
	c := &Credential{
		ID: uuid.NewString(), OrgID: p.OrgID, Name: strings.TrimSpace(in.Name),
		Service: strings.ToLower(strings.TrimSpace(in.Service)), Placement: in.Placement, ParamName: in.ParamName,
		ValuePrefix: in.ValuePrefix, Username: in.Username, BaseURL: in.BaseURL, AllowedHosts: in.AllowedHosts, TestRequest: in.TestRequest,
		Sharing: Sharing{Mode: SharingPersonal, Members: []Share{}},
	}
	if p.UserID != "" {
		c.OwnerID = &p.UserID
	}
	if c.Service == "" {
		c.Service = "custom"
	}
	if preset, ok := FindServicePreset(c.Service); ok {
		applyPreset(c, preset)
	} else if !serviceName(c.Service) {
		return nil, Errorf(EINVALID, "field \"service\" must be a preset id (see GET /v1/services) or a name of 1-64 lowercase letters, digits, '-' or '_'")
	}
	if in.Sharing != nil {
		c.Sharing = *in.Sharing
	}
	if err := s.check(ctx, c, in.ParamName != ""); err != nil {
		return nil, err
	}
	if err := CheckSecretValue(in.Value.Reveal()); err != nil {
		return nil, err
	}
	if err := s.encrypt(ctx, c, in.Value); err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, p.OrgID, "credential.create", "credential", c.ID, map[string]any{
		"name": c.Name, "service": c.Service, "placement": c.Placement, "allowed_hosts": c.AllowedHosts,
		"sharing": c.Sharing.Mode, "key_version": c.KeyVersion,
	})
	if err := s.Store.CreateCredential(ctx, c, ev); err != nil {
		return nil, err
	}
	return c, nil
}

// encrypt sets c's ciphertext, key version, hint and rotation time from
// value, through Vault with c's derivation context.
func (s *CredentialService) encrypt(ctx context.Context, c *Credential, value Secret) error {
	ct, v, err := seal(ctx, s.Transit, value, CredentialContext(c.OrgID, c.ID))
	if err != nil {
		return err
	}
	c.Ciphertext, c.KeyVersion, c.Hint, c.RotatedAt = ct, v, Hint(value.Reveal()), s.now().UTC()
	return nil
}

// seal encrypts a secret through transit under a derivation context and
// returns the ciphertext with its key version. Errors: the Transit's;
// EINTERNAL for a ciphertext not in Vault's form.
func seal(ctx context.Context, t Transit, value Secret, derivation []byte) (string, int, error) {
	ct, err := t.Encrypt(ctx, []byte(value.Reveal()), derivation)
	if err != nil {
		return "", 0, err
	}
	v, err := CiphertextVersion(ct)
	if err != nil {
		return "", 0, Wrap(EINTERNAL, err, "vault returned an unexpected ciphertext")
	}
	return ct, v, nil
}

func applyPreset(c *Credential, p ServicePreset) {
	if c.Placement == "" {
		c.Placement, c.ParamName, c.ValuePrefix = p.Placement, p.ParamName, p.ValuePrefix
	}
	if c.BaseURL == "" {
		c.BaseURL = p.BaseURL
	}
	if c.AllowedHosts == nil {
		c.AllowedHosts = append([]string(nil), p.AllowedHosts...)
	}
	if c.TestRequest == nil && p.TestRequest != nil {
		tr := *p.TestRequest
		c.TestRequest = &tr
	}
}

// check validates every field of c and normalises hosts and test request.
// callerNamed says whether the caller chose param_name in this request
// (then credvault's own key headers are refused as well).
func (s *CredentialService) check(ctx context.Context, c *Credential, callerNamed bool) error {
	if c.Name == "" || len(c.Name) > 200 {
		return Errorf(EINVALID, "field \"name\" must be 1-200 characters")
	}
	var reserved []string
	if callerNamed {
		reserved = s.ReservedHeaders
	}
	if err := CheckParamName(c.Placement, c.ParamName, reserved); err != nil {
		return err
	}
	if err := CheckValuePrefix(c.Placement, c.ValuePrefix); err != nil {
		return err
	}
	if err := CheckUsername(c.Placement, c.Username); err != nil {
		return err
	}
	if c.AllowedHosts == nil {
		c.AllowedHosts = []string{}
	}
	hosts, err := ParseHostPatterns("allowed_hosts", c.AllowedHosts)
	if err != nil {
		return err
	}
	c.AllowedHosts = make([]string, len(hosts))
	for i, h := range hosts {
		c.AllowedHosts[i] = h.String()
	}
	if c.BaseURL != "" {
		if err := checkBaseURL(c.BaseURL, hosts); err != nil {
			return err
		}
	}
	if c.TestRequest != nil {
		if c.TestRequest, err = CheckTestRequest(c.TestRequest); err != nil {
			return err
		}
	}
	return s.checkSharing(ctx, c)
}

// checkBaseURL: an absolute http(s) URL without credentials, query or
// fragment, whose host allowed_hosts permits (else every call would be
// refused).
func checkBaseURL(raw string, hosts []HostPattern) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return Errorf(EINVALID, "field \"base_url\" must be an absolute http(s) URL such as https://api.stripe.com")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "\r\n\t ") {
		return Errorf(EINVALID, "field \"base_url\" must not hold credentials, a query, a fragment or spaces")
	}
	if CheckProxyPath(u.EscapedPath()) != nil {
		return Errorf(EINVALID, "field \"base_url\" has a path with dot segments, backslashes, double encoding or control characters")
	}
	if len(hosts) > 0 && !HostAllowed(hosts, u.Scheme, u.Host) {
		return Errorf(EINVALID, "field \"base_url\": host %s is not in allowed_hosts", u.Host)
	}
	return nil
}

// checkSharing validates the sharing mode and members: users of the org,
// each once, with a known permission.
func (s *CredentialService) checkSharing(ctx context.Context, c *Credential) error {
	sh := &c.Sharing
	switch sh.Mode {
	case SharingPersonal:
		if len(sh.Members) > 0 {
			return Errorf(EINVALID, "field \"sharing.members\" must be empty for a personal credential")
		}
	case SharingTeam, SharingMembers:
	default:
		return Errorf(EINVALID, "field \"sharing.mode\" must be one of: personal team members")
	}
	if sh.Members == nil {
		sh.Members = []Share{}
	}
	if len(sh.Members) > 500 {
		return Errorf(EINVALID, "field \"sharing.members\" holds at most 500 users")
	}
	seen := map[string]bool{}
	for _, m := range sh.Members {
		if m.Permission != PermissionUse && m.Permission != PermissionManage {
			return Errorf(EINVALID, "field \"sharing.members[].permission\" must be one of: use manage")
		}
		if seen[m.UserID] {
			return Errorf(EINVALID, "field \"sharing.members\" names user %s twice", m.UserID)
		}
		seen[m.UserID] = true
		if _, err := s.Users.FindUserByID(ctx, c.OrgID, m.UserID); err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return Errorf(EINVALID, "field \"sharing.members\": no user %s in your org", m.UserID)
			}
			return err
		}
	}
	return nil
}

// FindCredential returns a credential the caller may use. Errors:
// EFORBIDDEN (scope credentials:read), ENOTFOUND (no such credential, or
// one the caller may not use: it does not exist for them).
func (s *CredentialService) FindCredential(ctx context.Context, id string) (*Credential, string, error) {
	return s.load(ctx, id, ScopeCredentialsRead, PermissionUse)
}

// FindCredentials lists what the caller may use: scope "mine" (theirs),
// "shared" (others' shared with them) or "all", optionally one service.
// Errors: EFORBIDDEN, EINVALID (scope).
func (s *CredentialService) FindCredentials(ctx context.Context, service, scope string, page Page) ([]*Credential, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeCredentialsRead); err != nil {
		return nil, err
	}
	if scope == "" {
		scope = "all"
	}
	if scope != "mine" && scope != "shared" && scope != "all" {
		return nil, Errorf(EINVALID, "query parameter \"scope\" must be one of: mine shared all")
	}
	return s.Store.FindCredentials(ctx, p.OrgID, CredentialFilter{
		UserID: p.UserID, Manager: p.Manager(), Service: strings.ToLower(service), Scope: scope, Page: page,
	})
}

// UpdateCredential edits a credential; a new value rotates it under the
// same id, so every workflow that references it keeps working. The value
// is encrypted before anything is written; if Vault fails nothing changes.
// A change that widens where the value may go (Widened) needs the value in
// the same request, from every caller, owners included: redirecting a
// value is as good as reading it; a refused attempt is audited as
// credential.update_refused. Narrowing needs no value.
// Errors: EFORBIDDEN (scope, or only `use`), ENOTFOUND, EINVALID (reason
// value_required naming the widening field; a field), EUNAVAILABLE.
func (s *CredentialService) UpdateCredential(ctx context.Context, id string, upd CredentialUpdate) (*Credential, error) {
	c, _, err := s.load(ctx, id, ScopeCredentialsWrite, PermissionManage)
	if err != nil {
		return nil, err
	}
	before := *c
	before.AllowedHosts = append([]string(nil), c.AllowedHosts...)
	changed := []string{}
	set := func(field string, dst *string, v *string) {
		if v != nil && *v != *dst {
			*dst = *v
			changed = append(changed, field)
		}
	}
	if upd.Name != nil {
		n := strings.TrimSpace(*upd.Name)
		upd.Name = &n
	}
	set("name", &c.Name, upd.Name)
	set("placement", &c.Placement, upd.Placement)
	set("param_name", &c.ParamName, upd.ParamName)
	set("value_prefix", &c.ValuePrefix, upd.ValuePrefix)
	set("username", &c.Username, upd.Username)
	set("base_url", &c.BaseURL, upd.BaseURL)
	if upd.AllowedHosts != nil {
		c.AllowedHosts = *upd.AllowedHosts
		changed = append(changed, "allowed_hosts")
	}
	if upd.TestRequest != nil {
		c.TestRequest = upd.TestRequest
		changed = append(changed, "test_request")
	}
	if err := s.check(ctx, c, upd.ParamName != nil && *upd.ParamName != ""); err != nil {
		return nil, err
	}
	widened := Widened(&before, c)
	if c.Kind == KindOAuth2 {
		if upd.Value != nil {
			return nil, Errorf(EINVALID, "field \"value\" cannot be set on an oauth2 credential: credvault obtains its token; reconnect it with POST /v1/credentials/%s/reconnect", c.ID)
		}
		if len(widened) > 0 {
			return nil, &Error{Code: EINVALID, Reason: "value_required", Details: map[string]any{"fields": widened},
				Message: "field \"" + widened[0] + "\" widens where the access token may go, which an oauth2 credential cannot prove it may: create a new connection instead (" + strings.Join(widened, ", ") + ")"}
		}
	}
	if len(widened) > 0 && upd.Value == nil {
		if s.Audit != nil {
			ev := newAuditEvent(ctx, c.OrgID, "credential.update_refused", "credential", c.ID, map[string]any{
				"widened": widened, "outcome": "value_required", "base_url": c.BaseURL, "base_url_before": before.BaseURL, "allowed_hosts": c.AllowedHosts,
			})
			if err := s.Audit.CreateAuditEvent(ctx, ev); err != nil {
				return nil, err
			}
		}
		return nil, &Error{Code: EINVALID, Reason: "value_required", Details: map[string]any{"fields": widened},
			Message: "field \"" + widened[0] + "\" widens where the value may go: send the credential's \"value\" in the same request (" + strings.Join(widened, ", ") + ")"}
	}
	var evs []*AuditEvent
	if len(changed) > 0 {
		added, removed := hostsDiff(before.AllowedHosts, c.AllowedHosts)
		evs = append(evs, newAuditEvent(ctx, c.OrgID, "credential.update", "credential", c.ID, map[string]any{
			"fields": changed, "widened": widened, "hosts_added": added, "hosts_removed": removed, "base_url": c.BaseURL,
			"base_url_before": before.BaseURL,
		}))
	}
	if upd.Value != nil {
		if err := CheckSecretValue(upd.Value.Reveal()); err != nil {
			return nil, err
		}
		if err := s.encrypt(ctx, c, *upd.Value); err != nil {
			return nil, err
		}
		evs = append(evs, newAuditEvent(ctx, c.OrgID, "credential.rotate", "credential", c.ID, map[string]any{"key_version": c.KeyVersion}))
	}
	if len(evs) == 0 {
		return nil, Errorf(EINVALID, "nothing to change")
	}
	if err := s.Store.UpdateCredential(ctx, c, upd.Value != nil, evs...); err != nil {
		return nil, err
	}
	return c, nil
}

// SetSharing replaces who may use or manage a credential. Removing access
// is recorded as credential.unshare, granting it as credential.share.
// Errors: EFORBIDDEN, ENOTFOUND, EINVALID.
func (s *CredentialService) SetSharing(ctx context.Context, id string, sh Sharing) (*Credential, error) {
	c, _, err := s.load(ctx, id, ScopeCredentialsWrite, PermissionManage)
	if err != nil {
		return nil, err
	}
	before := c.Sharing
	c.Sharing = sh
	if err := s.checkSharing(ctx, c); err != nil {
		return nil, err
	}
	granted, removed := sharingDiff(before, c.Sharing)
	var evs []*AuditEvent
	if len(granted) > 0 || (c.Sharing.Mode == SharingTeam && before.Mode != SharingTeam) {
		evs = append(evs, newAuditEvent(ctx, c.OrgID, "credential.share", "credential", c.ID,
			map[string]any{"mode": c.Sharing.Mode, "granted": granted}))
	}
	if len(removed) > 0 || (before.Mode == SharingTeam && c.Sharing.Mode != SharingTeam) {
		evs = append(evs, newAuditEvent(ctx, c.OrgID, "credential.unshare", "credential", c.ID,
			map[string]any{"mode": c.Sharing.Mode, "removed": removed}))
	}
	if err := s.Store.SetCredentialSharing(ctx, c, evs...); err != nil {
		return nil, err
	}
	return c, nil
}

// sharingDiff lists the users who gained or changed a permission, and
// those who lost theirs.
func sharingDiff(before, after Sharing) (granted []Share, removed []string) {
	old := map[string]string{}
	if before.Mode != SharingPersonal {
		for _, m := range before.Members {
			old[m.UserID] = m.Permission
		}
	}
	now := map[string]bool{}
	for _, m := range after.Members {
		now[m.UserID] = true
		if old[m.UserID] != m.Permission {
			granted = append(granted, m)
		}
	}
	for u := range old {
		if !now[u] {
			removed = append(removed, u)
		}
	}
	return granted, removed
}

// DeleteCredential removes a credential. If workflows used it in the last
// 30 days it refuses with ECONFLICT listing them, unless force. Only the
// owner and the org's admins delete (a `manage` sharee does not). Errors:
// EFORBIDDEN, ENOTFOUND, ECONFLICT.
func (s *CredentialService) DeleteCredential(ctx context.Context, id string, force bool) error {
	c, _, err := s.load(ctx, id, ScopeCredentialsWrite, PermissionUse)
	if err != nil {
		return err
	}
	p := PrincipalFrom(ctx)
	if !p.Manager() && (c.OwnerID == nil || *c.OwnerID != p.UserID) {
		return &Error{Code: EFORBIDDEN, Reason: "forbidden_role", Message: "only the credential's owner and the org's owners and admins may delete it"}
	}
	recent, err := s.Store.RecentWorkflows(ctx, c.ID, s.now().Add(-deleteProtectionWindow))
	if err != nil {
		return err
	}
	if len(recent) > 0 && !force {
		return &Error{Code: ECONFLICT, Reason: "credential_in_use",
			Message: "workflows used this credential in the last 30 days; update them, or delete with ?force=true",
			Details: map[string]any{"workflows": recent}}
	}
	ev := newAuditEvent(ctx, c.OrgID, "credential.delete", "credential", c.ID, map[string]any{
		"name": c.Name, "forced": force && len(recent) > 0, "recent_workflows": len(recent),
	})
	if err := s.Store.DeleteCredential(ctx, c.OrgID, c.ID, ev); err != nil {
		return err
	}
	if c.Kind == KindOAuth2 && s.OAuth != nil {
		// The tokens are revoked once the row is gone, so that nothing
		// refreshes them again; the outcome is audited, never a token.
		outcome := s.OAuth.RevokeTokens(ctx, c)
		if s.Audit != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.Audit.CreateAuditEvent(dctx, newAuditEvent(ctx, c.OrgID, "credential.oauth_disconnect", "credential", c.ID,
				map[string]any{"revocation": outcome}))
		}
	}
	return nil
}

// FindUsage lists a credential's uses, newest first. Errors: EFORBIDDEN,
// ENOTFOUND.
func (s *CredentialService) FindUsage(ctx context.Context, id string, f UsageFilter) ([]*Usage, error) {
	c, _, err := s.load(ctx, id, ScopeCredentialsRead, PermissionUse)
	if err != nil {
		return nil, err
	}
	return s.Store.FindUsage(ctx, c.ID, f)
}

// UseCredential returns a credential and its decrypted value, for the
// injector. Errors: EFORBIDDEN (scope credentials:use), ENOTFOUND,
// EINVALID with reason credential_not_usable when it has no allowed hosts,
// EUNAVAILABLE (Vault down), EINTERNAL with reason credential_undecryptable
// when Vault refuses the stored ciphertext (also audited as
// credential.undecryptable, naming the credential, never a value).
func (s *CredentialService) UseCredential(ctx context.Context, id string) (*Credential, Secret, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, Secret{}, err
	}
	if err := requireScope(p, ScopeCredentialsUse); err != nil {
		return nil, Secret{}, err
	}
	gen := s.Values.Generation()
	c, value, hit := s.Values.Get(id)
	if !hit {
		if c, err = s.Store.FindCredentialByID(ctx, p.OrgID, id); err != nil {
			if c, value, err = s.staleOr(id, err); err != nil {
				return nil, Secret{}, err
			}
			hit = true // the stale entry, checked below like a fresh one
		}
	}
	// The permission is checked on every use, cached or not: the cached
	// credential carries its sharing, which changes drop from the cache.
	if c.PermissionOf(p) == "" {
		return nil, Secret{}, Errorf(ENOTFOUND, "credential not found")
	}
	if len(c.AllowedHosts) == 0 {
		return nil, Secret{}, &Error{Code: EINVALID, Reason: "credential_not_usable",
			Message: "field \"allowed_hosts\" of this credential is empty: set the hosts it may be sent to before using it"}
	}
	if !hit && c.Kind == KindOAuth2 {
		return s.useOAuth(ctx, c, gen)
	}
	if !hit {
		pt, err := s.Transit.Decrypt(ctx, c.Ciphertext, CredentialContext(c.OrgID, c.ID))
		if errors.Is(err, ErrUndecryptable) {
			return nil, Secret{}, s.undecryptable(ctx, c, err)
		}
		if err != nil {
			if sc, sv, serr := s.staleOr(id, err); serr == nil && sc.PermissionOf(p) != "" {
				return sc, sv, nil
			}
			return nil, Secret{}, err
		}
		value = NewSecret(string(pt))
		s.Values.Put(c, value, gen)
	}
	return c, value, nil
}

// staleOr answers a use whose fresh read failed with err: from a cached
// value past its TTL (ValueCache.GetStale) when err is EUNAVAILABLE, so
// that a PostgreSQL or Vault blip does not fail proxied calls; else err.
func (s *CredentialService) staleOr(id string, err error) (*Credential, Secret, error) {
	if ErrorCode(err) == EUNAVAILABLE {
		if c, v, ok := s.Values.GetStale(id); ok {
			return c, v, nil
		}
	}
	return nil, Secret{}, err
}

// load reads a credential the caller holds at least perm on. A caller
// with no permission at all gets ENOTFOUND; one with `use` asking for
// `manage` gets EFORBIDDEN.
func (s *CredentialService) load(ctx context.Context, id, scope, perm string) (*Credential, string, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, "", err
	}
	if err := requireScope(p, scope); err != nil {
		return nil, "", err
	}
	c, err := s.Store.FindCredentialByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, "", err
	}
	got := c.PermissionOf(p)
	switch {
	case got == "":
		return nil, "", Errorf(ENOTFOUND, "credential not found")
	case perm == PermissionManage && got != PermissionManage:
		return nil, "", &Error{Code: EFORBIDDEN, Reason: "forbidden_permission", Message: "you may use this credential but not manage it; ask its owner for the manage permission"}
	}
	return c, got, nil
}

func serviceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// undecryptable audits a stored value Vault refused and returns the error
// the caller sees. The event names the credential and its key version; the
// ciphertext and Vault's text stay out of it (the text goes to the log via
// the returned error's cause).
func (s *CredentialService) undecryptable(ctx context.Context, c *Credential, cause error) error {
	if s.Audit != nil {
		ev := newAuditEvent(ctx, c.OrgID, "credential.undecryptable", "credential", c.ID, map[string]any{
			"name": c.Name, "key_version": c.KeyVersion,
		})
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.Audit.CreateAuditEvent(actx, ev); err != nil {
			return err
		}
	}
	return &Error{Code: EINTERNAL, Reason: ReasonUndecryptable, Err: cause, Message: fmt.Sprintf(
		"the stored value of credential %s cannot be decrypted: Vault refused its ciphertext (key version %d retired or lost, or the row was altered); set a new value with PATCH /v1/credentials/%s",
		c.ID, c.KeyVersion, c.ID)}
}

// useOAuth is UseCredential for an oauth2 credential read from the store:
// its stored token while it is valid, else a refresh (waited for).
func (s *CredentialService) useOAuth(ctx context.Context, c *Credential, gen uint64) (*Credential, Secret, error) {
	o := c.OAuth
	switch {
	case o == nil || s.OAuth == nil:
		return nil, Secret{}, Errorf(EINTERNAL, "credential %s is an OAuth connection but OAuth is not configured", c.ID)
	case o.Status == OAuthPending && o.TokenVersion == 0:
		return nil, Secret{}, notConnected(c)
	case o.Status == OAuthNeedsReauth:
		return nil, Secret{}, needsReauth(c)
	}
	if o.usable(s.now()) {
		pt, err := s.Transit.Decrypt(ctx, c.Ciphertext, CredentialContext(c.OrgID, c.ID))
		if errors.Is(err, ErrUndecryptable) {
			return nil, Secret{}, s.undecryptable(ctx, c, err)
		}
		if err != nil {
			return nil, Secret{}, err
		}
		value := NewSecret(string(pt))
		s.Values.Put(c, value, gen)
		return c, value, nil
	}
	fresh, value, err := s.OAuth.Token(ctx, c, 0)
	if err != nil {
		return nil, Secret{}, err
	}
	return withSharing(fresh, c), value, nil
}

// RefreshRejected is called when an upstream answered 401 to token
// version c.OAuth.TokenVersion of an oauth2 credential: it refreshes once
// (unless someone already replaced that token) and returns the new token.
// Errors: those of OAuthService.Token.
func (s *CredentialService) RefreshRejected(ctx context.Context, c *Credential) (*Credential, Secret, error) {
	if c.Kind != KindOAuth2 || c.OAuth == nil || s.OAuth == nil {
		return nil, Secret{}, Errorf(EINVALID, "credential %s is not an OAuth connection", c.ID)
	}
	fresh, value, err := s.OAuth.Token(ctx, c, c.OAuth.TokenVersion)
	if err != nil {
		return nil, Secret{}, err
	}
	return withSharing(fresh, c), value, nil
}

// withSharing is a copy of the refreshed credential (shared by every
// caller that waited for the refresh) with the sharing of c: the locked
// read leaves shares out, and the caller's permission was checked on c.
func withSharing(fresh, c *Credential) *Credential {
	cp := *fresh
	cp.Sharing = c.Sharing
	return &cp
}
