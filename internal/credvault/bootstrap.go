package credvault

import (
	"context"
	"strings"
)

// BootstrapResult is what `credvault bootstrap` prints: the new org, its
// owner and the owner's first key (shown this once).
type BootstrapResult struct {
	OrgID  string `json:"org_id"`
	UserID string `json:"user_id"`
	APIKey Secret `json:"-"`
}

// Bootstrap creates an org with its first owner and an admin-scoped key
// for them. It runs from the command line, without a caller. Errors:
// EINVALID (name or email), ECONFLICT (org name taken).
func Bootstrap(ctx context.Context, users UserStore, minter KeyMinter, orgName, email string) (*BootstrapResult, error) {
	orgName = strings.TrimSpace(orgName)
	if orgName == "" || len(orgName) > 200 {
		return nil, Errorf(EINVALID, "--org must be 1-200 characters")
	}
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, Errorf(EINVALID, "--email must be a plain email address such as ada@example.com")
	}
	org := &Org{Name: orgName}
	owner := &User{Email: email, Role: RoleOwner}
	key := &APIKey{Kind: KeyKindUser, Name: "bootstrap", Mode: defaultKeyMode, Scopes: []string{ScopeAdmin}, Tags: map[string]string{}}
	secret, err := (&APIKeyService{Minter: minter}).mint(key)
	if err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, "", "org.bootstrap", "org", "", map[string]any{"org_name": orgName, "key_display": key.Display})
	if err := users.CreateOrgWithOwner(ctx, org, owner, key, ev); err != nil {
		return nil, err
	}
	return &BootstrapResult{OrgID: org.ID, UserID: owner.ID, APIKey: secret}, nil
}
