package credvault

import (
	"slices"
	"sort"
	"strings"
)

// Scopes a key can carry. ScopeAdmin stands for all of them except
// ScopeCredentialsResolve, which hands out credential values and is held
// only by service keys (runners) that name it explicitly.
const (
	ScopeKeysRead           = "keys:read"
	ScopeKeysWrite          = "keys:write"
	ScopeKeysVerify         = "keys:verify"
	ScopeCredentialsRead    = "credentials:read"
	ScopeCredentialsWrite   = "credentials:write"
	ScopeCredentialsUse     = "credentials:use"
	ScopeCredentialsResolve = "credentials:resolve"
	ScopeUsersRead          = "users:read"
	ScopeUsersWrite         = "users:write"
	ScopeEndpointsWrite     = "endpoints:write"
	ScopeAuditRead          = "audit:read"
	ScopeAdmin              = "admin"
)

// AllScopes lists every scope, ScopeAdmin last.
var AllScopes = []string{
	ScopeKeysRead, ScopeKeysWrite, ScopeKeysVerify,
	ScopeCredentialsRead, ScopeCredentialsWrite, ScopeCredentialsUse, ScopeCredentialsResolve,
	ScopeUsersRead, ScopeUsersWrite, ScopeEndpointsWrite, ScopeAuditRead, ScopeAdmin,
}

// HasScope reports whether scopes grant want. ScopeAdmin grants every
// scope but ScopeCredentialsResolve: seeing a value is a right of its own
// that must be named (SPEC, "Who may see a value").
func HasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want || (s == ScopeAdmin && want != ScopeCredentialsResolve) {
			return true
		}
	}
	return false
}

// CheckKeyScopes enforces what a key of kind may carry: only service keys
// hold ScopeCredentialsResolve. Errors: EINVALID naming field "scopes".
func CheckKeyScopes(kind string, scopes []string) error {
	if kind != KeyKindService && slices.Contains(scopes, ScopeCredentialsResolve) {
		return Errorf(EINVALID, "field \"scopes\": %s is held only by service keys (runners); create a key with kind \"service\"", ScopeCredentialsResolve)
	}
	return nil
}

// RoleAllowsServiceKey reports whether a user of role may stand behind a
// service key carrying scopes: members create no service keys, admins no
// runner keys (ScopeCredentialsResolve), owners any. A service key whose
// creator's role no longer allows it is revoked (UserService).
func RoleAllowsServiceKey(role Role, scopes []string) bool {
	switch role {
	case RoleOwner:
		return true
	case RoleAdmin:
		return !slices.Contains(scopes, ScopeCredentialsResolve)
	}
	return false
}

// RoleAllowsKeyFor reports whether a user of role may stand behind a key
// they created for another person, who holds the role holder: owners for
// anyone, admins for anyone but owners, members for nobody (the rules of
// creating one). The creator received the key's secret, so when their role
// no longer allows it (demotion, deletion) the key is revoked: otherwise a
// removed admin keeps acting as every person they minted a key for.
func RoleAllowsKeyFor(role, holder Role) bool {
	switch role {
	case RoleOwner:
		return true
	case RoleAdmin:
		return holder != RoleOwner
	}
	return false
}

// MissingScopes returns the scopes of want that scopes do not grant.
func MissingScopes(scopes, want []string) []string {
	var missing []string
	for _, w := range want {
		if !HasScope(scopes, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// NormalizeScopes checks every scope name, drops duplicates and sorts.
// Errors: EINVALID naming the unknown scope and listing the valid ones.
func NormalizeScopes(field string, scopes []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			return nil, Errorf(EINVALID, "field %q: unknown scope %q (valid: %s)", field, s, strings.Join(AllScopes, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}
