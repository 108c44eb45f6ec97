package credvault

import (
	"slices"
	"sort"
	"strings"
)

// Scopes a key can carry. ScopeAdmin stands for all of them.
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

// HasScope reports whether scopes grant want; ScopeAdmin grants everything.
func HasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want || s == ScopeAdmin {
			return true
		}
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
